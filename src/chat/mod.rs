//! Chat at `/ws/chat/{room}/`: the socket's endpoint ([`socket`]), one
//! [`room::ChatServer`] actor per room with members, and the [`rooms::Rooms`]
//! registry that creates rooms on first join and forgets them after the last
//! leave.

pub mod messages;
pub mod room;
pub mod rooms;
pub mod socket;
