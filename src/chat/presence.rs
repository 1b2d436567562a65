//! Who is in a room, per person: one user with several tabs is one member,
//! and so is one guest with several sockets of one guest key. [`People`] counts this node's
//! sockets per person; [`Roster`] is the room as every node sees it, a
//! person with the nodes they are on. Pure: the room asks them whether an
//! arrival or a departure is news.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::frames::Who;

/// A user as a person among the nodes: the same on every node and in every
/// tab.
pub fn user_person(id: i32) -> String {
    format!("u{id}")
}

/// A guest as a person among the nodes, by the id its key names: the same
/// in every socket opened with that key, on any node.
pub fn guest_person(guest_id: &str) -> String {
    format!("g{guest_id}")
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
    people: HashMap<String, Person>,
}

impl People {
    /// One more socket for this person; true when the person just arrived.
    pub fn arrive(&mut self, person: &str, who: Arc<Who>) -> bool {
        let person = self
            .people
            .entry(person.to_owned())
            .or_insert(Person { who, sockets: 0 });
        person.sockets += 1;
        person.sockets == 1
    }

    /// One socket fewer; the person when that was their last.
    pub fn depart(&mut self, person: &str) -> Option<Arc<Who>> {
        let Entry::Occupied(mut person) = self.people.entry(person.to_owned()) else {
            return None;
        };
        person.get_mut().sockets -= 1;
        (person.get().sockets == 0).then(|| person.remove().who)
    }

    /// How the person is shown now; true when that changed.
    pub fn update(&mut self, person: &str, who: Arc<Who>) -> bool {
        match self.people.get_mut(person) {
            Some(person) if person.who != who => {
                person.who = who;
                true
            }
            _ => false,
        }
    }

    pub fn who(&self, person: &str) -> Option<&Arc<Who>> {
        self.people.get(person).map(|p| &p.who)
    }

    /// Whether the person has a socket here.
    pub fn has(&self, person: &str) -> bool {
        self.people.contains_key(person)
    }

    pub fn len(&self) -> usize {
        self.people.len()
    }

    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }
}

/// Presence changes gathered over one interval, sent as one
/// `presence.diff` to members that asked for diffs: a join of a room of
/// `n` then costs one frame per member per interval, not one per joiner.
/// What nets out (a person who came and went) is not sent.
#[derive(Default)]
pub struct Diff {
    changes: HashMap<String, Pending>,
}

/// One person's changes within an interval.
struct Pending {
    /// Whether members were last told the person is present.
    was_present: bool,
    /// How the person is now; `None`: gone.
    now: Option<Arc<Who>>,
    /// How the person was last shown, for a leave.
    last: Arc<Who>,
}

/// What a diff says, each list by name.
pub struct DiffFrame {
    pub joins: Vec<Arc<Who>>,
    pub leaves: Vec<Arc<Who>>,
    pub updates: Vec<Arc<Who>>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The person is (still) here, shown as `who`; `was_present` is what
    /// members knew before this interval, if this is its first change.
    fn present(&mut self, person: &str, who: Arc<Who>, was_present: bool) {
        let pending = self.changes.entry(person.to_owned()).or_insert(Pending {
            was_present,
            now: None,
            last: who.clone(),
        });
        pending.now = Some(who.clone());
        pending.last = who;
    }

    pub fn join(&mut self, person: &str, who: Arc<Who>) {
        self.present(person, who, false);
    }

    pub fn update(&mut self, person: &str, who: Arc<Who>) {
        self.present(person, who, true);
    }

    pub fn leave(&mut self, person: &str, who: Arc<Who>) {
        self.changes
            .entry(person.to_owned())
            .or_insert(Pending {
                was_present: true,
                now: None,
                last: who,
            })
            .now = None;
    }

