//! The session: one actix actor per socket, created only after the guard has
//! passed. It owns everything a socket must bound or watch — frame size,
//! fragments, rate, heartbeat, token expiry, the user's flags — and hands the
//! requests it does not handle itself to its [`Endpoint`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_http::ws::{CloseCode, CloseReason, Item};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws;
use bytes::BytesMut;
use bytestring::ByteString;
use serde::{Deserialize, Serialize};

use crate::auth::guard::{self, Authenticated, Refusal};
use crate::auth::jwt::{TokenKind, now_secs};
use crate::db::users::User;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::ws::frames::{self, BadFrame, ErrorCode, Ref};
use crate::ws::outlet::{self, Delivery, Inbox, Outlet};

pub type Ctx<E> = ws::WebsocketContext<Session<E>>;

/// Close codes the hub uses beyond the standard ones.
pub mod close {
    pub const RESTART: u16 = 1012;
    pub const TOO_SLOW: u16 = 1013;
    pub const TOKEN_EXPIRED: u16 = 4001;
    pub const FORBIDDEN: u16 = 4003;
}

/// A process-unique id for a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

impl SessionId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Relaxed))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// A fixed id, for tests of the actors that keep sessions.
    #[cfg(test)]
    pub fn for_tests(id: u64) -> Self {
        Self(id)
    }
}

/// A request frame of a type the session core does not handle itself.
pub struct Request<'a> {
    /// `None` when the frame had no `"type"`.
    pub kind: Option<&'a str>,
    pub reference: Option<Ref>,
    /// The whole frame, for the endpoint to read its own fields from.
    pub text: &'a str,
}

/// What one kind of socket (chat, analytics, DNS) adds to the session.
pub trait Endpoint: Sized + Unpin + 'static {
    /// The `endpoint` label of the connection metrics.
    const NAME: &'static str;

    /// Once, when the socket is open: join rooms, send snapshots.
    fn opened(session: &mut Session<Self>, ctx: &mut Ctx<Self>);

    /// A request of a type the core does not handle.
    fn request(session: &mut Session<Self>, request: Request<'_>, ctx: &mut Ctx<Self>);

    /// Whether a freshly loaded (active) user may stay on this socket.
    fn admits(&self, user: &User) -> bool;

    /// Once, whatever closed the socket: the one place it leaves its rooms.
    fn closed(session: &mut Session<Self>);
}

/// A token bucket; `strikes` counts frames refused since the client last let
/// the bucket fill, so a client that keeps flooding can be told apart from
/// one that had a burst.
struct RateLimit {
    tokens: f64,
    last: Instant,
    strikes: u32,
}

impl RateLimit {
    fn new(burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            last: Instant::now(),
            strikes: 0,
        }
    }

    fn take(&mut self, per_sec: f64, burst: u32) -> bool {
        let now = Instant::now();
        let burst = f64::from(burst);
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * per_sec).min(burst);
        self.last = now;
        if self.tokens >= burst {
            self.strikes = 0;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.strikes += 1;
            false
        }
    }
}

/// A message arriving in fragments, gathered up to the frame-size limit.
struct Fragments {
    text: bool,
    buf: BytesMut,
}

pub struct Session<E: Endpoint> {
    pub state: web::Data<AppState>,
    pub id: SessionId,
    /// `None` for a guest.
    pub user: Option<User>,
    exp: Option<i64>,
    expiry: Option<SpawnHandle>,
    last_heard: Instant,
    rate: RateLimit,
    fragments: Option<Fragments>,
    /// When the user was last loaded from the database.
    checked: Instant,
    /// Broadcasters' handle on this session, and the end it drains
    /// (taken into the context's streams when the actor starts).
    outlet: Outlet,
    inbox: Option<Inbox>,
    pub endpoint: E,
}

#[derive(Deserialize)]
struct RefreshRequest {
    token: String,
}

#[derive(Serialize)]
struct Refreshed<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    reference: Option<&'a Ref>,
    exp: i64,
}

