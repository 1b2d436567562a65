//! One integration-test binary: every test starts the real hub and talks to
//! it over real sockets.

// A test may unwrap and cast freely: a failure is a failing test.
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]

mod helpers;

mod analytics;
mod bench;
mod caps;
mod chat;
mod chat_ids;
mod chat_rules;
mod closes;
mod cluster;
mod django;
mod dns;
mod dns_import;
mod dns_limits;
mod dns_primary;
mod dns_races;
mod dns_rules;
mod enforcement;
mod first_run;
mod guard;
mod guests;
mod hostile;
mod http_edge;
mod ingest;
mod lifetime;
mod limits;
mod nameservers;
mod nginx;
mod ops;
mod process;
mod redis_cluster;
mod redis_server;
mod token_api;
mod token_expiry;