    /// What changed since the last frame, and a fresh start.
    pub fn take(&mut self) -> DiffFrame {
        let mut frame = DiffFrame {
            joins: Vec::new(),
            leaves: Vec::new(),
            updates: Vec::new(),
        };
        for (_, pending) in self.changes.drain() {
            match (pending.was_present, pending.now) {
                (false, Some(who)) => frame.joins.push(who),
                (true, None) => frame.leaves.push(pending.last),
                (true, Some(who)) => frame.updates.push(who),
                (false, None) => {}
            }
        }
        for list in [&mut frame.joins, &mut frame.leaves, &mut frame.updates] {
            list.sort_by(|a, b| a.username.cmp(&b.username));
        }
        frame
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
        let key = user_person(1);
        assert!(people.arrive(&key, alice.clone()));
        assert!(!people.arrive(&key, alice.clone()));
        assert!(people.has(&key));
        assert_eq!(people.len(), 1);
        assert!(people.depart(&key).is_none());
        assert_eq!(people.depart(&key).as_deref(), Some(&*alice));
        assert!(people.is_empty());
    }

    #[test]
    fn guests_are_one_person_per_key_and_updates_are_news_only_when_different() {
        let mut people = People::default();
        let g = who(None, "guest-1", false);
        let h = who(None, "guest-2", false);
        assert!(people.arrive(&guest_person("a1"), g.clone()));
        assert!(!people.arrive(&guest_person("a1"), g.clone()));
        assert!(people.arrive(&guest_person("b2"), h.clone()));
        assert_eq!(people.len(), 2);
        let sam = who(Some(5), "sam", true);
        let key = user_person(5);
        people.arrive(&key, sam.clone());
        assert!(!people.update(&key, who(Some(5), "sam", true)));
        assert!(people.update(&key, who(Some(5), "sam", false)));
        assert!(!people.who(&key).unwrap().is_staff);
    }

    #[test]
    fn a_person_on_two_nodes_is_one_member_until_the_last_node_lets_go() {
        let mut roster = Roster::default();
        let alice = who(Some(1), "alice", false);
        let person = user_person(1);
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
    fn a_diff_says_each_person_once_and_drops_what_nets_out() {
        let mut diff = Diff::default();
        let (alice, bob, carol) = (
            who(Some(1), "alice", false),
            who(Some(2), "bob", false),
            who(Some(3), "carol", false),
        );
        diff.join("u1", alice.clone());
        diff.join("u2", bob.clone());
        diff.leave("u2", bob.clone());
        diff.leave("u3", carol.clone());
        diff.join("u3", who(Some(3), "carol", true));
        let frame = diff.take();
        let names = |list: &[Arc<Who>]| list.iter().map(|w| w.username.clone()).collect::<Vec<_>>();
        assert_eq!(names(&frame.joins), ["alice"]);
        assert!(frame.leaves.is_empty(), "bob came and went");
        assert_eq!(
            names(&frame.updates),
            ["carol"],
            "carol left and came back changed"
        );
        assert!(frame.updates[0].is_staff);
        assert!(diff.is_empty());
        diff.leave("u1", alice);
        assert_eq!(names(&diff.take().leaves), ["alice"]);
    }

    #[test]
    fn a_guest_on_two_nodes_is_one_person_and_the_list_is_by_name() {
        let mut roster = Roster::default();
        let g = who(None, "guest-1", false);
        let h = who(None, "guest-1", false);
        assert!(roster.arrive("a", &guest_person("a1"), g.clone()));
        assert!(!roster.arrive("b", &guest_person("a1"), g.clone()));
        assert!(roster.arrive("b", &guest_person("b2"), h.clone()));
        let sam = who(Some(5), "sam", true);
        roster.arrive("b", "u5", sam.clone());
        assert!(roster.update("u5", who(Some(5), "sam", false)));
        assert!(!roster.update("u5", who(Some(5), "sam", false)));
        let names: Vec<_> = roster.list().iter().map(|w| w.username.clone()).collect();
        assert_eq!(names, ["guest-1", "guest-1", "sam"]);
    }
}
