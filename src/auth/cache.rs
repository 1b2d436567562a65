//! A short-lived cache of users for the handshake path, so a burst of
//! reconnects does not become a burst of queries. Entries live at most the
//! user re-check interval: a deactivated user can open no new socket after
//! that, and open sockets are closed at their own re-check, which always
//! reads the database (and refreshes this cache).

use std::time::{Duration, Instant};

use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use crate::db::users::User;

pub struct UserCache {
    /// Each user with when it was read from the database: a socket opened
    /// from the cache counts its first re-check from then.
    entries: Cache<i32, (User, Instant)>,
}

impl UserCache {
    /// At most `capacity` users, each for at most `ttl` after it was loaded.
    /// When full, the least recently used user makes room, one at a time, so
    /// a flood of new users never empties the cache of everyone else.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(u64::try_from(capacity).unwrap_or(u64::MAX))
                .time_to_live(ttl)
                // The default policy (TinyLFU) may refuse a new user in favour
                // of old ones; the user who just connected is the one whose
                // reconnect should be cheap.
                .eviction_policy(EvictionPolicy::lru())
                .build(),
        }
    }

    /// The user as loaded less than the TTL ago, and when it was loaded.
    pub fn get(&self, id: i32) -> Option<(User, Instant)> {
        self.entries.get(&id)
    }

    /// A user just read from the database.
    pub fn put(&self, user: User) {
        self.entries.insert(user.id, (user, Instant::now()));
    }

    /// Forgets a user that no longer exists.
    pub fn remove(&self, id: i32) {
        self.entries.invalidate(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i32) -> User {
        User {
            id,
            username: format!("u{id}"),
            is_active: true,
            is_staff: false,
        }
    }

    #[test]
    fn entries_expire_after_the_ttl_and_can_be_removed() {
        // Long enough that the reads right after the puts are within it
        // however loaded the machine; the sleep below is past it.
        let ttl = Duration::from_secs(1);
        let cache = UserCache::new(ttl, 10);
        cache.put(user(1));
        cache.put(user(2));
        assert_eq!(cache.get(1).map(|(u, _)| u.id), Some(1));
        cache.remove(2);
        assert!(cache.get(2).is_none());
        std::thread::sleep(ttl + Duration::from_millis(100));
        assert!(cache.get(1).is_none());
    }

    #[test]
    fn filling_past_capacity_evicts_the_oldest_and_keeps_recent_entries() {
        let cache = UserCache::new(Duration::from_secs(60), 10);
        for id in 0..=10 {
            cache.put(user(id));
            // Eviction is applied in batches; settle each insert so the
            // order of use is exactly the order of insertion.
            cache.entries.run_pending_tasks();
        }
        assert!(cache.get(0).is_none(), "the least recently used made room");
        for id in 1..=10 {
            assert_eq!(
                cache.get(id).map(|(u, _)| u.id),
                Some(id),
                "recent user {id}"
            );
        }
    }
}
