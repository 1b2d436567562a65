//! Who may open a socket, and how fast one person may write across all of
//! theirs. Two kinds of bound, both this node's own:
//!
//! - caps answered before the upgrade: open sockets and handshakes per
//!   second on the node (`503 overloaded`), sockets per user and guest
//!   sockets per client address (`429 too_many_connections`);
//! - each person's write budgets, shared by all their sockets (chat
//!   messages, DNS changes), so that opening more sockets multiplies
//!   nothing. A person is a user, or for a guest the client's address
//!   (a guest's key is free to mint, an address is not).
//!
//! An admitted socket holds a [`Slot`]; dropping it (the session ends)
//! gives the place back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::Caps;
use crate::ws::rate::Bucket;

/// Whose sockets and budgets these are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Person {
    User(i32),
    Guest(IpAddr),
}

/// Why a socket was not admitted, with how long the client should wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capped {
    /// The node is at its socket or handshake cap.
    Overloaded { retry_after: Duration },
    /// This user, or this address's guests, hold all the sockets they may.
    TooManyConnections { retry_after: Duration, cap: usize },
}

/// How long a client refused for a full cap is asked to wait: sockets do
/// not come free at a rate anyone can predict, and a reconnecting crowd
/// told the same wait comes back together, so the wait is spread.
fn wait_for_a_place() -> Duration {
    Duration::from_secs(5 + rand::random_range(0..10))
}

pub struct Admission {
    caps: Caps,
    /// The node-wide socket cap, as read from the file limit at start when
    /// `HUB_MAX_SOCKETS` leaves it open.
    max_sockets: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    open: usize,
    handshakes: Bucket,
    people: HashMap<Person, Budget>,
    /// Sweep the people who left once the map reaches this size, so it
    /// grows with the people present, never with everyone ever seen.
    sweep_at: usize,
}

/// One person on this node: their sockets and shared write budgets.
struct Budget {
    sockets: usize,
    chat: Bucket,
    dns_writes: Bucket,
}

impl Budget {
    /// Nobody's socket holds it and its budgets are whole again: to forget
    /// it changes nothing.
    fn is_idle(&mut self, now: Instant) -> bool {
        self.sockets == 0 && self.chat.is_full(now) && self.dns_writes.is_full(now)
    }
}

const FIRST_SWEEP: usize = 1024;

