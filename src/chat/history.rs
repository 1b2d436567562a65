//! A room's recent history, held as the broadcast frames themselves so a
//! joiner's `chat.history` is spliced from bytes already made. Pure: the
//! room feeds it, and `since`/`truncated` are exact by construction.

use std::collections::VecDeque;

use bytestring::ByteString;

pub struct History {
    /// The newest messages, oldest first.
    kept: VecDeque<(i64, ByteString)>,
    max_len: usize,
    /// A history frame never grows past this, so it always fits a member's
    /// outbox (a room of long messages must not close every joiner).
    max_bytes: usize,
    /// Every message with an id up to this one is no longer kept;
    /// `i64::MAX` when history could not be loaded at all.
    forgotten_up_to: i64,
}

impl History {
    pub fn new(max_len: usize, max_bytes: usize) -> Self {
        Self {
            kept: VecDeque::new(),
            max_len,
            max_bytes,
            forgotten_up_to: 0,
        }
    }

    /// Rows read from the database at the room's start, oldest first: the
    /// newest up to `max_len` are kept; the newest id of all is remembered
    /// even when none are kept, so `since` after a restart stays exact.
    pub fn loaded(&mut self, rows: impl IntoIterator<Item = (i64, ByteString)>) {
        for (id, frame) in rows {
            self.remember(id, frame);
        }
    }

    /// Storage could not be read: every `since` is answered as truncated.
    pub fn unavailable(&mut self) {
        self.forgotten_up_to = i64::MAX;
    }

    /// Keeps a message in id order: messages from several nodes can come
    /// in another order than their ids, and `since` counts by id.
    pub fn remember(&mut self, id: i64, frame: ByteString) {
        let at = self
            .kept
            .iter()
            .rposition(|(kept, _)| *kept < id)
            .map_or(0, |i| i + 1);
        self.kept.insert(at, (id, frame));
        while self.kept.len() > self.max_len {
            let Some((old, _)) = self.kept.pop_front() else {
                break;
            };
            self.forgotten_up_to = self.forgotten_up_to.max(old);
        }
    }

    /// The `chat.history` frame: the kept messages after `since` (all kept
    /// ones without it), newest first until `max_bytes` is reached, sent
    /// oldest first. `truncated` says that messages after `since` exist
    /// that are not in it.
    pub fn frame(&self, room: &str, since: Option<i64>) -> ByteString {
        let from = since.unwrap_or(i64::MIN);
        let mut truncated = match since {
            None => self.forgotten_up_to == i64::MAX,
            Some(id) => id < self.forgotten_up_to,
        };
        let room = serde_json::to_string(room).expect("a string serialises");
        let fixed = r#"{"type":"chat.history","room":,"messages":[],"truncated":false}"#.len();
        let mut budget = self.max_bytes.saturating_sub(fixed + room.len());
        let mut taken = 0;
        for (id, frame) in self.kept.iter().rev() {
            if *id <= from {
                break;
            }
            if frame.len() + 1 > budget {
                truncated |= since.is_some();
                break;
            }
            budget -= frame.len() + 1;
            taken += 1;
        }
        let chosen = self.kept.iter().skip(self.kept.len() - taken);
        let mut out = String::with_capacity(self.max_bytes - budget);
        out.push_str(r#"{"type":"chat.history","room":"#);
        out.push_str(&room);
        out.push_str(r#","messages":["#);
        for (i, (_, frame)) in chosen.enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(frame);
        }
        out.push_str(r#"],"truncated":"#);
        out.push_str(if truncated { "true" } else { "false" });
        out.push('}');
        out.into()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn msg(id: i64, body: &str) -> (i64, ByteString) {
        (id, format!(r#"{{"id":{id},"message":"{body}"}}"#).into())
    }

    fn parse(frame: &ByteString) -> (Vec<i64>, bool) {
        let v: Value = serde_json::from_str(frame).unwrap();
        let ids = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_i64().unwrap())
            .collect();
        (ids, v["truncated"].as_bool().unwrap())
    }

    #[test]
    fn since_sends_exactly_what_was_missed_and_says_when_more_was() {
        let mut h = History::new(3, 1 << 20);
        h.loaded((1..=5).map(|id| msg(id, "x")));
        assert_eq!(parse(&h.frame("r", None)), (vec![3, 4, 5], false));
        assert_eq!(parse(&h.frame("r", Some(3))), (vec![4, 5], false));
        assert_eq!(parse(&h.frame("r", Some(2))), (vec![3, 4, 5], false));
        assert_eq!(parse(&h.frame("r", Some(1))), (vec![3, 4, 5], true));
        assert_eq!(parse(&h.frame("r", Some(5))), (vec![], false));
    }

    #[test]
    fn messages_that_come_out_of_id_order_are_kept_in_it() {
        let mut h = History::new(3, 1 << 20);
        h.loaded([
            msg(1, "x"),
            msg(3, "x"),
            msg(2, "x"),
            msg(5, "x"),
            msg(4, "x"),
        ]);
        assert_eq!(parse(&h.frame("r", None)), (vec![3, 4, 5], false));
        assert_eq!(parse(&h.frame("r", Some(3))), (vec![4, 5], false));
    }

    #[test]
    fn a_room_that_keeps_no_history_still_knows_what_a_since_missed() {
        let mut h = History::new(0, 1 << 20);
        h.loaded([msg(7, "x")]);
        assert_eq!(parse(&h.frame("r", Some(6))), (vec![], true));
        assert_eq!(parse(&h.frame("r", Some(7))), (vec![], false));
    }

    #[test]
    fn the_frame_never_grows_past_its_byte_budget() {
        let long = "y".repeat(1000);
        let mut h = History::new(50, 4096);
        h.loaded((1..=50).map(|id| msg(id, &long)));
        let frame = h.frame("room", None);
        assert!(frame.len() <= 4096, "{}", frame.len());
        let (ids, truncated) = parse(&frame);
        assert_eq!(ids, vec![48, 49, 50], "the newest that fit");
        assert!(!truncated, "a plain join asks for recent messages only");
        let (_, truncated) = parse(&h.frame("room", Some(10)));
        assert!(truncated, "a since that cannot be met in full says so");
    }

    #[test]
    fn history_that_could_not_load_is_truncated_for_everyone() {
        let mut h = History::new(5, 1 << 20);
        h.unavailable();
        assert_eq!(parse(&h.frame("r", None)), (vec![], true));
        assert_eq!(parse(&h.frame("r", Some(1))), (vec![], true));
    }
}