impl<E: Endpoint> Session<E> {
    pub fn new(state: web::Data<AppState>, auth: Option<Authenticated>, endpoint: E) -> Self {
        let burst = state.settings.limits.rate_burst;
        let (user, exp) = match auth {
            Some(a) => (Some(a.user), Some(a.exp)),
            None => (None, None),
        };
        let (outlet, inbox) = outlet::outbox(state.settings.limits.send_queue_bytes);
        Self {
            state,
            id: SessionId::next(),
            user,
            exp,
            expiry: None,
            last_heard: Instant::now(),
            rate: RateLimit::new(burst),
            fragments: None,
            checked: Instant::now(),
            outlet,
            inbox: Some(inbox),
            endpoint,
        }
    }

    /// Performs the upgrade. `bearer` is answered when the client offered it.
    pub fn start(
        self,
        req: &HttpRequest,
        stream: web::Payload,
    ) -> Result<HttpResponse, actix_web::Error> {
        let max_frame = self.state.settings.limits.max_frame_bytes;
        ws::WsResponseBuilder::new(self, req, stream)
            .frame_size(max_frame)
            .protocols(&["bearer"])
            .start()
            .map_err(|e| {
                // A plain HTTP request, or a broken handshake: the same JSON
                // shape as every other refusal, instead of an empty body.
                ApiError::new(StatusCode::BAD_REQUEST, "not_websocket", format!("{e}")).into()
            })
    }

    /// The bounded handle broadcasters use to reach this session.
    pub fn outlet(&self) -> Outlet {
        self.outlet.clone()
    }

    /// Sends a frame of this session's own (a reply), not a broadcast.
    pub fn send(&self, ctx: &mut Ctx<E>, frame: impl Into<ByteString>) {
        self.state.metrics.frame_out();
        ctx.text(frame);
    }

    pub fn send_error(
        &self,
        ctx: &mut Ctx<E>,
        reference: Option<&Ref>,
        code: ErrorCode,
        detail: &str,
    ) {
        self.send(ctx, frames::error(reference, code, detail));
    }

    pub fn reject(&self, ctx: &mut Ctx<E>, reference: Option<&Ref>, bad: &BadFrame) {
        self.send_error(ctx, reference, bad.code, &bad.detail);
    }

    /// Closes with a code and stops; `stopped` then runs the endpoint's cleanup.
    pub fn close(ctx: &mut Ctx<E>, code: u16, reason: &str) {
        ctx.close(Some(CloseReason {
            code: CloseCode::from(code),
            description: Some(reason.to_owned()),
        }));
        ctx.stop();
    }

    fn admit_frame(&mut self, ctx: &mut Ctx<E>) -> bool {
        let limits = &self.state.settings.limits;
        if self.rate.take(limits.rate_per_sec, limits.rate_burst) {
            return true;
        }
        if self.rate.strikes > limits.rate_burst {
            Self::close(ctx, 1008, "kept sending after rate_limited");
        } else {
            let detail = format!(
                "at most {} frames per second (burst {}); this one was dropped",
                limits.rate_per_sec, limits.rate_burst
            );
            self.send_error(ctx, None, ErrorCode::RateLimited, &detail);
        }
        false
    }

    fn on_text(&mut self, text: &str, ctx: &mut Ctx<E>) {
        let envelope = match frames::parse_envelope(text) {
            Ok(e) => e,
            Err(bad) => return self.reject(ctx, None, &bad),
        };
        match envelope.kind.as_deref() {
            Some("auth.refresh") => self.refresh(envelope.reference, text, ctx),
            kind => E::request(
                self,
                Request {
                    kind,
                    reference: envelope.reference,
                    text,
                },
                ctx,
            ),
        }
    }

