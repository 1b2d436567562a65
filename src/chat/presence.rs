//! Who is in a room, per person: one user with several tabs is one member,
//! and a guest is one member per socket. [`People`] counts this node's
//! sockets per person; [`Roster`] is the room as every node sees it, a
//! person with the nodes they are on. Pure: the room asks them whether an
//! arrival or a departure is news.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
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

    /// The person's name among the nodes: a user is the same person on
    /// every node; a guest's socket is one only on its own.
    pub fn person(&self, node: &str) -> String {
        match self {
            Self::User(id) => format!("u{id}"),
            Self::Guest(session) => format!("g{node}-{}", session.get()),
        }
    }
}

struct Present {
    who: Arc<Who>,
    nodes: BTreeSet<String>,
}

/// The room across nodes: each person once, however many nodes and tabs.
#[derive(Default)]
pub struct Roster {
    people: HashMap<String, Present>,
}

impl Roster {
    /// `person` is on `node`; true when the room did not have them.
    pub fn arrive(&mut self, node: &str, person: &str, who: Arc<Who>) -> bool {
        match self.people.get_mut(person) {
            Some(present) => {
                present.nodes.insert(node.to_owned());
                false
            }
            None => {
                let nodes = BTreeSet::from([node.to_owned()]);
                self.people
                    .insert(person.to_owned(), Present { who, nodes });
                true
            }
        }
    }

    /// `person` left `node`; the person when no node has them any more.
    pub fn depart(&mut self, node: &str, person: &str) -> Option<Arc<Who>> {
        let present = self.people.get_mut(person)?;
        present.nodes.remove(node);
        if present.nodes.is_empty() {
            self.people.remove(person).map(|p| p.who)
        } else {
            None
        }
    }

    /// How the person is shown now; true when that changed.
    pub fn update(&mut self, person: &str, who: Arc<Who>) -> bool {
        match self.people.get_mut(person) {
            Some(present) if present.who != who => {
                present.who = who;
                true
            }
            _ => false,
        }
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

    /// Every node each person is on, as (node, person) pairs.
    pub fn nodes_people(&self) -> Vec<(String, String)> {
        self.people
            .iter()
            .flat_map(|(person, p)| {
                p.nodes
                    .iter()
                    .map(move |node| (node.clone(), person.clone()))
            })
            .collect()
    }

    /// Every person on `node`, with how they are shown.
    pub fn on(&self, node: &str) -> Vec<(&str, &Arc<Who>)> {
        self.people
            .iter()
            .filter(|(_, p)| p.nodes.contains(node))
            .map(|(person, p)| (person.as_str(), &p.who))
            .collect()
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
    }

    #[test]
    fn a_person_on_two_nodes_is_one_member_until_the_last_node_lets_go() {
        let mut roster = Roster::default();
        let alice = who(Some(1), "alice", false);
        let person = PersonKey::of(&alice, SessionId::for_tests(1)).person("a");
        assert!(roster.arrive("a", &person, alice.clone()));
        assert!(!roster.arrive("b", &person, alice.clone()));
        assert_eq!(roster.len(), 1);
        assert!(roster.depart("a", &person).is_none());
        assert_eq!(roster.on("b").len(), 1);
        assert_eq!(roster.depart("b", &person).as_deref(), Some(&*alice));
        assert_eq!(roster.len(), 0);
        assert!(roster.depart("b", &person).is_none(), "a repeat is no news");
    }

    #[test]
    fn guests_on_different_nodes_are_different_people_and_the_list_is_by_name() {
        let mut roster = Roster::default();
        let g = who(None, "guest-1", false);
        let key = PersonKey::of(&g, SessionId::for_tests(1));
        roster.arrive("a", &key.person("a"), g.clone());
        roster.arrive("b", &key.person("b"), g.clone());
        let sam = who(Some(5), "sam", true);
        roster.arrive("b", "u5", sam.clone());
        assert!(roster.update("u5", who(Some(5), "sam", false)));
        assert!(!roster.update("u5", who(Some(5), "sam", false)));
        let names: Vec<_> = roster.list().iter().map(|w| w.username.clone()).collect();
        assert_eq!(names, ["guest-1", "guest-1", "sam"]);
    }
}
