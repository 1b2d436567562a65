//! Chat at `/ws/chat/{room}/`: the socket's endpoint ([`socket`]), one
//! [`room::ChatServer`] actor per room with its [`history`], the [`order`]
//! it delivers in and [`presence`], the sharded [`rooms::Rooms`] registry
//! that creates rooms on first join and forgets them once idle, the
//! [`frames`] rooms send, and unique [`guests`] names.

pub mod events;
pub mod frames;
pub mod guests;
pub mod history;
pub mod order;
pub mod presence;
pub mod room;
pub mod rooms;
pub mod socket;
