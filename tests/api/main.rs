//! One integration-test binary: every test starts the real hub and talks to
//! it over real sockets.

mod helpers;

mod analytics;
mod analytics_scope;
mod bench;
mod chat;
mod chat_rules;
mod django;
mod guard;
mod lifetime;
mod limits;
mod ops;
mod process;
mod token_api;
