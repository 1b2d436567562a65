//! The realtime hub: live WebSocket features for browser dashboards, support
//! staff and website visitors, in place of Django Channels.
//!
//! # Layout
//!
//! - [`config`]: settings from the environment, passed down (never global).
//! - [`startup`]: [`startup::Application`] binds a listener and serves; tests
//!   spawn it on port 0.
//! - [`cli`]: the `hub` command line (serve, migrate, users, tokens).
//! - [`db`]: diesel over SQLite or PostgreSQL from one binary; Django's
//!   `auth_user` and the hub's `hub_*` tables; migrations embedded.
//! - [`auth`]: simplejwt-compatible tokens, Django password hashes, the
//!   login throttle, users and their cache, and the refusals.
//! - [`metrics`]: counters for `/metrics`.
//! - [`bus`]: how what one node produces reaches every node's sessions:
//!   topics over a broker, in-process alone or Redis in a cluster, and the
//!   presence entries a cluster shares.
//! - [`ws`]: the session actor every socket is, with its limits, heartbeat
//!   and token lifetime, close codes, and the one fan-out path broadcasters
//!   reach sessions through.
//! - [`chat`]: rooms as actors on sharded arbiters, and the chat endpoint.
//! - [`analytics`]: dashboards and the coalescing broadcaster.
//! - [`dns`]: DNS zones and records: the rules, the transactions, the
//!   endpoint and the broadcaster of changes to the panels that see a zone.
//! - [`http`]: routes, the guard that runs before any upgrade, the socket
//!   handshakes, the token and ingest APIs, operators' endpoints, static
//!   pages, and the HTTP error type.
//!
//! Dependencies run one way, each layer using only those before it:
//! [`text`] and [`names`] (leaves), [`config`], [`db`], [`auth`],
//! [`metrics`], [`bus`], [`state`], [`ws`], then [`chat`], [`analytics`] and [`dns`], then
//! [`http`], [`startup`] and [`cli`]. `.ci/module-order` checks it.
//! - [`state`]: what handlers and sessions share (settings, database,
//!   tokens, users, counters), below the socket layer.
//! - [`names`]: domain values parsed at the edge.
//! - [`text`]: the one rule for text people type (no control characters).

pub mod analytics;
pub mod auth;
pub mod bus;
pub mod chat;
pub mod cli;
pub mod config;
pub mod db;
pub mod dns;
pub mod http;
pub mod metrics;
pub mod names;
pub mod startup;
pub mod state;
pub mod text;
pub mod ws;
