//! The frames a room sends, and the participant they show.

use bytestring::ByteString;
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::ws::frames::{Ref, wire_time};

/// A chat participant as other members see them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Who {
    pub id: Option<i32>,
    pub username: String,
    pub is_staff: bool,
}

#[derive(Serialize)]
struct MessageFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: i64,
    room: &'a str,
    message: &'a str,
    user: &'a Who,
    sent_at: String,
}

/// A `chat.message` frame, serialised once; every member gets these bytes.
pub fn message_frame(
    id: i64,
    room: &str,
    who: &Who,
    body: &str,
    sent_at: NaiveDateTime,
) -> ByteString {
    let frame = MessageFrame {
        kind: "chat.message",
        id,
        room,
        message: body,
        user: who,
        sent_at: wire_time(sent_at),
    };
    serde_json::to_string(&frame).expect("plain struct").into()
}

/// The sender's copy of its own message, carrying the `ref` it sent.
pub fn with_ref(frame: &str, reference: &Ref) -> ByteString {
    let reference = serde_json::to_string(reference).expect("a ref serialises");
    let mut out = String::with_capacity(frame.len() + reference.len() + 8);
    out.push_str(r#"{"ref":"#);
    out.push_str(&reference);
    out.push(',');
    out.push_str(frame.strip_prefix('{').unwrap_or(frame));
    out.into()
}

#[derive(Serialize)]
pub struct PresenceList<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub room: &'a str,
    pub members: Vec<&'a Who>,
}

#[derive(Serialize)]
pub struct PresenceEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub room: &'a str,
    pub user: &'a Who,
}

#[derive(Serialize)]
pub struct PresenceCount<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub room: &'a str,
    pub count: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_senders_copy_is_the_same_frame_with_its_ref() {
        let who = Who {
            id: Some(1),
            username: "a".into(),
            is_staff: false,
        };
        let frame = message_frame(3, "lobby", &who, "hi", NaiveDateTime::default());
        let mine = with_ref(&frame, &Ref::Text("m1".into()));
        let mut shared: serde_json::Value = serde_json::from_str(&frame).unwrap();
        let own: serde_json::Value = serde_json::from_str(&mine).unwrap();
        shared["ref"] = "m1".into();
        assert_eq!(own, shared);
    }
}
