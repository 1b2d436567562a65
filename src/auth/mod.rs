//! Who is asking: tokens ([`jwt`]), passwords ([`password`]), failed-login
//! throttling ([`throttle`]) and the handshake [`guard`].

pub mod guard;
pub mod jwt;
pub mod password;
pub mod throttle;
