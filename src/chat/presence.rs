//! Who is in a room, per person: one user with several tabs is one member,
//! and a guest is one member per socket. Pure: the room asks it whether an
//! arrival or a departure is news.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use super::frames::Who;
use crate::ws::session::SessionId;

/// What makes two sockets one person.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PersonKey {
    User(i32),
    Guest(SessionId),
}

impl PersonKey {
    pub fn of(who: &Who, session: SessionId) -> Self {
        match who.id {
            Some(id) => Self::User(id),
            None => Self::Guest(session),
        }
    }
}

struct Person {
    who: Arc<Who>,
    sockets: usize,
}

#[derive(Default)]
pub struct People {
    people: HashMap<PersonKey, Person>,
}

impl People {
    /// One more socket for this person; true when the person just arrived.
    pub fn arrive(&mut self, key: PersonKey, who: Arc<Who>) -> bool {
        let person = self.people.entry(key).or_insert(Person { who, sockets: 0 });
        person.sockets += 1;
        person.sockets == 1
    }

    /// One socket fewer; the person when that was their last.
    pub fn depart(&mut self, key: &PersonKey) -> Option<Arc<Who>> {
        let Entry::Occupied(mut person) = self.people.entry(key.clone()) else {
            return None;
        };
        person.get_mut().sockets -= 1;
        (person.get().sockets == 0).then(|| person.remove().who)
    }

    /// How the person is shown now; true when that changed.
    pub fn update(&mut self, key: &PersonKey, who: Arc<Who>) -> bool {
        match self.people.get_mut(key) {
            Some(person) if person.who != who => {
                person.who = who;
                true
            }
            _ => false,
        }
    }

    pub fn who(&self, key: &PersonKey) -> Option<&Arc<Who>> {
        self.people.get(key).map(|p| &p.who)
    }

    pub fn len(&self) -> usize {
        self.people.len()
    }

    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    /// Everyone, by name.
    pub fn list(&self) -> Vec<&Who> {
        let mut members: Vec<&Who> = self.people.values().map(|p| &*p.who).collect();
        members.sort_by(|a, b| a.username.cmp(&b.username));
        members
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(id: Option<i32>, name: &str, staff: bool) -> Arc<Who> {
        Arc::new(Who {
            id,
            username: name.into(),
            is_staff: staff,
        })
    }

    #[test]
    fn a_person_with_several_tabs_arrives_once_and_leaves_once() {
        let mut people = People::default();
        let alice = who(Some(1), "alice", false);
        let key = PersonKey::of(&alice, SessionId::for_tests(1));
        assert!(people.arrive(key.clone(), alice.clone()));
        assert!(!people.arrive(key.clone(), alice.clone()));
        assert_eq!(people.len(), 1);
        assert!(people.depart(&key).is_none());
        assert_eq!(people.depart(&key).as_deref(), Some(&*alice));
        assert!(people.is_empty());
    }

    #[test]
    fn guests_are_one_person_per_socket_and_updates_are_news_only_when_different() {
        let mut people = People::default();
        let g = who(None, "guest-1", false);
        people.arrive(PersonKey::of(&g, SessionId::for_tests(1)), g.clone());
        people.arrive(PersonKey::of(&g, SessionId::for_tests(2)), g.clone());
        assert_eq!(people.len(), 2);
        let sam = who(Some(5), "sam", true);
        let key = PersonKey::of(&sam, SessionId::for_tests(3));
        people.arrive(key.clone(), sam.clone());
        assert!(!people.update(&key, who(Some(5), "sam", true)));
        assert!(people.update(&key, who(Some(5), "sam", false)));
        assert!(!people.who(&key).unwrap().is_staff);
        let names: Vec<_> = people.list().iter().map(|w| w.username.clone()).collect();
        assert_eq!(names, ["guest-1", "guest-1", "sam"]);
    }
}
