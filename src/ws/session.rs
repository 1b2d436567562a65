//! The session: one actix actor per socket, created only after the guard has
//! passed. It owns everything a socket must bound or watch — frame size,
//! fragments ([`super::fragments`]), rate ([`super::rate`]), heartbeat, token
//! expiry (`HUB_TOKEN_EXPIRY`), its age, the user's flags — and hands the
//! requests it does not handle itself to its [`Endpoint`].
//!
//! Where it runs: on the HTTP worker thread that accepted the connection.
//! Broadcasters run elsewhere and reach it only through its outbox.

use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws;
use bytestring::ByteString;
use serde::{Deserialize, Serialize};

use crate::auth::jwt::TokenKind;
use crate::auth::refusal::Refusal;
use crate::auth::users::{self, Authenticated};
use crate::bus::{Arrived, Subscription, Topic};
use crate::config::{Settings, TokenExpiry};
use crate::db::users::User;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::ws::admission::Slot;
use crate::ws::close::CloseCode;
use crate::ws::connection::Connection;
use crate::ws::fragments::{FragmentError, Message, Reassembly};
use crate::ws::frames::{self, BadFrame, ErrorCode, Ref};
use crate::ws::outlet::{self, Delivery, Inbox, Outlet};
use crate::ws::rate::{RateLimit, Verdict};

pub type Ctx<E> = ws::WebsocketContext<Session<E>>;

/// How long a session the hub closes waits for the client's close frame
/// after sending its own. Within it the client gets the close frame (if it
/// reads at all) and answers; past it the connection is reset. So a member
/// the hub closed, even one that never reads, is gone from its rooms within
/// this time (docs/protocol.md).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

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

    /// The largest message this socket takes (one frame, or one message
    /// reassembled from fragments); over it the socket is closed with 1009.
    /// Most endpoints take the general `HUB_MAX_FRAME_BYTES`.
    fn max_frame_bytes(settings: &Settings) -> usize {
        settings.limits.max_frame_bytes
    }

    /// Once, when the socket is open: join rooms, send snapshots.
    fn opened(session: &mut Session<Self>, ctx: &mut Ctx<Self>);

    /// A request of a type the core does not handle.
    fn request(session: &mut Session<Self>, request: Request<'_>, ctx: &mut Ctx<Self>);

    /// Whether a freshly loaded (active) user may stay on this socket at
    /// all; one who may not is closed with 4003.
    fn admits(&self, user: &User) -> bool;

    /// After a re-check kept the user, when its flags or name changed (the
    /// session's `user` is already the new one).
    fn user_changed(session: &mut Session<Self>, before: &User, ctx: &mut Ctx<Self>);

    /// Once, whatever closed the socket: the one place it leaves its rooms.
    fn closed(session: &mut Session<Self>);
}

pub struct Session<E: Endpoint> {
    pub state: web::Data<AppState>,
    pub id: SessionId,
    /// `None` for a guest.
    pub user: Option<User>,
    /// When the access token stops being valid.
    expires: Option<SystemTime>,
    expiry: Option<SpawnHandle>,
    recheck: Option<SpawnHandle>,
    last_heard: Instant,
    rate: RateLimit,
    /// This endpoint's frame limit ([`Endpoint::max_frame_bytes`]).
    max_frame: usize,
    fragments: Reassembly,
    /// Broadcasters' handle on this session, and the end it drains
    /// (taken into the context's streams when the actor starts).
    outlet: Outlet,
    inbox: Option<Inbox>,
    /// When the user was last read from the database.
    loaded_at: Instant,
    /// This session's place on its user's topic, where any node says the
    /// user changed (deactivated, staff granted or taken away).
    user_topic: Option<Subscription>,
    /// The hub sent its close frame: nothing more is sent, and what the
    /// client still sends is read and dropped until its close frame.
    closing: bool,
    /// The TCP connection, for the close watchdog; only the session holds
    /// it, so the watchdog's `Weak` says whether the session still lives.
    connection: Option<Rc<Connection>>,
    /// Its place under the caps, given back when the session ends, and its
    /// person's write budgets.
    pub slot: Slot,
    pub endpoint: E,
}

