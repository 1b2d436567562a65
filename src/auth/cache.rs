//! A short-lived cache of users for the handshake path, so a burst of
//! reconnects does not become a burst of queries. Entries live at most the
//! user re-check interval: a deactivated user can open no new socket after
//! that, and open sockets are closed at their own re-check, which always
//! reads the database (and refreshes this cache).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::db::users::User;

pub struct UserCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<i32, (User, Instant)>>,
}

impl UserCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, (User, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The user as loaded less than the TTL ago, and when it was loaded.
    pub fn get(&self, id: i32) -> Option<(User, Instant)> {
        let entries = self.lock();
        let (user, at) = entries.get(&id)?;
        (at.elapsed() < self.ttl).then(|| (user.clone(), *at))
    }

    pub fn put(&self, user: User) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&user.id) {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(user.id, (user, Instant::now()));
    }

    /// Forgets a user that no longer exists.
    pub fn remove(&self, id: i32) {
        self.lock().remove(&id);
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
    fn entries_expire_and_the_cache_stays_within_capacity() {
        let cache = UserCache::new(Duration::from_millis(50), 10);
        cache.put(user(1));
        assert_eq!(cache.get(1).map(|(u, _)| u.id), Some(1));
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get(1).is_none());
        for id in 0..100 {
            cache.put(user(id));
        }
        assert!(cache.lock().len() <= 10);
    }
}
