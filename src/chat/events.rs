//! What a room publishes on its topic, for the room of the same name on
//! every node (its own included): each stored message, and each person
//! arriving on, leaving or changing on a node. Rooms deliver these, never
//! what they handled themselves, so local and remote members see the same
//! events in the same order.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::frames::Who;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RoomEvent {
    /// A stored message, as its `chat.message` frame, with its number in
    /// the room.
    Message { id: i64, frame: String },
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

impl RoomEvent {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plain data serialises")
    }

    pub fn parse(payload: &[u8]) -> Option<Self> {
        serde_json::from_slice(payload).ok()
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
        let back = RoomEvent::parse(&event.to_bytes()).unwrap();
        assert!(matches!(back, RoomEvent::Arrive { ref person, .. } if person == "u7"));
        let gone = RoomEvent::parse(&departure("n1", "u7")).unwrap();
        assert!(
            matches!(gone, RoomEvent::Depart { ref node, ref person } if node == "n1" && person == "u7")
        );
        assert!(RoomEvent::parse(b"{\"kind\":\"nope\"}").is_none());
    }
}
