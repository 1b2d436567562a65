//! The guard: every check of the contract's "Authentication" section, run
//! as `FromRequest` extractors before a socket's actor exists. A refusal is
//! an HTTP response, never an upgraded socket that is closed at once.

use std::time::Instant;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, ORIGIN, SEC_WEBSOCKET_PROTOCOL};
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use super::error::ApiError;
use crate::auth::refusal::{Refusal, Status};
use crate::auth::users::{self, Authenticated};
use crate::config::InvalidToken;
use crate::names::RoomName;
use crate::state::AppState;
use crate::ws::admission::{Admission, Capped};

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let status = match r.status() {
            Status::Unauthorized => StatusCode::UNAUTHORIZED,
            Status::Forbidden => StatusCode::FORBIDDEN,
            Status::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, r.code(), r.detail())
    }
}

/// The token of an `Authorization: Bearer <token>` header; the scheme's
/// case does not matter (RFC 6750).
///
/// Here and below, a header that is not visible ASCII, or a query string
/// that does not parse, holds no token: the socket is refused as having
/// none, never let in.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Where the token was found, in the contract's order of precedence.
pub fn find_token(req: &HttpRequest) -> Option<String> {
    if let Some(token) = bearer_token(req) {
        return Some(token.to_owned());
    }
    // Browsers cannot set headers on a WebSocket, but they can offer
    // subprotocols: `bearer, <jwt>` keeps the token out of URLs and logs.
    offered_after(req, "bearer").or_else(|| query_param(req, "token"))
}

/// The subprotocol offered right after `name` (`bearer, <jwt>`,
/// `guest, <key>`).
pub fn offered_after(req: &HttpRequest, name: &str) -> Option<String> {
    let offered: Vec<&str> = req
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let pos = offered.iter().position(|p| p.eq_ignore_ascii_case(name))?;
    offered.get(pos + 1).map(|value| (*value).to_owned())
}

/// One query parameter, percent-decoded.
pub fn query_param(req: &HttpRequest, name: &str) -> Option<String> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .ok()?
        .into_inner()
        .into_iter()
        .find_map(|(k, v)| (k == name).then_some(v))
}

fn check_origin(req: &HttpRequest, state: &AppState) -> Result<(), Refusal> {
    let Some(allowed) = &state.settings.cors_allowed_origins else {
        return Ok(());
    };
    // Browsers always send Origin on a WebSocket; a request without one is
    // not a browser, and a non-browser client could write any Origin anyway.
    match req.headers().get(ORIGIN) {
        None => Ok(()),
        Some(origin) => match origin.to_str() {
            Ok(o) if allowed.contains(o) => Ok(()),
            _ => Err(Refusal::OriginNotAllowed),
        },
    }
}

fn app_state(req: &HttpRequest) -> web::Data<AppState> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .expect("AppState is registered by startup")
}

/// Counts a handshake refused at a cap and turns it into the HTTP response.
pub fn capped(state: &AppState, capped: Capped) -> ApiError {
    let (error, wait) = match capped {
        Capped::Overloaded { retry_after } => {
            state.metrics.overloaded();
            let detail = "this node holds all the sockets and handshakes it may; retry later";
            let error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", detail);
            (error, retry_after)
        }
        Capped::TooManyConnections { retry_after, cap } => {
            state.metrics.too_many_connections();
            let detail = format!(
                "at most {cap} open sockets per user (per client address for guests) on a node; close one first"
            );
            let error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections",
                detail,
            );
            (error, retry_after)
        }
    };
    // Whole seconds, rounded up: a client never comes back too early.
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    error.with_retry_after(secs)
}

/// First of every socket handshake: a node at its caps refuses before it
/// reads a token.
fn check_node(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    if *state.draining.borrow() {
        let detail = "this node is stopping; connect again, to another node";
        return Err(
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "draining", detail).with_retry_after(1),
        );
    }
    let admission = req
        .app_data::<web::Data<Admission>>()
        .expect("Admission is registered by startup");
    admission
        .handshake(Instant::now())
        .map_err(|c| capped(state, c))
}

/// Counts a refusal and turns it into the HTTP response.
fn refuse(state: &AppState, refusal: Refusal) -> ApiError {
    state.metrics.refused(refusal);
    refusal.into()
}

async fn authenticate(state: &AppState, token: &str) -> Result<Authenticated, Refusal> {
    users::authenticate(&state.tokens, &state.users, &state.db, token).await
}

/// The guard for endpoints that need a user (`/ws/analytics/`, `/ws/dns/`).
pub struct UserAccess(pub Authenticated);

impl FromRequest for UserAccess {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = app_state(req);
        let node = check_node(req, &state);
        let token =
            check_origin(req, &state).and_then(|()| find_token(req).ok_or(Refusal::TokenMissing));
        Box::pin(async move {
            node?;
            let result = match token {
                Ok(token) => authenticate(&state, &token).await,
                Err(refusal) => Err(refusal),
            };
            result.map(UserAccess).map_err(|r| refuse(&state, r))
        })
    }
}

/// The guard for `/ws/chat/{room}/`: guests may join public rooms; staff rooms
/// need a staff user. A token that is present but invalid joins a public
/// room as a guest (`HUB_INVALID_TOKEN=guest`, the default) or is refused.
#[derive(Debug)]
pub struct ChatAccess {
    pub room: RoomName,
    pub staff_room: bool,
    pub user: Option<Authenticated>,
    /// Why a token that was sent did not count: the client is a guest.
    pub downgraded: Option<Refusal>,
    /// The guest's key offered as `guest, <key>`, unread: whatever it
    /// holds, the client may join (as a fresh guest if it names no one).
    pub guest_key: Option<String>,
}

impl FromRequest for ChatAccess {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = app_state(req);
        let node = check_node(req, &state);
        let room = RoomName::parse(req.match_info().get("room").unwrap_or_default());
        let precheck = check_origin(req, &state).map(|()| find_token(req));
        let guest_key = offered_after(req, "guest");
        Box::pin(async move {
            node?;
            let Ok(room) = room else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no such room",
                ));
            };
            let staff_room = state.settings.is_staff_room(room.as_str());
            let as_guest = !staff_room && state.settings.invalid_token == InvalidToken::Guest;
            let checked = async {
                let (user, downgraded) = match precheck? {
                    Some(token) => match authenticate(&state, &token).await {
                        Ok(user) => (Some(user), None),
                        Err(refusal) if as_guest && refusal.is_of_the_token() => {
                            (None, Some(refusal))
                        }
                        Err(refusal) => return Err(refusal),
                    },
                    None => (None, None),
                };
                if staff_room && !user.as_ref().is_some_and(|a| a.user.is_staff) {
                    return Err(Refusal::StaffOnly);
                }
                Ok(ChatAccess {
                    room,
                    staff_room,
                    user,
                    downgraded,
                    guest_key,
                })
            };
            checked.await.map_err(|r| refuse(&state, r))
        })
    }
}
