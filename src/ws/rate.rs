//! Rate limits: a token bucket, and the per-socket limit built on it, over
//! whole messages (a fragmented message counts once, when it is complete,
//! so a limit never drops the middle of one and splices the rest). Pure,
//! with the clock passed in, so they are tested without sleeping.

use std::time::{Duration, Instant};

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Drop it and tell the client (`rate_limited`).
    Refuse,
    /// The client kept flooding after being told: close with 1008.
    Close,
}

/// A token bucket: `burst` tokens at most, refilled at `per_sec`.
#[derive(Debug, Clone)]
pub struct Bucket {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(per_sec: f64, burst: u32, now: Instant) -> Self {
        Self {
            per_sec,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let earned = now.saturating_duration_since(self.last).as_secs_f64() * self.per_sec;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.last = now;
    }

    /// Whether it holds all its tokens at `now`.
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }

    /// Takes one token, or says how long until there is one.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
    }
}

pub struct RateLimit {
    bucket: Bucket,
    burst: u32,
    /// Messages refused since the bucket was last full, so a client that
    /// keeps flooding can be told apart from one that had a burst.
    strikes: u32,
}

impl RateLimit {
    pub fn new(per_sec: f64, burst: u32, now: Instant) -> Self {
        Self {
            bucket: Bucket::new(per_sec, burst, now),
            burst,
            strikes: 0,
        }
    }

    pub fn take(&mut self, now: Instant) -> Verdict {
        if self.bucket.is_full(now) {
            self.strikes = 0;
        }
        if self.bucket.take(now).is_ok() {
            return Verdict::Pass;
        }
        self.strikes += 1;
        if self.strikes > self.burst {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_refusals_then_a_close_for_a_client_that_keeps_on() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(10.0, 3, t0);
        for _ in 0..3 {
            assert_eq!(limit.take(t0), Verdict::Pass);
        }
        for _ in 0..3 {
            assert_eq!(limit.take(t0), Verdict::Refuse);
        }
        assert_eq!(limit.take(t0), Verdict::Close);
    }

    #[test]
    fn the_bucket_refills_at_the_rate_and_a_full_bucket_forgives_strikes() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(10.0, 2, t0);
        limit.take(t0);
        limit.take(t0);
        assert_eq!(limit.take(t0), Verdict::Refuse);
        assert_eq!(limit.take(t0 + Duration::from_millis(100)), Verdict::Pass);
        assert_eq!(limit.take(t0 + Duration::from_millis(100)), Verdict::Refuse);
        // Full again after 200 ms: the earlier strikes no longer count.
        let later = t0 + Duration::from_millis(400);
        for _ in 0..2 {
            assert_eq!(limit.take(later), Verdict::Pass);
        }
        for _ in 0..2 {
            assert_eq!(limit.take(later), Verdict::Refuse);
        }
        assert_eq!(limit.take(later), Verdict::Close);
    }

    #[test]
    fn an_empty_bucket_says_how_long_until_its_next_token() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(4.0, 2, t0);
        assert!(bucket.is_full(t0));
        assert_eq!(bucket.take(t0), Ok(()));
        assert!(!bucket.is_full(t0));
        assert_eq!(bucket.take(t0), Ok(()));
        assert_eq!(bucket.take(t0), Err(Duration::from_millis(250)));
        let half = t0 + Duration::from_millis(125);
        assert_eq!(bucket.take(half), Err(Duration::from_millis(125)));
        assert_eq!(bucket.take(t0 + Duration::from_millis(250)), Ok(()));
        assert!(bucket.is_full(t0 + Duration::from_millis(750)));
    }
}
