//! What every socket shares, whatever it carries: the session actor with its
//! limits, heartbeat and token lifetime ([`session`]), the JSON frame shapes
//! ([`frames`]) and the bounded path by which broadcasters reach a session
//! ([`outlet`]).

pub mod frames;
pub mod outlet;
pub mod session;
