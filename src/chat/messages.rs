//! Actor messages between chat sessions, the registry and rooms, and the
//! frames a room sends.

use std::sync::Arc;

use actix::Message;
use bytestring::ByteString;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

use crate::names::RoomName;
use crate::ws::frames::Ref;
use crate::ws::outlet::Outlet;
use crate::ws::session::SessionId;

/// A chat participant as other members see them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Who {
    pub id: Option<i32>,
    pub username: String,
    pub is_staff: bool,
}

/// A session asks to join a room; the registry answers with the room.
#[derive(Message)]
#[rtype(result = "actix::Addr<super::room::ChatServer>")]
pub struct Join {
    pub room: RoomName,
    pub session: SessionId,
    pub outlet: Outlet,
    pub who: Arc<Who>,
    /// Send only the messages after this id (a reconnecting client).
    pub since: Option<i64>,
}

/// A session leaves its room; sent once, from the session's `stopped`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub room: RoomName,
    pub session: SessionId,
}

/// A member says something.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Say {
    pub session: SessionId,
    pub reference: Option<Ref>,
    pub text: String,
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

/// The wire form of a time: RFC 3339, UTC, milliseconds.
pub fn wire_time(at: NaiveDateTime) -> String {
    DateTime::<Utc>::from_naive_utc_and_offset(at, Utc)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
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
