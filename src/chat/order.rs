//! The order a room delivers its messages in: by their number in the room
//! (the protocol's `id`), each once, none skipped, on every node alike.
//!
//! Numbers are taken under the room's counter row in the message's own
//! transaction (`db::chat`), so they commit one after another: when number
//! n has arrived, every number below it is already in the database. The bus
//! may still bring them in another order (two nodes publish after their own
//! commits), so a message that comes before its turn is held, and when the
//! one it waits for does not follow soon, the room reads it from the
//! database. A client that resumes with `?since=` of the last id it saw has
//! then seen every id below it: none is skipped.
//!
//! Pure and bounded: the room feeds it what arrives and what it reads, and
//! delivers what it hands back.

use std::collections::BTreeMap;

use bytestring::ByteString;

/// Messages held while one before them is missing; past this, the missing
/// ones are given up on (they are still in the database and in history).
const MAX_HELD: usize = 16_384;

pub struct Order {
    /// The number delivered next; `None` until the first message when the
    /// room could not read where its numbers stand.
    next: Option<i64>,
    held: BTreeMap<i64, ByteString>,
}

impl Order {
    /// A room whose messages up to `last` are in its history already.
    pub fn after(last: i64) -> Self {
        Self {
            next: Some(last + 1),
            held: BTreeMap::new(),
        }
    }

    /// A room that could not read where its numbers stand: it starts from
    /// the first message that arrives.
    pub fn unanchored() -> Self {
        Self {
            next: None,
            held: BTreeMap::new(),
        }
    }

    /// The newest number delivered in order, where a read of the database
    /// starts after; `None` before anything was.
    pub fn delivered_up_to(&self) -> Option<i64> {
        self.next.map(|next| next - 1)
    }

    /// A message held for a number that has not arrived: the room reads the
    /// database after [`Self::delivered_up_to`].
    pub fn waiting(&self) -> bool {
        !self.held.is_empty()
    }

    /// A message from the bus. Returns what may now be delivered, in order:
    /// nothing when it was delivered before or comes before its turn.
    pub fn offer(&mut self, id: i64, frame: ByteString) -> Vec<(i64, ByteString)> {
        let next = *self.next.get_or_insert(id);
        if id < next {
            return Vec::new();
        }
        self.held.insert(id, frame);
        if self.held.len() > MAX_HELD {
            tracing::warn!(
                missing = next,
                "too many chat messages held behind a missing one; going on without it"
            );
            self.skip_to_held();
        }
        self.release()
    }

    /// The first message held, if any: a read that starts now and reaches
    /// the end of the room proves which numbers below it exist.
    pub fn first_held(&self) -> Option<i64> {
        self.held.keys().next().copied()
    }

    /// Messages read from the database, in number order, after
    /// [`Self::delivered_up_to`]. Numbers between them that the database
    /// does not hold will never come. `proven`: the read reached the end of
    /// the room, and this message (its [`Self::first_held`] when the read
    /// began) was committed before it, and so was every number below it:
    /// those the read did not find will never come either. A message held
    /// while the read was under way proves nothing: the numbers below it
    /// may have committed after the read looked.
    pub fn fill(
        &mut self,
        rows: impl IntoIterator<Item = (i64, ByteString)>,
        proven: Option<i64>,
    ) -> Vec<(i64, ByteString)> {
        let mut out = Vec::new();
        for (id, frame) in rows {
            let next = self.next.get_or_insert(id);
            if id > *next {
                *next = id;
            }
            out.extend(self.offer(id, frame));
        }
        if let (Some(proven), Some(next)) = (proven, self.next.as_mut())
            && *next < proven
        {
            *next = proven;
            out.extend(self.release());
        }
        out
    }

    fn skip_to_held(&mut self) {
        self.next = self.held.keys().next().copied().or(self.next);
    }

