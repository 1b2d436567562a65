//! Guest names, unique among this node's live sockets: two guests with one
//! name would be one blur in a room's presence list.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The names in use; a [`GuestName`] gives its name back when dropped.
#[derive(Clone, Default)]
pub struct Guests {
    taken: Arc<Mutex<HashSet<String>>>,
}

/// A guest's name, held for as long as its socket lives.
pub struct GuestName {
    name: String,
    guests: Guests,
}

impl Guests {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.taken.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh `guest-xxxxxx` name. 24 random bits leave room for millions
    /// of guests; a name in use is drawn again.
    pub fn name(&self) -> GuestName {
        let mut taken = self.lock();
        loop {
            let name = format!("guest-{:06x}", rand::random::<u32>() & 0xff_ffff);
            if taken.insert(name.clone()) {
                return GuestName {
                    name,
                    guests: self.clone(),
                };
            }
        }
    }

    pub fn in_use(&self) -> usize {
        self.lock().len()
    }
}

impl GuestName {
    pub fn as_str(&self) -> &str {
        &self.name
    }
}

impl Drop for GuestName {
    fn drop(&mut self) {
        self.guests.lock().remove(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_while_held_and_given_back_when_dropped() {
        let guests = Guests::default();
        let names: Vec<GuestName> = (0..20_000).map(|_| guests.name()).collect();
        let distinct: HashSet<&str> = names.iter().map(GuestName::as_str).collect();
        assert_eq!(distinct.len(), names.len());
        assert_eq!(guests.in_use(), 20_000);
        drop(names);
        assert_eq!(guests.in_use(), 0);
    }
}
