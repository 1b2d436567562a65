//! One integration-test binary: every test starts the real hub and talks to
//! it over real sockets.

mod helpers;

mod guard;
mod chat;
mod limits;
mod lifetime;
mod token_api;
mod ops;
mod analytics;
