//! What every handler and session shares, built once by startup.

use actix::Addr;

use crate::analytics::broadcaster::AnalyticsBroadcaster;
use crate::auth::cache::UserCache;
use crate::auth::jwt::TokenCodec;
use crate::auth::throttle::LoginThrottle;
use crate::chat::rooms::Rooms;
use crate::config::Settings;
use crate::db::Db;
use crate::metrics::Metrics;

pub struct AppState {
    pub settings: Settings,
    pub db: Db,
    pub tokens: TokenCodec,
    pub metrics: std::sync::Arc<Metrics>,
    pub throttle: LoginThrottle,
    pub users: UserCache,
    pub rooms: Addr<Rooms>,
    pub analytics: Addr<AnalyticsBroadcaster>,
}
