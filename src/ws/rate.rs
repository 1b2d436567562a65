//! The per-socket rate limit: a token bucket over whole messages (a
//! fragmented message counts once, when it is complete, so a limit never
//! drops the middle of one and splices the rest). Pure, with the clock
//! passed in, so it is tested without sleeping.

use std::time::Instant;

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Drop it and tell the client (`rate_limited`).
    Refuse,
    /// The client kept flooding after being told: close with 1008.
    Close,
}

pub struct RateLimit {
    per_sec: f64,
    burst: u32,
    tokens: f64,
    last: Instant,
    /// Messages refused since the bucket was last full, so a client that
    /// keeps flooding can be told apart from one that had a burst.
    strikes: u32,
}

impl RateLimit {
    pub fn new(per_sec: f64, burst: u32, now: Instant) -> Self {
        Self {
            per_sec,
            burst,
            tokens: f64::from(burst),
            last: now,
            strikes: 0,
        }
    }

    pub fn take(&mut self, now: Instant) -> Verdict {
        let burst = f64::from(self.burst);
        let earned = now.saturating_duration_since(self.last).as_secs_f64() * self.per_sec;
        self.tokens = (self.tokens + earned).min(burst);
        self.last = now;
        if self.tokens >= burst {
            self.strikes = 0;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
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
    use std::time::Duration;

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
}
