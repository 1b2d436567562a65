//! Failed-login throttling, per username and per client address, so a
//! password cannot be guessed at the speed of the hashing pool.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per key within one window before logins are refused.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleRule {
    pub max_failures: u32,
    pub window: Duration,
}

/// What a throttle key names: both are checked on every login.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Username(String),
    Address(String),
}

struct Window {
    started: Instant,
    failures: u32,
}

/// Bounded map of recent failures. When full, expired windows go first, then
/// the oldest, so a flood of made-up usernames cannot grow memory.
pub struct LoginThrottle {
    per_username: ThrottleRule,
    per_address: ThrottleRule,
    capacity: usize,
    windows: Mutex<HashMap<Key, Window>>,
}

impl LoginThrottle {
    pub fn new(per_username: ThrottleRule, per_address: ThrottleRule, capacity: usize) -> Self {
        Self {
            per_username,
            per_address,
            capacity,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// The production rules: 5 failures per username and 30 per address in 15 minutes.
    pub fn standard() -> Self {
        let window = Duration::from_secs(15 * 60);
        Self::new(
            ThrottleRule {
                max_failures: 5,
                window,
            },
            ThrottleRule {
                max_failures: 30,
                window,
            },
            100_000,
        )
    }

    fn keys(username: &str, address: &str) -> [Key; 2] {
        [
            Key::Username(username.to_owned()),
            Key::Address(address.to_owned()),
        ]
    }

    fn rule(&self, key: &Key) -> ThrottleRule {
        match key {
            Key::Username(_) => self.per_username,
            Key::Address(_) => self.per_address,
        }
    }

    /// `Some(wait)` when this login must be refused without checking the password.
    pub fn check(&self, username: &str, address: &str) -> Option<Duration> {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        Self::keys(username, address)
            .into_iter()
            .filter_map(|key| {
                let rule = self.rule(&key);
                let w = windows.get(&key)?;
                let elapsed = now.duration_since(w.started);
                (elapsed < rule.window && w.failures >= rule.max_failures)
                    .then(|| rule.window - elapsed)
            })
            .max()
    }

    pub fn record_failure(&self, username: &str, address: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        for key in Self::keys(username, address) {
            let rule = self.rule(&key);
            if !windows.contains_key(&key) && windows.len() >= self.capacity {
                self.evict(&mut windows, now);
            }
            let w = windows.entry(key).or_insert(Window {
                started: now,
                failures: 0,
            });
            if now.duration_since(w.started) >= rule.window {
                *w = Window {
                    started: now,
                    failures: 0,
                };
            }
            w.failures += 1;
        }
    }

    /// A successful login clears its username's failures (not its address's).
    pub fn record_success(&self, username: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.remove(&Key::Username(username.to_owned()));
    }

    fn evict(&self, windows: &mut HashMap<Key, Window>, now: Instant) {
        windows.retain(|key, w| now.duration_since(w.started) < self.rule(key).window);
        if windows.len() >= self.capacity
            && let Some(oldest) = windows
                .iter()
                .min_by_key(|(_, w)| w.started)
                .map(|(k, _)| k.clone())
        {
            windows.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(capacity: usize) -> LoginThrottle {
        let rule = ThrottleRule {
            max_failures: 2,
            window: Duration::from_secs(60),
        };
        LoginThrottle::new(
            rule,
            ThrottleRule {
                max_failures: 3,
                ..rule
            },
            capacity,
        )
    }

    #[test]
    fn a_username_is_throttled_after_its_failures_and_cleared_by_success() {
        let t = throttle(100);
        t.record_failure("alice", "1.1.1.1");
        assert!(t.check("alice", "2.2.2.2").is_none());
        t.record_failure("alice", "1.1.1.1");
        assert!(t.check("alice", "2.2.2.2").is_some());
        t.record_success("alice");
        assert!(t.check("alice", "2.2.2.2").is_none());
    }

    #[test]
    fn an_address_is_throttled_across_usernames() {
        let t = throttle(100);
        for name in ["a", "b", "c"] {
            t.record_failure(name, "9.9.9.9");
        }
        assert!(t.check("d", "9.9.9.9").is_some());
        assert!(t.check("d", "8.8.8.8").is_none());
    }

    #[test]
    fn the_map_never_grows_past_its_capacity() {
        let t = throttle(10);
        for i in 0..1000 {
            t.record_failure(
                &format!("user{i}"),
                &format!("10.0.{}.{}", i / 256, i % 256),
            );
        }
        assert!(t.windows.lock().unwrap().len() <= 10);
    }
}
