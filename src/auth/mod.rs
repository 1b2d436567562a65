//! Who is asking: tokens ([`jwt`]), passwords ([`password`]), failed-login
//! throttling ([`throttle`]), the handshake [`guard`] and its user [`cache`].

pub mod cache;
pub mod guard;
pub mod jwt;
pub mod password;
pub mod throttle;