/// What a node publishes on a user's topic when the user changed: every
/// socket of theirs, on every node, loads them again.
pub const USER_CHANGED: &[u8] = b"changed";

/// Why a session loads its user again: on its own (a re-check, a refresh),
/// or because the bus said the user changed (then it tells nobody else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    Nobody,
    ByTheBus,
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

/// simplejwt counts a token as expired from its `exp` second on.
fn expiry_time(exp: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(exp).unwrap_or(0))
}

impl<E: Endpoint> Session<E> {
    pub fn new(
        state: web::Data<AppState>,
        auth: Option<Authenticated>,
        slot: Slot,
        endpoint: E,
    ) -> Self {
        let limits = &state.settings.limits;
        let now = Instant::now();
        let rate = RateLimit::new(limits.rate_per_sec, limits.rate_burst, now);
        let max_frame = E::max_frame_bytes(&state.settings);
        let fragments = Reassembly::new(max_frame);
        let (outlet, inbox) = outlet::outbox(limits.send_queue_bytes);
        let (user, expires, loaded_at) = match auth {
            Some(a) => (Some(a.user), Some(expiry_time(a.exp)), a.loaded_at),
            None => (None, None, now),
        };
        Self {
            state,
            id: SessionId::next(),
            user,
            expires,
            expiry: None,
            recheck: None,
            last_heard: now,
            rate,
            max_frame,
            fragments,
            outlet,
            inbox: Some(inbox),
            loaded_at,
            user_topic: None,
            closing: false,
            connection: None,
            slot,
            endpoint,
        }
    }

    /// Performs the upgrade. `bearer` (a token) or `guest` (a guest's key)
    /// is answered when the client offered it, the first of them it
    /// offered: a browser that offered subprotocols fails a handshake that
    /// answers none.
    pub fn start(
        mut self,
        req: &HttpRequest,
        stream: web::Payload,
    ) -> Result<HttpResponse, ws::HandshakeError> {
        self.connection = req.conn_data::<Connection>().copied().map(Rc::new);
        let max_frame = self.max_frame;
        ws::WsResponseBuilder::new(self, req, stream)
            .frame_size(max_frame)
            .protocols(&["bearer", "guest"])
            .start()
            .map_err(|e| match e.as_error::<ws::HandshakeError>() {
                Some(handshake) => *handshake,
                None => ws::HandshakeError::NoWebsocketUpgrade,
            })
    }

    /// The bounded handle broadcasters use to reach this session.
    pub fn outlet(&self) -> Outlet {
        self.outlet.clone()
    }