impl Admission {
    pub fn new(caps: Caps, max_sockets: usize, now: Instant) -> Self {
        let per_sec = caps.handshakes_per_sec;
        Self {
            caps,
            max_sockets,
            inner: Mutex::new(Inner {
                open: 0,
                handshakes: Bucket::new(f64::from(per_sec), per_sec, now),
                people: HashMap::new(),
                sweep_at: FIRST_SWEEP,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// First of every handshake, before its token is read: a node at its
    /// caps refuses at the least cost it can.
    pub fn handshake(&self, now: Instant) -> Result<(), Capped> {
        let mut inner = self.lock();
        if inner.open >= self.max_sockets {
            return Err(Capped::Overloaded {
                retry_after: wait_for_a_place(),
            });
        }
        inner
            .handshakes
            .take(now)
            .map_err(|wait| Capped::Overloaded {
                retry_after: wait.max(Duration::from_secs(1)),
            })
    }

    /// A place for one more socket of `person`, held until the slot drops.
    pub fn admit(self: &Arc<Self>, person: Person, now: Instant) -> Result<Slot, Capped> {
        let mut inner = self.lock();
        if inner.open >= self.max_sockets {
            return Err(Capped::Overloaded {
                retry_after: wait_for_a_place(),
            });
        }
        let cap = match person {
            Person::User(_) => self.caps.sockets_per_user,
            Person::Guest(_) => self.caps.guest_sockets_per_address,
        };
        if inner.people.len() >= inner.sweep_at {
            inner.sweep(now);
        }
        let budget = inner
            .people
            .entry(person)
            .or_insert_with(|| self.budget(now));
        if budget.sockets >= cap {
            return Err(Capped::TooManyConnections {
                retry_after: wait_for_a_place(),
                cap,
            });
        }
        budget.sockets += 1;
        inner.open += 1;
        Ok(Slot {
            admission: self.clone(),
            person,
        })
    }

    fn budget(&self, now: Instant) -> Budget {
        Budget {
            sockets: 0,
            chat: Bucket::new(
                self.caps.person_rate_per_sec,
                self.caps.person_rate_burst,
                now,
            ),
            dns_writes: Bucket::new(
                f64::from(self.caps.dns_writes_per_sec),
                self.caps.dns_writes_per_sec,
                now,
            ),
        }
    }

    /// Sockets open on this node.
    pub fn open(&self) -> usize {
        self.lock().open
    }

    fn release(&self, person: Person) {
        let mut inner = self.lock();
        inner.open -= 1;
        let now = Instant::now();
        if let Some(budget) = inner.people.get_mut(&person) {
            budget.sockets -= 1;
            if budget.is_idle(now) {
                inner.people.remove(&person);
            }
        }
    }

    fn spend(&self, person: Person, now: Instant, what: fn(&mut Budget) -> &mut Bucket) -> bool {
        let mut inner = self.lock();
        inner
            .people
            .get_mut(&person)
            .is_none_or(|budget| what(budget).take(now).is_ok())
    }
}

impl Inner {
    fn sweep(&mut self, now: Instant) {
        self.people.retain(|_, budget| !budget.is_idle(now));
        self.sweep_at = (2 * self.people.len()).max(FIRST_SWEEP);
    }
}

/// One admitted socket's place, and its person's budgets.
pub struct Slot {
    admission: Arc<Admission>,
    person: Person,
}

impl Slot {
    /// One chat message from this person (on any of their sockets), if
    /// their budget allows it now.
    pub fn chat(&self, now: Instant) -> bool {
        self.admission.spend(self.person, now, |b| &mut b.chat)
    }

    /// One DNS change from this person, if their budget allows it now.
    pub fn dns_write(&self, now: Instant) -> bool {
        self.admission
            .spend(self.person, now, |b| &mut b.dns_writes)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.release(self.person);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> Caps {
        Caps {
            max_sockets: None,
            handshakes_per_sec: 3,
            sockets_per_user: 2,
            guest_sockets_per_address: 3,
            person_rate_per_sec: 1.0,
            person_rate_burst: 2,
            dns_writes_per_sec: 1,
        }
    }

    fn guest(n: u8) -> Person {
        Person::Guest(IpAddr::from([192, 0, 2, n]))
    }

    #[test]
    fn a_user_and_an_address_each_hold_their_own_cap_and_get_places_back() {
        let t0 = Instant::now();
        let admission = Arc::new(Admission::new(caps(), 100, t0));
        let first = admission.admit(Person::User(1), t0).unwrap();
        let _second = admission.admit(Person::User(1), t0).unwrap();
        assert!(matches!(
            admission.admit(Person::User(1), t0),
            Err(Capped::TooManyConnections { cap: 2, .. })
        ));
        // Another user, and guests, are not counted with user 1.
        let _other = admission.admit(Person::User(2), t0).unwrap();
        let guests: Vec<Slot> = (0..3)
            .map(|_| admission.admit(guest(1), t0).unwrap())
            .collect();
        assert!(matches!(
            admission.admit(guest(1), t0),
            Err(Capped::TooManyConnections { cap: 3, .. })
        ));
        let _elsewhere = admission.admit(guest(2), t0).unwrap();
        assert_eq!(admission.open(), 7);
        drop(first);
        drop(guests);
        assert_eq!(admission.open(), 3);
        // User 1 still holds one: one more place, not two.
        let _again = admission.admit(Person::User(1), t0).unwrap();
        assert!(matches!(
            admission.admit(Person::User(1), t0),
            Err(Capped::TooManyConnections { cap: 2, .. })
        ));
        admission.admit(guest(1), t0).unwrap();
    }

    #[test]
    fn the_node_cap_refuses_handshakes_and_admissions_as_overloaded() {
        let t0 = Instant::now();
        let admission = Arc::new(Admission::new(caps(), 2, t0));
        let _a = admission.admit(Person::User(1), t0).unwrap();
        let b = admission.admit(guest(1), t0).unwrap();
        let full = [
            admission.handshake(t0),
            admission.admit(guest(2), t0).map(drop),
        ];
        for refused in full {
            let Err(Capped::Overloaded { retry_after }) = refused else {
                panic!("not refused: {refused:?}");
            };
            // Spread, so that a refused crowd does not come back at once.
            assert!((5..15).contains(&retry_after.as_secs()), "{retry_after:?}");
        }
        drop(b);
        assert_eq!(admission.handshake(t0), Ok(()));
    }

    #[test]
    fn handshakes_past_the_rate_wait_at_least_a_second() {
        let t0 = Instant::now();
        let admission = Admission::new(caps(), 100, t0);
        for _ in 0..3 {
            assert_eq!(admission.handshake(t0), Ok(()));
        }
        assert_eq!(
            admission.handshake(t0),
            Err(Capped::Overloaded {
                retry_after: Duration::from_secs(1)
            })
        );
        assert_eq!(admission.handshake(t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn a_person_s_budgets_are_shared_by_all_their_sockets_and_outlive_them() {
        let t0 = Instant::now();
        let admission = Arc::new(Admission::new(caps(), 100, t0));
        let one = admission.admit(Person::User(1), t0).unwrap();
        let two = admission.admit(Person::User(1), t0).unwrap();
        // A burst of two chat messages, whichever socket sends them.
        assert!(one.chat(t0));
        assert!(two.chat(t0));
        assert!(!one.chat(t0));
        assert!(!two.chat(t0));
        // DNS changes have a budget of their own.
        assert!(two.dns_write(t0));
        assert!(!one.dns_write(t0));
        // Closing every socket and opening a new one does not refill it.
        drop((one, two));
        let three = admission.admit(Person::User(1), t0).unwrap();
        assert!(!three.chat(t0));
        assert!(three.chat(t0 + Duration::from_secs(1)));
        // Someone else's budget is whole.
        let other = admission.admit(Person::User(2), t0).unwrap();
        assert!(other.chat(t0));
    }

    #[test]
    fn people_who_left_with_whole_budgets_are_forgotten() {
        let t0 = Instant::now();
        let admission = Arc::new(Admission::new(caps(), 1_000_000, t0));
        drop(admission.admit(Person::User(1), t0).unwrap());
        assert!(admission.lock().people.is_empty());
        // Those who left mid-budget are swept once the map has grown.
        for n in 0..i32::try_from(FIRST_SWEEP).unwrap() {
            let slot = admission.admit(Person::User(n), t0).unwrap();
            assert!(slot.chat(t0));
        }
        assert_eq!(admission.lock().people.len(), FIRST_SWEEP);
        // Below the threshold nothing was swept: a sweep is a pass over
        // everyone, so it runs once the map has doubled, not per admission.
        assert_eq!(admission.lock().sweep_at, FIRST_SWEEP);
        let later = t0 + Duration::from_secs(10);
        let _slot = admission.admit(Person::User(-1), later).unwrap();
        assert_eq!(admission.lock().people.len(), 1);
    }

    #[test]
    fn a_sweep_that_forgets_no_one_waits_for_the_map_to_double_again() {
        let t0 = Instant::now();
        let admission = Arc::new(Admission::new(caps(), 1_000_000, t0));
        // Everyone holds a socket, so the sweep at the threshold keeps all.
        let held: Vec<Slot> = (0..=i32::try_from(FIRST_SWEEP).unwrap())
            .map(|n| admission.admit(Person::User(n), t0).unwrap())
            .collect();
        let inner = admission.lock();
        assert_eq!(inner.people.len(), held.len());
        assert_eq!(inner.sweep_at, 2 * FIRST_SWEEP);
    }
}