    /// Hands back the held messages whose turn has come.
    fn release(&mut self) -> Vec<(i64, ByteString)> {
        let mut out = Vec::new();
        let Some(next) = self.next.as_mut() else {
            return out;
        };
        while let Some(frame) = self.held.remove(next) {
            out.push((*next, frame));
            *next += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: i64) -> ByteString {
        format!("m{id}").into()
    }

    fn ids(delivered: Vec<(i64, ByteString)>) -> Vec<i64> {
        delivered
            .into_iter()
            .map(|(id, frame)| {
                assert_eq!(frame, self::frame(id));
                id
            })
            .collect()
    }

    #[test]
    fn a_message_before_its_turn_waits_for_the_ones_below_it() {
        let mut order = Order::after(44);
        assert_eq!(ids(order.offer(46, frame(46))), Vec::<i64>::new());
        assert!(order.waiting());
        assert_eq!(order.delivered_up_to(), Some(44));
        assert_eq!(ids(order.offer(45, frame(45))), vec![45, 46]);
        assert!(!order.waiting());
        assert_eq!(ids(order.offer(47, frame(47))), vec![47]);
        assert_eq!(order.delivered_up_to(), Some(47));
    }

    #[test]
    fn each_number_is_delivered_once() {
        let mut order = Order::after(0);
        assert_eq!(ids(order.offer(1, frame(1))), vec![1]);
        assert_eq!(ids(order.offer(1, frame(1))), Vec::<i64>::new());
        assert_eq!(ids(order.offer(3, frame(3))), Vec::<i64>::new());
        assert_eq!(ids(order.offer(3, frame(3))), Vec::<i64>::new());
        assert_eq!(ids(order.offer(2, frame(2))), vec![2, 3]);
        // Already in the history the room loaded.
        let mut order = Order::after(10);
        assert_eq!(ids(order.offer(10, frame(10))), Vec::<i64>::new());
    }

    #[test]
    fn a_gap_is_filled_from_the_database_and_what_the_bus_brings_later_is_not_sent_again() {
        let mut order = Order::after(4);
        order.offer(7, frame(7));
        let read = [5, 6, 7, 8].map(|id| (id, frame(id)));
        assert_eq!(ids(order.fill(read, Some(7))), vec![5, 6, 7, 8]);
        assert!(!order.waiting());
        for late in [5, 6, 8] {
            assert_eq!(ids(order.offer(late, frame(late))), Vec::<i64>::new());
        }
        assert_eq!(ids(order.offer(9, frame(9))), vec![9]);
    }

    #[test]
    fn numbers_the_database_does_not_hold_are_stepped_over() {
        // Messages stored before numbers were per room keep their global
        // ids, with gaps between them.
        let mut order = Order::after(4);
        let read = [10, 14].map(|id| (id, frame(id)));
        assert_eq!(ids(order.fill(read, None)), vec![10, 14]);
        assert_eq!(order.delivered_up_to(), Some(14));
    }

    #[test]
    fn a_read_begun_after_a_message_was_held_steps_over_what_it_did_not_find_below_it() {
        let mut order = Order::after(4);
        order.offer(8, frame(8));
        assert_eq!(order.first_held(), Some(8));
        assert_eq!(ids(order.fill([(6, frame(6))], None)), vec![6]);
        assert!(order.waiting(), "a page that was full proves nothing");
        assert_eq!(ids(order.fill(Vec::new(), Some(8))), vec![8]);
        assert!(!order.waiting());
    }

    #[test]
    fn a_message_held_while_a_read_was_under_way_is_no_proof() {
        // The read began while nothing was held, and found 5; 7 arrived
        // meanwhile, and 6 committed after the read looked.
        let mut order = Order::after(4);
        order.offer(7, frame(7));
        assert_eq!(ids(order.fill([(5, frame(5))], None)), vec![5]);
        assert!(order.waiting());
        assert_eq!(ids(order.offer(6, frame(6))), vec![6, 7]);
    }

    #[test]
    fn an_unanchored_room_starts_from_the_first_message() {
        let mut order = Order::unanchored();
        assert_eq!(order.delivered_up_to(), None);
        assert_eq!(ids(order.offer(30, frame(30))), vec![30]);
        assert_eq!(ids(order.offer(29, frame(29))), Vec::<i64>::new());
        let mut order = Order::unanchored();
        assert_eq!(ids(order.fill([(3, frame(3))], None)), vec![3]);
    }

    #[test]
    fn held_messages_are_bounded() {
        let mut order = Order::after(0);
        let last = i64::try_from(MAX_HELD).unwrap() + 1;
        for id in 2..=last {
            assert!(order.offer(id, frame(id)).is_empty());
        }
        assert_eq!(order.held.len(), MAX_HELD);
        let delivered = order.offer(last + 1, frame(last + 1));
        assert_eq!(delivered.len(), MAX_HELD + 1);
        assert_eq!(order.delivered_up_to(), Some(last + 1));
    }
}
