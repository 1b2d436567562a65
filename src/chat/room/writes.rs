//! What a room has been told to store, and the leaves that wait behind it.
//!
//! Messages are stored one batch at a time, in the order they reached the
//! room, so the order of their ids is the order they were said. A person's
//! leave waits until everything that reached the room before it is stored
//! and published, so on every node a leave follows its person's words.
//!
//! A plain struct: the room drives it and does the storing.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::chat::frames::Who;
use crate::ws::frames::Ref;
use crate::ws::session::SessionId;

/// Messages waiting to be stored; past this a member is told to slow down.
const MAX_QUEUED: usize = 4096;
/// Messages stored in one transaction.
const WRITE_BATCH: usize = 256;

/// A message waiting to be stored.
pub struct Queued {
    /// Its place in the order messages reached the room.
    seq: u64,
    pub session: SessionId,
    pub reference: Option<Ref>,
    pub who: Arc<Who>,
    pub body: String,
    pub sent_at: chrono::NaiveDateTime,
}

#[derive(Default)]
pub struct Writes {
    queue: VecDeque<Queued>,
    /// A batch is being stored.
    writing: bool,
    /// The `seq` the next queued message gets, and the first not yet
    /// stored and published.
    next_seq: u64,
    done_seq: u64,
    /// Leaves waiting behind messages, each with the `seq` it waits for.
    departures: VecDeque<(u64, String)>,
}

impl Writes {
    /// No message more is taken until a batch is out: the sender is told
    /// to send again shortly.
    pub fn full(&self) -> bool {
        self.queue.len() >= MAX_QUEUED
    }

    /// Queues a message behind those before it (whether the queue is
    /// [`full`](Writes::full) is the room's to check first).
    pub fn push(
        &mut self,
        session: SessionId,
        reference: Option<Ref>,
        who: Arc<Who>,
        body: String,
        sent_at: chrono::NaiveDateTime,
    ) {
        self.queue.push_back(Queued {
            seq: self.next_seq,
            session,
            reference,
            who,
            body,
            sent_at,
        });
        self.next_seq += 1;
    }

    /// The next batch to store, unless one is being stored (one at a time
    /// keeps ids in the order messages came) or nothing waits.
    pub fn next_batch(&mut self) -> Option<Vec<Queued>> {
        if self.writing || self.queue.is_empty() {
            return None;
        }
        self.writing = true;
        let take = self.queue.len().min(WRITE_BATCH);
        Some(self.queue.drain(..take).collect())
    }

    /// The batch is stored (or failed) and its messages published: the
    /// persons whose leaves waited for it leave now, in order.
    pub fn stored(&mut self, batch: &[Queued]) -> Vec<String> {
        self.writing = false;
        if let Some(last) = batch.last() {
            self.done_seq = last.seq + 1;
        }
        let mut due = Vec::new();
        while let Some((seq, person)) = self.departures.pop_front() {
            if seq > self.done_seq {
                self.departures.push_front((seq, person));
                break;
            }
            due.push(person);
        }
        due
    }

    /// A person's socket left: `Some` if they may leave now, or `None` if
    /// their leave waits behind what reached the room before it (it comes
    /// back from [`Writes::stored`]).
    pub fn depart(&mut self, person: String) -> Option<String> {
        if self.next_seq > self.done_seq {
            self.departures.push_back((self.next_seq, person));
            return None;
        }
        Some(person)
    }

    /// Something is still to be stored, or a leave waits.
    pub fn busy(&self) -> bool {
        self.writing || !self.queue.is_empty() || !self.departures.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn say(writes: &mut Writes, body: &str) {
        let who = Arc::new(Who {
            id: Some(1),
            username: "alice".into(),
            is_staff: false,
        });
        let at = chrono::DateTime::from_timestamp(0, 0).unwrap().naive_utc();
        writes.push(SessionId::for_tests(1), None, who, body.into(), at)
    }

    fn bodies(batch: &[Queued]) -> Vec<&str> {
        batch.iter().map(|q| q.body.as_str()).collect()
    }

    #[test]
    fn a_message_queued_but_not_yet_taken_keeps_the_room_busy() {
        let mut writes = Writes::default();
        say(&mut writes, "one");
        assert!(writes.busy(), "queued, not yet in a batch");
        let batch = writes.next_batch().unwrap();
        assert!(writes.busy(), "in a batch being stored");
        writes.stored(&batch);
        assert!(!writes.busy());
    }

    #[test]
    fn a_leave_with_nothing_queued_goes_at_once() {
        let mut writes = Writes::default();
        assert_eq!(writes.depart("u1".into()), Some("u1".into()));
        assert!(!writes.busy());
    }

    #[test]
    fn a_leave_waits_for_everything_said_before_it_and_no_longer() {
        let mut writes = Writes::default();
        say(&mut writes, "one");
        let first = writes.next_batch().unwrap();
        say(&mut writes, "two");
        assert_eq!(writes.depart("u1".into()), None);
        say(&mut writes, "three");
        assert_eq!(writes.depart("u2".into()), None);

        // The first batch does not hold "two": the leave still waits.
        assert!(writes.stored(&first).is_empty());
        let second = writes.next_batch().unwrap();
        assert_eq!(bodies(&second), ["two", "three"]);
        // "two" and "three" are out: both leaves go, in order.
        assert_eq!(writes.stored(&second), ["u1", "u2"]);
        assert!(!writes.busy());
    }

    #[test]
    fn one_batch_is_stored_at_a_time_in_the_order_messages_came() {
        let mut writes = Writes::default();
        for i in 0..WRITE_BATCH + 1 {
            say(&mut writes, &i.to_string());
        }
        let first = writes.next_batch().unwrap();
        assert_eq!(first.len(), WRITE_BATCH);
        assert!(
            writes.next_batch().is_none(),
            "a second batch while one is stored"
        );
        assert!(writes.busy());
        writes.stored(&first);
        let second = writes.next_batch().unwrap();
        assert_eq!(bodies(&second), [WRITE_BATCH.to_string()]);
        writes.stored(&second);
        assert!(writes.next_batch().is_none());
    }

    #[test]
    fn the_queue_is_full_at_its_limit_and_takes_more_once_a_batch_is_out() {
        let mut writes = Writes::default();
        for _ in 0..MAX_QUEUED - 1 {
            say(&mut writes, "x");
        }
        assert!(!writes.full(), "one place left");
        say(&mut writes, "the last place");
        assert!(writes.full());
        let batch = writes.next_batch().unwrap();
        assert!(!writes.full(), "a batch out makes room");
        writes.stored(&batch);
    }
}
