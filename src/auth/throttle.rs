//! Failed-login throttling, per username and per client address, so a
//! password cannot be guessed at the speed of the hashing pool; and the
//! bound on how many logins hash at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::password::Hashing;

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
    hashing: Hashing,
}

impl LoginThrottle {
    pub fn new(per_username: ThrottleRule, per_address: ThrottleRule, capacity: usize) -> Self {
        Self {
            per_username,
            per_address,
            capacity,
            windows: Mutex::new(HashMap::new()),
            hashing: Hashing::per_core(),
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

    /// Counts a login as failed before its password is checked, or refuses it
    /// with how long to wait. Counting first is what makes the limit hold:
    /// concurrent guesses that all checked before any was recorded would
    /// otherwise all reach the hashing pool.
    pub fn reserve(&self, username: &str, address: &str) -> Result<(), Duration> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let keys = Self::keys(username, address);
        let wait = keys
            .iter()
            .filter_map(|key| {
                let rule = self.rule(key);
                let w = windows.get(key)?;
                let elapsed = now.duration_since(w.started);
                (elapsed < rule.window && w.failures >= rule.max_failures)
                    .then(|| rule.window - elapsed)
            })
            .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        for key in keys {
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
        Ok(())
    }

    /// A successful login clears its username's failures and takes back its
    /// reservation from the address (whose other failures stay).
    pub fn succeeded(&self, username: &str, address: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.remove(&Key::Username(username.to_owned()));
        Self::take_back(&mut windows, Key::Address(address.to_owned()));
    }

    /// Takes back a reservation for a login that was not a guess (its
    /// password could not be checked).
    pub fn release(&self, username: &str, address: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        for key in Self::keys(username, address) {
            Self::take_back(&mut windows, key);
        }
    }

    fn take_back(windows: &mut HashMap<Key, Window>, key: Key) {
        if let Some(w) = windows.get_mut(&key) {
            w.failures = w.failures.saturating_sub(1);
        }
    }

    /// The bound on concurrent password hashing every login goes through.
    pub fn hashing(&self) -> &Hashing {
        &self.hashing
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

    #[test]
    fn the_standard_rules_are_five_per_username_and_thirty_per_address_in_fifteen_minutes() {
        let standard = LoginThrottle::standard();
        let fifteen_minutes = Duration::from_secs(900);
        assert_eq!(
            (
                standard.per_username.max_failures,
                standard.per_username.window
            ),
            (5, fifteen_minutes)
        );
        assert_eq!(
            (
                standard.per_address.max_failures,
                standard.per_address.window
            ),
            (30, fifteen_minutes)
        );
    }

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
        assert!(t.reserve("alice", "1.1.1.1").is_ok());
        assert!(t.reserve("alice", "1.1.1.2").is_ok());
        // The wait is what is left of the window, never more.
        let wait = t.reserve("alice", "2.2.2.2").unwrap_err();
        assert!(wait <= Duration::from_secs(60), "{wait:?}");
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        t.succeeded("alice", "1.1.1.1");
        assert!(t.reserve("alice", "2.2.2.2").is_ok());
    }

    #[test]
    fn a_reservation_counts_at_once_and_a_release_takes_it_back() {
        let t = throttle(100);
        assert!(t.reserve("bob", "3.3.3.3").is_ok());
        assert!(t.reserve("bob", "3.3.3.3").is_ok());
        // Both are still being checked; a third guess must wait.
        assert!(t.reserve("bob", "3.3.3.3").is_err());
        t.release("bob", "3.3.3.3");
        assert!(t.reserve("bob", "3.3.3.3").is_ok());
        t.succeeded("bob", "3.3.3.3");
        // The address keeps the first reservation, not the successful one:
        // two more fill its three.
        assert!(t.reserve("carol", "3.3.3.3").is_ok());
        assert!(t.reserve("dave", "3.3.3.3").is_ok());
        assert!(t.reserve("erin", "3.3.3.3").is_err());
    }

    #[test]
    fn an_address_is_throttled_across_usernames() {
        let t = throttle(100);
        for name in ["a", "b", "c"] {
            assert!(t.reserve(name, "9.9.9.9").is_ok());
        }
        assert!(t.reserve("d", "9.9.9.9").is_err());
        assert!(t.reserve("d", "8.8.8.8").is_ok());
    }

    #[test]
    fn at_capacity_a_login_already_counted_evicts_no_one() {
        let t = throttle(3);
        assert!(t.reserve("alice", "1.1.1.1").is_ok());
        assert!(t.reserve("bob", "1.1.1.1").is_ok());
        // Full, but both keys of this login are already held: nothing new
        // needs room, so every count stays.
        assert!(t.reserve("alice", "1.1.1.1").is_ok());
        let failures = |key: Key| t.windows.lock().unwrap().get(&key).map(|w| w.failures);
        assert_eq!(failures(Key::Username("alice".into())), Some(2));
        assert_eq!(failures(Key::Username("bob".into())), Some(1));
        assert_eq!(failures(Key::Address("1.1.1.1".into())), Some(3));
    }

    #[test]
    fn a_full_map_makes_room_by_its_oldest_window_and_keeps_the_live_ones() {
        let t = throttle(4);
        assert!(t.reserve("alice", "1.1.1.1").is_ok());
        std::thread::sleep(Duration::from_millis(5));
        assert!(t.reserve("bob", "2.2.2.2").is_ok());
        // Full; carol is new: the oldest window (alice's or 1.1.1.1's)
        // makes room, and every window still running keeps its count.
        assert!(t.reserve("carol", "2.2.2.2").is_ok());
        let windows = t.windows.lock().unwrap();
        let failures = |key: Key| windows.get(&key).map(|w| w.failures);
        assert_eq!(failures(Key::Address("2.2.2.2".into())), Some(2));
        assert_eq!(failures(Key::Username("bob".into())), Some(1));
        assert_eq!(failures(Key::Username("carol".into())), Some(1));
        let oldest = [
            failures(Key::Username("alice".into())),
            failures(Key::Address("1.1.1.1".into())),
        ];
        assert_eq!(oldest.iter().flatten().count(), 1, "{oldest:?}");
    }

    #[test]
    fn the_map_never_grows_past_its_capacity() {
        let t = throttle(10);
        for i in 0..1000 {
            let _ = t.reserve(
                &format!("user{i}"),
                &format!("10.0.{}.{}", i / 256, i % 256),
            );
        }
        assert!(t.windows.lock().unwrap().len() <= 10);
    }
}
