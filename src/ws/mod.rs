//! What every socket shares, whatever it carries: who may open one and how
//! fast a person may write over all of theirs ([`admission`]), the session
//! actor with its
//! heartbeat and token lifetime ([`session`]), its rate limit ([`rate`]) and
//! fragment reassembly ([`fragments`]), the close codes ([`close`]) and the
//! connection a close that is not answered resets ([`connection`]), the JSON
//! frame shapes ([`frames`]), and the one bounded path by which broadcasters
//! reach sessions ([`fanout`] over each session's [`outlet`]).

pub mod admission;
pub mod close;
pub mod connection;
pub mod fanout;
pub mod fragments;
pub mod frames;
pub mod outlet;
pub mod rate;
pub mod session;
