//! One integration-test binary: every test starts the real hub and talks to
//! it over real sockets.

mod helpers;

mod analytics;
mod bench;
mod chat;
mod django;
mod guard;
mod http_edge;
mod lifetime;
mod limits;
mod ops;
mod process;
mod token_api;
