//! The guard: every check of the contract's "Authentication" section, run
//! before a socket's actor exists. A refusal is an HTTP response, never an
//! upgraded socket that is closed at once.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, ORIGIN, SEC_WEBSOCKET_PROTOCOL};
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use crate::auth::cache::UserCache;
use crate::auth::jwt::{TokenCodec, TokenError, TokenKind, Verified};
use crate::db::users::{self, User};
use crate::http::error::ApiError;
use crate::names::RoomName;
use crate::state::AppState;

/// Every way the guard refuses, one per code of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TokenMissing,
    TokenInvalid,
    TokenExpired,
    TokenNotAccess,
    UserNotFound,
    UserInactive,
    StaffOnly,
    OriginNotAllowed,
    Unavailable,
}

impl Refusal {
    pub const ALL: [Refusal; 9] = [
        Self::TokenMissing,
        Self::TokenInvalid,
        Self::TokenExpired,
        Self::TokenNotAccess,
        Self::UserNotFound,
        Self::UserInactive,
        Self::StaffOnly,
        Self::OriginNotAllowed,
        Self::Unavailable,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::TokenMissing => "token_missing",
            Self::TokenInvalid => "token_invalid",
            Self::TokenExpired => "token_expired",
            Self::TokenNotAccess => "token_not_access",
            Self::UserNotFound => "user_not_found",
            Self::UserInactive => "user_inactive",
            Self::StaffOnly => "staff_only",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::Unavailable => "unavailable",
        }
    }

    fn detail(self) -> &'static str {
        match self {
            Self::TokenMissing => "an access token is required",
            Self::TokenInvalid => "the token is malformed or its signature does not match",
            Self::TokenExpired => "the token has expired",
            Self::TokenNotAccess => "an access token is required, not a refresh token",
            Self::UserNotFound => "the token's user does not exist",
            Self::UserInactive => "the token's user is deactivated",
            Self::StaffOnly => "this room is for staff only",
            Self::OriginNotAllowed => "this origin may not open sockets here",
            Self::Unavailable => "the user could not be loaded; retry shortly",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::StaffOnly | Self::OriginNotAllowed => StatusCode::FORBIDDEN,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

impl From<TokenError> for Refusal {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Invalid => Self::TokenInvalid,
            TokenError::Expired => Self::TokenExpired,
            TokenError::WrongKind => Self::TokenNotAccess,
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        ApiError::new(r.status(), r.code(), r.detail())
    }
}

/// A user proven by an access token.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: User,
    /// The token's expiry, seconds since the epoch.
    pub exp: i64,
}

/// The token of an `Authorization: Bearer <token>` header; the scheme's
/// case does not matter (RFC 6750).
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Where the token was found, in the contract's order of precedence.
fn find_token(req: &HttpRequest) -> Option<String> {
    if let Some(token) = bearer_token(req) {
        return Some(token.to_owned());
    }
    // Browsers cannot set headers on a WebSocket, but they can offer
    // subprotocols: `bearer, <jwt>` keeps the token out of URLs and logs.
    let offered: Vec<&str> = req
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if let Some(pos) = offered
        .iter()
        .position(|p| p.eq_ignore_ascii_case("bearer"))
        && let Some(token) = offered.get(pos + 1)
    {
        return Some((*token).to_owned());
    }
    query_param(req, "token")
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

/// Loads a user through diesel (never from the cache, which it refreshes)
/// and requires that it exists and is active.
pub async fn load_active_user(state: &AppState, user_id: i32) -> Result<User, Refusal> {
    let loaded = state
        .db
        .run(move |conn| users::find(conn, user_id))
        .await
        .map_err(|err| {
            tracing::error!(error = %err, user_id, "loading a user failed");
            Refusal::Unavailable
        })?;
    match loaded {
        Some(user) => {
            state.users.put(user.clone());
            active(user)
        }
        None => {
            state.users.remove(user_id);
            Err(Refusal::UserNotFound)
        }
    }
}

fn active(user: User) -> Result<User, Refusal> {
    if user.is_active {
        Ok(user)
    } else {
        Err(Refusal::UserInactive)
    }
}

/// The guard's fast path: verifies the token and takes its user from the
/// cache. `Ok(None)` with the verified token means the user must be loaded.
pub fn authenticate_cached(
    tokens: &TokenCodec,
    cache: &UserCache,
    token: &str,
) -> Result<(Verified, Option<Authenticated>), Refusal> {
    let verified = tokens.verify(token, TokenKind::Access)?;
    let cached = match cache.get(verified.user_id) {
        Some(user) => Some(Authenticated {
            user: active(user)?,
            exp: verified.exp,
        }),
        None => None,
    };
    Ok((verified, cached))
}

/// Verifies an access token and finds its user, cached or through diesel.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Authenticated, Refusal> {
    match authenticate_cached(&state.tokens, &state.users, token)? {
        (_, Some(auth)) => Ok(auth),
        (verified, None) => Ok(Authenticated {
            user: load_active_user(state, verified.user_id).await?,
            exp: verified.exp,
        }),
    }
}

fn app_state(req: &HttpRequest) -> web::Data<AppState> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .expect("AppState is registered by startup")
}

/// Counts a refusal and turns it into the HTTP response.
fn refuse(state: &AppState, refusal: Refusal) -> ApiError {
    state.metrics.refused(refusal);
    refusal.into()
}

/// The guard for endpoints that need a user (`/ws/analytics/`, `/ws/dns/`).
impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = app_state(req);
        let token =
            check_origin(req, &state).and_then(|()| find_token(req).ok_or(Refusal::TokenMissing));
        Box::pin(async move {
            let result = match token {
                Ok(token) => authenticate(&state, &token).await,
                Err(refusal) => Err(refusal),
            };
            result.map_err(|r| refuse(&state, r))
        })
    }
}

/// The guard for `/ws/chat/{room}/`: guests may join public rooms; staff rooms
/// need a staff user; a token that is present must be valid.
#[derive(Debug)]
pub struct ChatAccess {
    pub room: RoomName,
    pub staff_room: bool,
    pub user: Option<Authenticated>,
}

impl FromRequest for ChatAccess {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = app_state(req);
        let room = RoomName::parse(req.match_info().get("room").unwrap_or_default());
        let precheck = check_origin(req, &state).map(|()| find_token(req));
        Box::pin(async move {
            let Ok(room) = room else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no such room",
                ));
            };
            let staff_room = state.settings.is_staff_room(room.as_str());
            let checked = async {
                let user = match precheck? {
                    Some(token) => Some(authenticate(&state, &token).await?),
                    None => None,
                };
                if staff_room && !user.as_ref().is_some_and(|a| a.user.is_staff) {
                    return Err(Refusal::StaffOnly);
                }
                Ok(ChatAccess {
                    room,
                    staff_room,
                    user,
                })
            };
            checked.await.map_err(|r| refuse(&state, r))
        })
    }
}
