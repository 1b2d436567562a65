//! Puts a zone's pushes back in serial order. Two changes to one zone
//! commit in serial order (each holds the zone's lock), but they reach a
//! broadcaster by different paths: two sessions' threads, two nodes'
//! links to Redis. Each push names the serial it follows from, so a push
//! that arrives ahead of its predecessor is held until the predecessor
//! comes; one whose predecessor never comes (its node died between commit
//! and publish) is given up after a while, and the panels are told to
//! list the zone again instead. Nothing is dropped unless it was passed on
//! before (a replay after an outage).
//!
//! Pure bookkeeping: the broadcaster delivers, reads and times.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How long a push waits for the one before it.
pub const HOLD: Duration = Duration::from_secs(2);

/// Serials passed on that a stream remembers, to tell a replay from a
/// push it never saw.
const RECENT: usize = 64;

/// What one push says about where it stands in its zone's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// The zone's serial before the change; `None` for a zone just made,
    /// which starts a history afresh.
    pub previous: Option<i64>,
    /// The serial after it; `None` for a zone deleted, which ends one.
    pub serial: Option<i64>,
}

/// What the broadcaster does next, in this order.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<F> {
    Deliver(F),
    /// A push was lost or came too late to keep the order: the panels
    /// must list the zone again.
    Resync,
}

#[derive(Debug)]
pub struct Steps<F> {
    pub steps: Vec<Step<F>>,
    /// A push is now held: the caller checks back after [`HOLD`].
    pub started_waiting: bool,
}

#[derive(Debug)]
struct Stream<F> {
    /// The serial of the last push passed on.
    last: i64,
    recent: VecDeque<i64>,
    /// Held pushes by the serial they follow from, with their own.
    held: BTreeMap<i64, (i64, F)>,
    waiting_since: Option<Instant>,
}

impl<F> Stream<F> {
    fn new(last: i64) -> Self {
        Self {
            last,
            recent: VecDeque::with_capacity(RECENT),
            held: BTreeMap::new(),
            waiting_since: None,
        }
    }

    fn pass(&mut self, serial: i64, frame: F, steps: &mut Vec<Step<F>>) {
        self.last = serial;
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(serial);
        steps.push(Step::Deliver(frame));
    }
}

/// One ordered history per key (a topic and a zone).
#[derive(Debug)]
pub struct Sequencer<K, F> {
    streams: HashMap<K, Stream<F>>,
}

