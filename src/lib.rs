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
//!   login throttle, and the guard that runs before any upgrade.
//! - [`http`]: routes, the token API, operators' endpoints, static pages, and
//!   the HTTP error type.
//! - [`ws`]: the session actor every socket is, with its limits, heartbeat
//!   and token lifetime, and the bounded outlet broadcasters push through.
//! - [`chat`]: rooms as actors, their registry, and the chat endpoint.
//! - [`analytics`]: dashboards, the coalescing broadcaster, the ingest API.
//! - [`metrics`]: counters for `/metrics`.
//! - [`names`]: domain values parsed at the edge.
//! - [`text`]: the one rule for text people type (no control characters).

pub mod analytics;
pub mod auth;
pub mod chat;
pub mod cli;
pub mod config;
pub mod db;
pub mod http;
pub mod metrics;
pub mod names;
pub mod startup;
pub mod state;
pub mod text;
pub mod ws;