    fn on_fragment(&mut self, item: Item, ctx: &mut Ctx<E>) {
        let (first, last, chunk) = match item {
            Item::FirstText(b) => (Some(true), false, b),
            Item::FirstBinary(b) => (Some(false), false, b),
            Item::Continue(b) => (None, false, b),
            Item::Last(b) => (None, true, b),
        };
        if let Some(text) = first {
            self.fragments = Some(Fragments {
                text,
                buf: BytesMut::new(),
            });
        }
        let Some(fragments) = self.fragments.as_mut() else {
            return Self::close(ctx, 1002, "continuation frame without a first frame");
        };
        if fragments.buf.len() + chunk.len() > self.state.settings.limits.max_frame_bytes {
            return Self::close(ctx, 1009, "message too large");
        }
        fragments.buf.extend_from_slice(&chunk);
        if !last {
            return;
        }
        let Fragments { text, buf } = self.fragments.take().expect("checked above");
        if !text {
            return self.send_error(
                ctx,
                None,
                ErrorCode::InvalidJson,
                "binary frames are not accepted",
            );
        }
        match std::str::from_utf8(&buf) {
            Ok(s) => self.on_text(s, ctx),
            Err(_) => Self::close(ctx, 1007, "text message is not UTF-8"),
        }
    }

    /// `auth.refresh`: a new access token for the same user extends the socket.
    fn refresh(&mut self, reference: Option<Ref>, text: &str, ctx: &mut Ctx<E>) {
        let Some(current) = self.user.as_ref().map(|u| u.id) else {
            return self.send_error(
                ctx,
                reference.as_ref(),
                ErrorCode::Forbidden,
                "a guest has no token to refresh",
            );
        };
        let token = match frames::parse_body::<RefreshRequest>(text) {
            Ok(r) => r.token,
            Err(bad) => return self.reject(ctx, reference.as_ref(), &bad),
        };
        let verified = match self.state.tokens.verify(&token, TokenKind::Access) {
            Ok(v) if v.user_id == current => v,
            Ok(_) => {
                return self.send_error(
                    ctx,
                    reference.as_ref(),
                    ErrorCode::Forbidden,
                    "the token is for another user",
                );
            }
            Err(e) => {
                let detail = format!("{}: {e}", Refusal::from(e).code());
                return self.send_error(ctx, reference.as_ref(), ErrorCode::Validation, &detail);
            }
        };
        let unavailable_ref = reference.clone();
        self.reload_user(
            ctx,
            verified.user_id,
            move |act, ctx| {
                act.exp = Some(verified.exp);
                act.schedule_expiry(ctx);
                let reply = Refreshed {
                    kind: "auth.refreshed",
                    reference: reference.as_ref(),
                    exp: verified.exp,
                };
                act.send(ctx, serde_json::to_string(&reply).expect("plain struct"));
            },
            move |act, ctx| {
                act.send_error(
                    ctx,
                    unavailable_ref.as_ref(),
                    ErrorCode::Unavailable,
                    "could not load the user; retry",
                );
            },
        );
    }

    /// Closes with 4001 when the token expires, unless a refresh moves it.
    fn schedule_expiry(&mut self, ctx: &mut Ctx<E>) {
        if let Some(handle) = self.expiry.take() {
            ctx.cancel_future(handle);
        }
        if let Some(exp) = self.exp {
            let left = Duration::from_secs(u64::try_from(exp - now_secs()).unwrap_or(0));
            self.expiry = Some(ctx.run_later(left, |_, ctx| {
                Self::close(ctx, close::TOKEN_EXPIRED, "access token expired");
            }));
        }
    }

    /// Loads the user again at the re-check interval. A database hiccup is
    /// no reason to drop a user; the next tick tries again.
    fn recheck_user(&mut self, ctx: &mut Ctx<E>) {
        if let Some(id) = self.user.as_ref().map(|u| u.id) {
            self.reload_user(ctx, id, |_, _| {}, |_, _| {});
        }
    }

