//! What every handler and session shares, built once by startup: settings,
//! the database, tokens, users and counters. It holds nothing of the
//! endpoints (rooms, broadcasters), so the socket layer can depend on it and
//! the endpoints on the socket layer, one way.

use std::sync::Arc;

use crate::auth::cache::UserCache;
use crate::auth::jwt::TokenCodec;
use crate::auth::throttle::LoginThrottle;
use crate::bus::Bus;
use crate::config::Settings;
use crate::db::Db;
use crate::metrics::Metrics;

pub struct AppState {
    pub settings: Settings,
    pub db: Db,
    pub tokens: TokenCodec,
    pub metrics: Arc<Metrics>,
    pub throttle: LoginThrottle,
    pub users: UserCache,
    pub bus: Bus,
    /// Turned on once, at SIGTERM or SIGINT: every session then closes
    /// itself within the drain window, and `/readyz` answers 503.
    pub draining: tokio::sync::watch::Sender<bool>,
}
