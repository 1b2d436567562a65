//! The socket endpoints' HTTP side: the guard has run (as an extractor)
//! before any of these bodies, so a refused client never gets a socket.
//! Each builds its endpoint and hands the upgrade to the session.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws::HandshakeError;

use super::client;
use super::error::ApiError;
use super::guard::{self, ChatAccess, UserAccess, query_param};
use crate::analytics::broadcaster::AnalyticsBroadcaster;
use crate::analytics::socket::Analytics;
use crate::auth::guest_key;
use crate::chat::guests::Guests;
use crate::chat::room::PresenceFrames;
use crate::chat::rooms::Rooms;
use crate::chat::socket::{Asked, Chat};
use crate::dns::broadcaster::DnsBroadcaster;
use crate::dns::socket::Dns;
use crate::state::AppState;
use crate::ws::admission::{Admission, Person, Slot};
use crate::ws::session::Session;

/// A plain HTTP request, or a broken handshake: the same JSON shape as
/// every other refusal, instead of an empty body.
fn not_websocket(err: HandshakeError) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "not_websocket", err.to_string())
}

/// A place for the socket under the caps, or the refusal.
fn admit(
    admission: &web::Data<Admission>,
    state: &AppState,
    person: Person,
) -> Result<Slot, ApiError> {
    admission
        .clone()
        .into_inner()
        .admit(person, Instant::now())
        .map_err(|capped| guard::capped(state, capped))
}

/// `GET /ws/chat/{room}/`
pub async fn chat(
    access: ChatAccess,
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
    rooms: web::Data<Rooms>,
    guests: web::Data<Guests>,
    admission: web::Data<Admission>,
) -> Result<HttpResponse, ApiError> {
    let since = match query_param(&req, "since") {
        None => None,
        Some(raw) => Some(
            raw.parse::<i64>()
                .map_err(|_| ApiError::validation("since must be a message id"))?,
        ),
    };
    let presence = match query_param(&req, "presence").as_deref() {
        None | Some("events") => PresenceFrames::Events,
        Some("diff") => PresenceFrames::Diffs,
        Some(_) => return Err(ApiError::validation("presence is events or diff")),
    };
    let identity = match query_param(&req, "identity").as_deref() {
        None | Some("0") => false,
        Some("1") => true,
        Some(_) => return Err(ApiError::validation("identity is 1 or 0")),
    };
    let person = match &access.user {
        Some(auth) => Person::User(auth.user.id),
        // A request with no peer comes only from a test that builds it.
        None => Person::Guest(
            client::address(&req, &state.settings.trusted_proxies)
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ),
    };
    let slot = admit(&admission, &state, person)?;
    let member = match &access.user {
        Some(auth) => Ok(&auth.user),
        None => {
            let key = access.guest_key.as_deref();
            Err(guests.admit(key.and_then(|key| guest_key::read(&state.tokens, key))))
        }
    };
    let asked = Asked {
        since,
        presence,
        identity,
    };
    let chat = Chat::new(
        rooms.get_ref().clone(),
        access.room,
        access.staff_room,
        asked,
        member,
        access.downgraded,
    );
    Session::new(state, access.user, slot, chat)
        .start(&req, stream)
        .map_err(not_websocket)
}

/// `GET /ws/analytics/`: only for an authenticated, active user.
pub async fn analytics(
    UserAccess(auth): UserAccess,
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
    broadcaster: web::Data<Addr<AnalyticsBroadcaster>>,
    admission: web::Data<Admission>,
) -> Result<HttpResponse, ApiError> {
    let slot = admit(&admission, &state, Person::User(auth.user.id))?;
    let analytics = Analytics::new(broadcaster.get_ref().clone(), auth.user.id);
    Session::new(state, Some(auth), slot, analytics)
        .start(&req, stream)
        .map_err(not_websocket)
}

/// `GET /ws/dns/`: only for an authenticated, active user.
pub async fn dns(
    UserAccess(auth): UserAccess,
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
    broadcaster: web::Data<Addr<DnsBroadcaster>>,
    admission: web::Data<Admission>,
) -> Result<HttpResponse, ApiError> {
    let slot = admit(&admission, &state, Person::User(auth.user.id))?;
    let dns = Dns::new(broadcaster.get_ref().clone(), state.settings.dns);
    Session::new(state, Some(auth), slot, dns)
        .start(&req, stream)
        .map_err(not_websocket)
}
