//! Guests, each with an id and a name unique among this node's live
//! sockets: two guests with one name would be one blur in a room's presence
//! list. A guest that comes back with its key ([`guest_key`]) keeps its id
//! and name, and all its sockets share them.
//!
//! [`guest_key`]: crate::auth::guest_key

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use crate::auth::guest_key::GuestIdentity;

/// The names in use, each with the guest holding it and how many of its
/// sockets do; a [`GuestName`] gives its share back when dropped.
#[derive(Clone, Default)]
pub struct Guests {
    taken: Arc<Mutex<HashMap<String, Holder>>>,
}

struct Holder {
    id: String,
    sockets: usize,
}

/// A guest's id and name, held for as long as its socket lives.
pub struct GuestName {
    guest: GuestIdentity,
    guests: Guests,
}

impl Guests {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Holder>> {
        self.taken.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The guest a valid key names, under its name again, if no other guest
    /// holds that name here; otherwise (or without a key) a fresh guest.
    pub fn admit(&self, returning: Option<GuestIdentity>) -> GuestName {
        let mut taken = self.lock();
        if let Some(guest) = returning {
            match taken.entry(guest.name.clone()) {
                Entry::Vacant(free) => {
                    free.insert(Holder {
                        id: guest.id.clone(),
                        sockets: 1,
                    });
                    return self.hold(guest);
                }
                Entry::Occupied(mut held) if held.get().id == guest.id => {
                    held.get_mut().sockets += 1;
                    return self.hold(guest);
                }
                Entry::Occupied(_) => {}
            }
        }
        // 24 random bits leave room for millions of guests; a name in use
        // is drawn again. The id's 64 bits are not guessed.
        loop {
            let name = format!("guest-{:06x}", rand::random::<u32>() & 0xff_ffff);
            if let Entry::Vacant(free) = taken.entry(name.clone()) {
                let id = format!("{:016x}", rand::random::<u64>());
                free.insert(Holder {
                    id: id.clone(),
                    sockets: 1,
                });
                return self.hold(GuestIdentity { id, name });
            }
        }
    }

    fn hold(&self, guest: GuestIdentity) -> GuestName {
        GuestName {
            guest,
            guests: self.clone(),
        }
    }

    /// How many names are held.
    pub fn in_use(&self) -> usize {
        self.lock().len()
    }
}

impl GuestName {
    pub fn as_str(&self) -> &str {
        &self.guest.name
    }

    pub fn identity(&self) -> &GuestIdentity {
        &self.guest
    }
}

impl Drop for GuestName {
    fn drop(&mut self) {
        let mut taken = self.guests.lock();
        if let Entry::Occupied(mut held) = taken.entry(self.guest.name.clone()) {
            held.get_mut().sockets -= 1;
            if held.get().sockets == 0 {
                held.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_are_unique_while_held_and_given_back_when_dropped() {
        let guests = Guests::default();
        let names: Vec<GuestName> = (0..20_000).map(|_| guests.admit(None)).collect();
        let distinct: HashSet<&str> = names.iter().map(GuestName::as_str).collect();
        assert_eq!(distinct.len(), names.len());
        assert_eq!(guests.in_use(), 20_000);
        drop(names);
        assert_eq!(guests.in_use(), 0);
    }

    #[test]
    fn a_returning_guest_keeps_its_name_and_shares_it_with_its_other_sockets() {
        let guests = Guests::default();
        let first = guests.admit(None);
        let key = first.identity().clone();
        let second = guests.admit(Some(key.clone()));
        assert_eq!(second.identity(), &key);
        assert_eq!(guests.in_use(), 1);
        drop(first);
        drop(second);
        assert_eq!(guests.in_use(), 0);
        // Back after every socket had gone: the same name again.
        assert_eq!(guests.admit(Some(key.clone())).identity(), &key);
    }

    #[test]
    fn another_guest_holding_the_name_makes_the_returning_one_fresh() {
        let guests = Guests::default();
        let holder = guests.admit(None);
        let other = GuestIdentity {
            id: "ffffffffffffffff".into(),
            name: holder.as_str().to_owned(),
        };
        let fresh = guests.admit(Some(other.clone()));
        assert_ne!(fresh.as_str(), other.name);
        assert_ne!(fresh.identity().id, other.id);
        assert_eq!(guests.in_use(), 2);
    }
}