    /// Loads the user through diesel (never from the cache) and decides: a
    /// user who may stay here is kept and `kept` runs; one deactivated, gone,
    /// or no longer admitted is closed with 4003; when the database cannot be
    /// reached nothing changes and `unavailable` runs.
    fn reload_user(
        &mut self,
        ctx: &mut Ctx<E>,
        id: i32,
        kept: impl FnOnce(&mut Self, &mut Ctx<E>) + 'static,
        unavailable: impl FnOnce(&mut Self, &mut Ctx<E>) + 'static,
    ) {
        let state = self.state.clone();
        let load = async move { guard::load_active_user(&state, id).await };
        ctx.spawn(
            load.into_actor(self)
                .map(move |loaded, act, ctx| match loaded {
                    Ok(user) if act.endpoint.admits(&user) => {
                        act.user = Some(user);
                        act.checked = Instant::now();
                        kept(act, ctx);
                    }
                    Err(Refusal::Unavailable) => unavailable(act, ctx),
                    Ok(_) | Err(_) => Self::close(ctx, close::FORBIDDEN, "no longer allowed here"),
                }),
        );
    }
}

impl<E: Endpoint> Actor for Session<E> {
    type Context = Ctx<E>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.state.metrics.connection_opened(E::NAME);
        if let Some(inbox) = self.inbox.take() {
            ctx.add_stream(inbox);
        }
        let limits = &self.state.settings.limits;
        let (timeout, recheck) = (limits.client_timeout, limits.user_recheck);
        // The ping interval is shorter than the client timeout (checked at
        // start-up), so a live client always has a ping to answer in time.
        // The user re-check rides on the same tick: one timer per socket
        // instead of two, which thousands of idle sockets notice.
        ctx.run_interval(limits.heartbeat.min(recheck), move |act, ctx| {
            if act.last_heard.elapsed() > timeout {
                tracing::debug!(session = act.id.get(), "no pong within the client timeout");
                ctx.stop();
                return;
            }
            ctx.ping(b"");
            if act.checked.elapsed() >= recheck {
                act.checked = Instant::now();
                act.recheck_user(ctx);
            }
        });
        self.schedule_expiry(ctx);
        E::opened(self, ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Counted first, so whoever sees this session leave sees it gone.
        self.state.metrics.connection_closed(E::NAME);
        E::closed(self);
    }
}

/// What broadcasters pushed, drained from the session's outbox.
impl<E: Endpoint> StreamHandler<Delivery> for Session<E> {
    fn handle(&mut self, delivery: Delivery, ctx: &mut Self::Context) {
        match delivery {
            Delivery::Frame(frame) => self.send(ctx, frame),
            Delivery::Close(code, reason) => Self::close(ctx, code, reason),
        }
    }

    /// The outbox never ends while the session lives; nothing to do.
    fn finished(&mut self, _: &mut Self::Context) {}
}

impl<E: Endpoint> StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session<E> {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        let msg = match msg {
            Ok(m) => m,
            Err(ws::ProtocolError::Overflow) => return Self::close(ctx, 1009, "frame too large"),
            Err(e) => {
                tracing::debug!(session = self.id.get(), error = %e, "websocket protocol error");
                return Self::close(ctx, 1002, "protocol error");
            }
        };
        self.last_heard = Instant::now();
        if matches!(msg, ws::Message::Pong(_) | ws::Message::Close(_)) {
            if let ws::Message::Close(reason) = msg {
                ctx.close(reason);
                ctx.stop();
            }
            return;
        }
        self.state.metrics.frame_in();
        if !self.admit_frame(ctx) {
            return;
        }
        match msg {
            ws::Message::Text(text) => self.on_text(&text, ctx),
            ws::Message::Binary(_) => self.send_error(
                ctx,
                None,
                ErrorCode::InvalidJson,
                "binary frames are not accepted",
            ),
            ws::Message::Continuation(item) => self.on_fragment(item, ctx),
            ws::Message::Ping(payload) => ctx.pong(&payload),
            ws::Message::Pong(_) | ws::Message::Close(_) | ws::Message::Nop => {}
        }
    }
}