impl<K: Hash + Eq + Clone, F> Default for Sequencer<K, F> {
    fn default() -> Self {
        Self {
            streams: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, F> Sequencer<K, F> {
    /// A push arrives. For a key with no history yet (its topic just
    /// heard), the push's own predecessor is taken as passed on already:
    /// the panels listed the zone after it.
    pub fn arrive(&mut self, key: &K, place: Place, frame: F, now: Instant) -> Steps<F> {
        let mut steps = Vec::new();
        let Some(serial) = place.serial else {
            self.streams.remove(key);
            steps.push(Step::Deliver(frame));
            return Steps {
                steps,
                started_waiting: false,
            };
        };
        let Some(previous) = place.previous else {
            let mut fresh = Stream::new(serial);
            fresh.pass(serial, frame, &mut steps);
            self.streams.insert(key.clone(), fresh);
            return Steps {
                steps,
                started_waiting: false,
            };
        };
        let stream = self
            .streams
            .entry(key.clone())
            .or_insert_with(|| Stream::new(previous));
        let was_waiting = stream.waiting_since.is_some();
        if serial <= stream.last {
            if !stream.recent.contains(&serial) {
                steps.push(Step::Resync);
            }
        } else if previous > stream.last {
            stream.held.insert(previous, (serial, frame));
            stream.waiting_since.get_or_insert(now);
        } else {
            stream.pass(serial, frame, &mut steps);
            while let Some((next, frame)) = stream.held.remove(&stream.last) {
                stream.pass(next, frame, &mut steps);
            }
            // Held pushes older than the order reached can no longer be
            // placed: their panels need the zone listed again.
            let last = stream.last;
            let stale: Vec<i64> = stream.held.range(..last).map(|(p, _)| *p).collect();
            for previous in stale {
                stream.held.remove(&previous);
                steps.push(Step::Resync);
            }
            stream.waiting_since = (!stream.held.is_empty()).then_some(now);
        }
        // A wait already under way has its check-back pending, which looks
        // again while the stream still waits.
        Steps {
            steps,
            started_waiting: !was_waiting && stream.waiting_since.is_some(),
        }
    }

    /// After [`HOLD`]: a push still waiting for its predecessor gives up on
    /// it. `Some(steps)` when the wait ended, `None` when it goes on (a
    /// later gap, still young).
    pub fn expire(&mut self, key: &K, now: Instant) -> Option<Vec<Step<F>>> {
        let stream = self.streams.get_mut(key)?;
        let since = stream.waiting_since?;
        if now.duration_since(since) < HOLD {
            return None;
        }
        let newest = stream.held.values().map(|(serial, _)| *serial).max();
        stream.held.clear();
        stream.waiting_since = None;
        if let Some(newest) = newest {
            stream.last = newest;
            stream.recent.clear();
        }
        Some(vec![Step::Resync])
    }

    /// Whether a key still waits (the caller checks back again).
    pub fn waiting(&self, key: &K) -> bool {
        self.streams
            .get(key)
            .is_some_and(|s| s.waiting_since.is_some())
    }

    /// Forgets the keys `gone` picks: nothing arrives for them any more
    /// (their topic is no longer heard), so what is known goes stale.
    pub fn forget(&mut self, mut gone: impl FnMut(&K) -> bool) {
        self.streams.retain(|key, _| !gone(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(previous: i64, serial: i64) -> Place {
        Place {
            previous: Some(previous),
            serial: Some(serial),
        }
    }

    fn delivered(steps: &Steps<&'static str>) -> Vec<&'static str> {
        steps
            .steps
            .iter()
            .map(|s| match s {
                Step::Deliver(f) => *f,
                Step::Resync => "resync",
            })
            .collect()
    }

    #[test]
    fn a_push_ahead_of_its_predecessor_waits_for_it() {
        let mut order = Sequencer::default();
        let now = Instant::now();
        let first = order.arrive(&"z", at(10, 11), "11", now);
        assert_eq!(delivered(&first), ["11"]);
        let early = order.arrive(&"z", at(12, 13), "13", now);
        assert!(early.steps.is_empty());
        assert!(early.started_waiting);
        let late = order.arrive(&"z", at(11, 12), "12", now);
        assert_eq!(delivered(&late), ["12", "13"]);
        assert!(!order.waiting(&"z"));
    }

    #[test]
    fn a_replay_is_dropped_and_an_unseen_older_push_asks_for_a_resync() {
        let mut order = Sequencer::default();
        let now = Instant::now();
        order.arrive(&"z", at(10, 11), "11", now);
        order.arrive(&"z", at(11, 12), "12", now);
        assert!(order.arrive(&"z", at(10, 11), "11", now).steps.is_empty());
        // Heard first at 13: 11, never passed on, cannot be placed.
        let mut order = Sequencer::default();
        order.arrive(&"y", at(12, 13), "13", now);
        let old = order.arrive(&"y", at(10, 11), "11", now);
        assert_eq!(delivered(&old), ["resync"]);
    }

    #[test]
    fn a_predecessor_that_never_comes_ends_in_a_resync_after_the_hold() {
        let mut order = Sequencer::default();
        let now = Instant::now();
        order.arrive(&"z", at(10, 11), "11", now);
        order.arrive(&"z", at(12, 13), "13", now);
        assert!(order.expire(&"z", now + HOLD / 2).is_none());
        let gave_up = order.expire(&"z", now + HOLD).unwrap();
        assert_eq!(gave_up, [Step::Resync]);
        // The order goes on from the newest held.
        let next = order.arrive(&"z", at(13, 14), "14", now + HOLD);
        assert_eq!(delivered(&next), ["14"]);
    }

    #[test]
    fn a_zone_made_again_starts_a_new_history() {
        let mut order = Sequencer::default();
        let now = Instant::now();
        order.arrive(&"z", at(10, 11), "11", now);
        let gone = Place {
            previous: Some(11),
            serial: None,
        };
        assert_eq!(
            delivered(&order.arrive(&"z", gone, "deleted", now)),
            ["deleted"]
        );
        let made = Place {
            previous: None,
            serial: Some(12),
        };
        assert_eq!(
            delivered(&order.arrive(&"z", made, "created", now)),
            ["created"]
        );
        assert_eq!(
            delivered(&order.arrive(&"z", at(12, 13), "13", now)),
            ["13"]
        );
    }
}
