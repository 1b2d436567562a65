//! Who is asking: tokens ([`jwt`]), guests' keys ([`guest_key`]), passwords
//! ([`password`]), failed-login throttling ([`throttle`]), the users tokens
//! speak for ([`users`]) with their short-lived [`cache`], and every way of
//! saying no ([`refusal`]).
//! Nothing here knows about HTTP or sockets.

pub mod cache;
pub mod guest_key;
pub mod jwt;
pub mod password;
pub mod refusal;
pub mod throttle;
pub mod users;
