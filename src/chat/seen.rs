//! Which messages a room has delivered, so each reaches its members once:
//! a message can come twice (its own echo after a failed publish was
//! delivered locally, or a catch-up from the database overlapping what the
//! bus brought). Pure and bounded: it remembers the newest ids only.

use std::collections::{BTreeSet, VecDeque};

/// How many ids are remembered; far more than can arrive out of order.
const REMEMBERED: usize = 16_384;

#[derive(Default)]
pub struct Seen {
    ids: BTreeSet<i64>,
    order: VecDeque<i64>,
}

impl Seen {
    /// True when `id` is new (and is now remembered).
    pub fn first(&mut self, id: i64) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }

    /// Where a catch-up reads from: the oldest id still remembered, so a
    /// message committed late with a lower id than others is not skipped;
    /// `None` when nothing was delivered yet.
    pub fn catch_up_from(&self) -> Option<i64> {
        self.ids.first().map(|oldest| oldest - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_new_once_and_the_oldest_remembered_bounds_a_catch_up() {
        let mut seen = Seen::default();
        assert_eq!(seen.catch_up_from(), None);
        assert!(seen.first(10));
        assert!(seen.first(8));
        assert!(!seen.first(10));
        assert_eq!(seen.catch_up_from(), Some(7));
    }

    #[test]
    fn it_remembers_a_bounded_number_of_ids() {
        let mut seen = Seen::default();
        let count = i64::try_from(REMEMBERED).unwrap() + 10;
        for id in 0..count {
            seen.first(id);
        }
        assert_eq!(seen.ids.len(), REMEMBERED);
        assert_eq!(seen.catch_up_from(), Some(9));
    }
}
