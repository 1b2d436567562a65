//! What a room publishes on its topic, for the room of the same name on
//! every node (its own included): each stored message, and each person
//! arriving on, leaving or changing on a node. Rooms deliver these, never
//! what they handled themselves, so local and remote members see the same
//! events in the same order.
//!
//! A message, by far the most frequent, travels as `#<id> ` followed by its
//! `chat.message` frame exactly as members receive it: no node escapes it
//! into an envelope or parses it back out, it only checks that it is
//! UTF-8. The rarer presence events travel as JSON objects, tagged by
//! `kind`.

use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use serde::{Deserialize, Serialize};

use super::frames::Who;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RoomEvent {
    /// A stored message, as its `chat.message` frame, with its number in
    /// the room. Never JSON on the wire (see above).
    #[serde(skip)]
    Message { id: i64, frame: ByteString },
    /// A person's first socket on `node`.
    Arrive {
        node: String,
        person: String,
        who: Arc<Who>,
    },
    /// A person's last socket on `node` left (or `node` died).
    Depart { node: String, person: String },
    /// A person is shown differently (staff granted or taken away).
    Update { person: String, who: Arc<Who> },
}

/// What starts a message on the wire; a JSON event starts with `{`.
const MESSAGE: u8 = b'#';

impl RoomEvent {
    pub fn to_bytes(&self) -> Vec<u8> {
        if let Self::Message { id, frame } = self {
            let mut wire = Vec::with_capacity(24 + frame.len());
            wire.push(MESSAGE);
            wire.extend_from_slice(id.to_string().as_bytes());
            wire.push(b' ');
            wire.extend_from_slice(frame.as_bytes());
            return wire;
        }
        serde_json::to_vec(self).expect("plain data serialises")
    }

    /// An event as it came off the bus; a message's frame shares the
    /// payload's bytes.
    pub fn parse(payload: &Bytes) -> Option<Self> {
        if payload.first() != Some(&MESSAGE) {
            return serde_json::from_slice(payload).ok();
        }
        let space = payload.iter().position(|b| *b == b' ')?;
        let id = std::str::from_utf8(&payload[1..space]).ok()?.parse().ok()?;
        let frame = ByteString::try_from(payload.slice(space + 1..)).ok()?;
        Some(Self::Message { id, frame })
    }
}

/// What a room's topic carries when a person's last socket on `node` is
/// gone: the bus's presence keeper publishes it for the members of a node
/// that died.
pub fn departure(node: &str, person: &str) -> Vec<u8> {
    RoomEvent::Depart {
        node: node.to_owned(),
        person: person.to_owned(),
    }
    .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_and_a_departure_survive_the_wire() {
        let event = RoomEvent::Arrive {
            node: "n1".into(),
            person: "u7".into(),
            who: Arc::new(Who {
                id: Some(7),
                username: "<b>x</b>".into(),
                is_staff: false,
            }),
        };
        let back = RoomEvent::parse(&event.to_bytes().into()).unwrap();
        assert!(matches!(back, RoomEvent::Arrive { ref person, .. } if person == "u7"));
        let gone = RoomEvent::parse(&departure("n1", "u7").into()).unwrap();
        assert!(
            matches!(gone, RoomEvent::Depart { ref node, ref person } if node == "n1" && person == "u7")
        );
        assert!(RoomEvent::parse(&Bytes::from_static(b"{\"kind\":\"nope\"}")).is_none());
        // A message's JSON-looking kind is no message: only `#` makes one.
        assert!(RoomEvent::parse(&Bytes::from_static(b"{\"kind\":\"message\"}")).is_none());
    }

    #[test]
    fn a_message_travels_as_its_frame_unescaped() {
        let frame = r#"{"type":"chat.message","message":"say \"hi\" ☃","id":42}"#;
        let wire = RoomEvent::Message {
            id: 42,
            frame: frame.into(),
        }
        .to_bytes();
        assert_eq!(wire, format!("#42 {frame}").into_bytes());
        let Some(RoomEvent::Message { id, frame: back }) = RoomEvent::parse(&wire.into()) else {
            panic!("a message");
        };
        assert_eq!((id, &*back), (42, frame));
        for broken in [&b"#42"[..], b"#x {}", b"# {}", b"#1 \xff"] {
            assert!(
                RoomEvent::parse(&Bytes::copy_from_slice(broken)).is_none(),
                "{broken:?}"
            );
        }
    }
}