    /// Sends a frame of this session's own (a reply), not a broadcast.
    /// Nothing follows a close frame, whatever replies are still on their way.
    pub fn send(&self, ctx: &mut Ctx<E>, frame: impl Into<ByteString>) {
        if self.closing {
            return;
        }
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

    /// Closes with a code: sends the close frame and waits, within
    /// [`CLOSE_TIMEOUT`], for the client's (RFC 6455 §7.1.1), so a client
    /// still sending gets the close frame instead of a reset. `stopped`
    /// then runs the endpoint's cleanup.
    ///
    /// It goes through the context's wait queue, which runs before any
    /// other event, because only the session knows whether it is already
    /// closing; nothing the client sent after this call is handled.
    pub fn close(ctx: &mut Ctx<E>, code: CloseCode, reason: &str) {
        let frame = code.frame(reason);
        ctx.wait(actix::fut::ready(()).map(move |(), act: &mut Self, ctx| {
            if !act.closing {
                act.closing = true;
                act.outlet.closing();
                ctx.close(Some(frame));
            }
        }));
    }

    /// What the client sends after the hub's close frame: read and
    /// dropped, so its data is never left unread when the connection is
    /// closed (the kernel would answer it with a reset, which discards what
    /// the client has not read yet, close frame included). Its own close
    /// frame ends the session.
    fn linger(msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Ctx<E>) {
        match msg {
            Ok(ws::Message::Close(_)) => ctx.stop(),
            // An oversized frame is skipped whole; reading goes on.
            Ok(_) | Err(ws::ProtocolError::Overflow) => {}
            // Nothing more can be read in order.
            Err(_) => ctx.stop(),
        }
    }

    /// Whether the token's expiry closes this socket: only with
    /// `HUB_TOKEN_EXPIRY=close`; kept, the token authenticated the
    /// connection when it opened and the re-check watches the user since.
    fn expiry_closes(&self) -> bool {
        self.state.settings.token_expiry == TokenExpiry::Close
    }

    fn expired(&self) -> bool {
        self.expiry_closes() && self.expires.is_some_and(|at| SystemTime::now() >= at)
    }

    /// One complete message from the client, in the order it was sent.
    fn on_message(&mut self, message: Message, ctx: &mut Ctx<E>) {
        // Where expiry closes the socket, a token past its `exp` speaks no
        // more, even if its timer has not fired yet: nothing is stored or
        // refreshed after expiry.
        if self.expired() {
            return Self::close(ctx, CloseCode::TokenExpired, "access token expired");
        }
        let verdict = self.rate.take(Instant::now());
        if verdict == Verdict::Close {
            return Self::close(ctx, CloseCode::Policy, "kept sending after rate_limited");
        }
        let Message::Text(text) = message else {
            return self.send_error(
                ctx,
                None,
                ErrorCode::InvalidJson,
                "binary frames are not accepted",
            );
        };
        let envelope = frames::parse_envelope(&text);
        if verdict == Verdict::Refuse {
            let limits = &self.state.settings.limits;
            let detail = format!(
                "at most {} messages per second (burst {}); this one was dropped",
                limits.rate_per_sec, limits.rate_burst
            );
            let reference = match &envelope {
                Ok(e) => e.reference.as_ref(),
                Err(rejected) => rejected.reference.as_ref(),
            };
            return self.send_error(ctx, reference, ErrorCode::RateLimited, &detail);
        }
        let envelope = match envelope {
            Ok(e) => e,
            Err(rejected) => return self.reject(ctx, rejected.reference.as_ref(), &rejected.bad),
        };
        match envelope.kind.as_deref() {
            Some("auth.refresh") => self.refresh(envelope.reference, &text, ctx),
            kind => E::request(
                self,
                Request {
                    kind,
                    reference: envelope.reference,
                    text: &text,
                },
                ctx,
            ),
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
            Told::Nobody,
            move |act, ctx| {
                act.expires = Some(expiry_time(verified.exp));
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

    /// Closes with 4001 at the token's expiry, to the millisecond, unless a
    /// refresh moves it; nothing when expiry does not close the socket.
    fn schedule_expiry(&mut self, ctx: &mut Ctx<E>) {
        if !self.expiry_closes() {
            return;
        }
        if let Some(handle) = self.expiry.take() {
            ctx.cancel_future(handle);
        }
        if let Some(at) = self.expires {
            let left = at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            self.expiry = Some(ctx.run_later(left, |_, ctx| {
                Self::close(ctx, CloseCode::TokenExpired, "access token expired");
            }));
        }
    }

    /// Closes with 1012 (reconnect) at the maximum connection age, so no
    /// socket lives on the authentication of its handshake forever. The age
    /// is jittered down to nine tenths: sockets opened together (a fleet
    /// back after a restart) are not all closed, and do not all reconnect,
    /// at once.
    fn schedule_max_age(&self, ctx: &mut Ctx<E>) {
        if let Some(age) = self.state.settings.limits.max_connection_age {
            let at = age.mul_f64(rand::random_range(0.9..=1.0));
            ctx.run_later(at, |_, ctx| {
                Self::close(ctx, CloseCode::Restart, "maximum connection age; reconnect");
            });
        }
    }

    /// When the node starts draining, closes with 1012 at a moment of its
    /// own within `HUB_DRAIN_SECS`, so that the node's clients do not all
    /// reconnect (to the other nodes) in the same instant.
    fn schedule_drain(&self, ctx: &mut Ctx<E>) {
        let mut draining = self.state.draining.subscribe();
        let window = self.state.settings.drain_window;
        let started = async move { draining.wait_for(|on| *on).await.is_ok() };
        ctx.spawn(started.into_actor(self).map(move |started, _, ctx| {
            if started {
                ctx.run_later(window.mul_f64(rand::random()), |_, ctx| {
                    Self::close(ctx, CloseCode::Restart, "the hub is restarting");
                });
            }
        }));
    }

    /// Loads the user again one re-check interval after it was last read
    /// from the database (at the handshake that may be a cached read), so
    /// a change to a user reaches every open socket within that interval.
    fn schedule_recheck(&mut self, ctx: &mut Ctx<E>) {
        if self.user.is_none() {
            return;
        }
        if let Some(handle) = self.recheck.take() {
            ctx.cancel_future(handle);
        }
        let due = self.loaded_at + self.state.settings.limits.user_recheck;
        let left = due.saturating_duration_since(Instant::now());
        self.recheck = Some(ctx.run_later(left, |act, ctx| {
            // A database hiccup is no reason to drop a user: try again at
            // the next interval.
            act.reload_user(
                ctx,
                Told::Nobody,
                |_, _| {},
                |act, ctx| {
                    act.loaded_at = Instant::now();
                    act.schedule_recheck(ctx);
                },
            );
        }));
    }

    /// Loads the user through diesel (never from the cache) and decides: a
    /// user who may stay here is kept and `kept` runs; one deactivated, gone,
    /// or no longer admitted is closed with 4003; when the database cannot be
    /// reached nothing changes and `unavailable` runs.
    fn reload_user(
        &mut self,
        ctx: &mut Ctx<E>,
        told: Told,
        kept: impl FnOnce(&mut Self, &mut Ctx<E>) + 'static,
        unavailable: impl FnOnce(&mut Self, &mut Ctx<E>) + 'static,
    ) {
        let Some(id) = self.user.as_ref().map(|u| u.id) else {
            return;
        };
        let state = self.state.clone();
        let started = Instant::now();
        let load = async move { users::load_active(&state.db, &state.users, id).await };
        ctx.spawn(
            load.into_actor(self)
                .map(move |loaded, act, ctx| match loaded {
                    Ok(user) if act.endpoint.admits(&user) => {
                        act.loaded_at = started;
                        act.schedule_recheck(ctx);
                        let before = act.user.replace(user);
                        if let Some(before) = before
                            && act.user.as_ref() != Some(&before)
                        {
                            E::user_changed(act, &before, ctx);
                        }
                        kept(act, ctx);
                    }
                    Err(Refusal::Unavailable) => unavailable(act, ctx),
                    Ok(_) => Self::close(ctx, CloseCode::Forbidden, "no longer allowed here"),
                    Err(_) => {
                        // Deactivated or deleted: this node found out first,
                        // so it tells the others' sockets of this user.
                        if told == Told::Nobody {
                            act.state.bus.publish(&Topic::user(id), USER_CHANGED);
                        }
                        Self::close(ctx, CloseCode::Forbidden, "no longer allowed here");
                    }
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
        let timeout = self.state.settings.limits.client_timeout;
        // The ping interval is shorter than the client timeout (checked at
        // start-up), so a live client always has a ping to answer in time.
        ctx.run_interval(self.state.settings.limits.heartbeat, move |act, ctx| {
            // A closing session has its own bound, the close timeout.
            if act.closing {
                return;
            }
            if act.last_heard.elapsed() > timeout {
                tracing::debug!(session = act.id.get(), "no pong within the client timeout");
                ctx.stop();
                return;
            }
            ctx.ping(b"");
        });
        if let Some(connection) = &self.connection {
            let watch = watch_close(
                self.outlet(),
                Rc::downgrade(connection),
                self.state.metrics.clone(),
            );
            actix::spawn(watch);
        }
        self.schedule_expiry(ctx);
        self.schedule_recheck(ctx);
        self.schedule_max_age(ctx);
        self.schedule_drain(ctx);
        if let Some(id) = self.user.as_ref().map(|u| u.id) {
            let topic = Topic::user(id);
            self.user_topic = Some(self.state.bus.subscribe(&topic, ctx.address().recipient()));
        }
        E::opened(self, ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Counted first, so whoever sees this session leave sees it gone.
        self.state.metrics.connection_closed(E::NAME);
        self.user_topic = None;
        E::closed(self);
    }
}

/// Once the session takes no more frames (the hub asked it to close, or it
/// stopped), it has [`CLOSE_TIMEOUT`] to end; a session still alive then is
/// waiting for a client that does not answer, or is not polled at all
/// because its client does not read, and its connection is reset. The
/// session is then dropped, and leaves its rooms, at once.
///
/// This runs as a task of its own on the session's worker thread, not in
/// the session's context, which is not polled while its client is stuck.
async fn watch_close(outlet: Outlet, session: Weak<Connection>, metrics: Arc<Metrics>) {
    outlet.ended().await;
    if session.strong_count() == 0 {
        return;
    }
    tokio::time::sleep(CLOSE_TIMEOUT).await;
    if let Some(connection) = session.upgrade() {
        tracing::info!("a close was not answered within the close timeout; connection reset");
        metrics.close_timed_out();
        connection.abort();
    }
}

/// A node said this session's user changed: load them now, not at the next
/// re-check, so a deactivation closes every socket of theirs at once.
impl<E: Endpoint> Handler<Arrived> for Session<E> {
    type Result = ();

    fn handle(&mut self, arrived: Arrived, ctx: &mut Self::Context) {
        if &arrived.payload[..] != USER_CHANGED {
            return;
        }
        if let Some(user) = &self.user {
            self.state.users.remove(user.id);
        }
        self.reload_user(ctx, Told::ByTheBus, |_, _| {}, |_, _| {});
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
        if self.closing {
            return Self::linger(msg, ctx);
        }
        let msg = match msg {
            Ok(m) => m,
            Err(ws::ProtocolError::Overflow) => {
                return Self::close(ctx, CloseCode::TooLarge, "frame too large");
            }
            // actix-web-actors reports a text frame that is not UTF-8 only
            // as an I/O error carrying the UTF-8 error's text (as it does a
            // broken connection, where no close frame arrives anyway).
            Err(ws::ProtocolError::Io(e)) if e.to_string().contains("utf-8") => {
                return Self::close(ctx, CloseCode::InvalidData, "text message is not UTF-8");
            }
            Err(e) => {
                tracing::debug!(session = self.id.get(), error = %e, "websocket protocol error");
                return Self::close(ctx, CloseCode::ProtocolError, "protocol error");
            }
        };
        self.last_heard = Instant::now();
        self.state.metrics.frame_in();
        let message = match msg {
            ws::Message::Text(text) => Message::Text(text.to_string()),
            ws::Message::Binary(_) => Message::Binary,
            ws::Message::Continuation(item) => match self.fragments.push(item) {
                Ok(Some(message)) => message,
                Ok(None) => return,
                Err(FragmentError::TooLarge) => {
                    return Self::close(ctx, CloseCode::TooLarge, "message too large");
                }
                Err(FragmentError::NotUtf8) => {
                    return Self::close(ctx, CloseCode::InvalidData, "text message is not UTF-8");
                }
                Err(FragmentError::OutOfOrder) => {
                    return Self::close(ctx, CloseCode::ProtocolError, "fragments out of order");
                }
            },
            ws::Message::Ping(payload) => {
                // Pings cost a reply, so they count toward the rate too.
                if self.rate.take(Instant::now()) == Verdict::Close {
                    return Self::close(ctx, CloseCode::Policy, "kept sending after rate_limited");
                }
                return ctx.pong(&payload);
            }
            ws::Message::Close(reason) => {
                // Everything read before the close frame has been handled
                // (frames are handled in order); answer and stop.
                ctx.close(reason);
                ctx.stop();
                return;
            }
            ws::Message::Pong(_) | ws::Message::Nop => return,
        };
        self.on_message(message, ctx);
    }
}
