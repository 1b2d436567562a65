//! Builds the running hub from settings: database, actors, HTTP server.
//!
//! Which actor runs where:
//! - each socket's session, on the HTTP worker thread that accepted it
//!   (`HUB_WORKERS`, one per core by default);
//! - the room registry shards and their rooms, on their own arbiters, as
//!   many as there are workers, a room on the shard its name hashes to: fan-
//!   out, the hub's heaviest work, then uses every core instead of one;
//! - the analytics broadcaster, on an arbiter of its own, so its ticks never
//!   wait behind a busy room; the DNS broadcaster shares that arbiter (it
//!   only passes on frames, a few per change);
//! - the bus's broker tasks (with `REDIS_URL`: publishing, reading what
//!   Redis pushes, probing the link), on one more, so reading from Redis
//!   never waits behind anything.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Arbiter};
use actix_web::dev::{Server, ServerHandle, ServiceRequest};
use actix_web::middleware::Logger;
use actix_web::{App, HttpServer, web};

use crate::analytics::broadcaster::AnalyticsBroadcaster;
use crate::auth::cache::UserCache;
use crate::auth::jwt::TokenCodec;
use crate::auth::throttle::LoginThrottle;
use crate::bus::Bus;
use crate::chat::guests::Guests;
use crate::chat::room::RoomConfig;
use crate::chat::rooms::Rooms;
use crate::config::Settings;
use crate::db::{self, Db};
use crate::dns::broadcaster::DnsBroadcaster;
use crate::dns::notify::Notifier;
use crate::dns::primary::{Primary, Sockets, tsig_key};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::ws::admission::Admission;
use crate::ws::connection::Connection;
use crate::ws::session::CLOSE_TIMEOUT;

pub struct Application {
    port: u16,
    /// Where the hidden primary answers (`HUB_DNS_LISTEN`), if it does.
    dns_primary: Option<std::net::SocketAddr>,
    server: Server,
    /// What the sessions share; its `draining` starts the drain.
    state: web::Data<AppState>,
    /// Counts the sockets still open while draining.
    admission: web::Data<Admission>,
    /// The threads rooms and the broadcaster run on, stopped with the server.
    arbiters: Vec<Arbiter>,
    /// For the goodbye a stopping node says to the others.
    bus: Bus,
    metrics: Arc<Metrics>,
}

impl Application {
    /// Connects the database, applies migrations, binds `settings.bind`
    /// (port 0 picks a free one) and starts serving. Must run inside an actix
    /// system: the room registry is an actor.
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = Db::new(db::pool(
            &settings.database_url,
            settings.db_pool_size,
            settings.db_pool_timeout,
        )?);
        let applied = db.migrate()?;
        tracing::info!(database = ?settings.database_url, applied = applied.len(), "database ready");
        if !db.run_here(crate::db::users::any)? {
            tracing::warn!(
                "no user yet: create one with `hub user create --username NAME --password-stdin` \
                 (from a checkout: `cargo run --release -- user create --username NAME --password-stdin`), \
                 then sign in on the home page"
            );
        }
        if settings.jwt.key_generated {
            tracing::warn!(
                "no JWT_SIGNING_KEY or SECRET_KEY: tokens are signed with a random key that dies with this \
                 process; Django's tokens will not work. Set the key, or HUB_ENV=production to make this an error"
            );
        }
        let max_sockets = settings
            .caps
            .max_sockets
            .unwrap_or_else(|| sockets_allowed(raise_file_limit(), settings.db_pool_size));
        let listener = listen(&settings.bind, settings.cluster.reuse_port)?;
        let port = listener.local_addr()?.port();

        let metrics = Arc::new(Metrics::default());
        let workers = settings.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let arbiters: Vec<Arbiter> = (0..workers + 2).map(|_| Arbiter::new()).collect();
        let (bus_arbiter, arbiters_left) = arbiters
            .split_first()
            .expect("at least three arbiters were made");
        let (analytics_arbiter, room_arbiters) = arbiters_left
            .split_first()
            .expect("at least two arbiters were left");
        let bus = Bus::start(
            &settings.cluster,
            metrics.clone(),
            bus_arbiter.handle(),
            crate::chat::events::departure,
        )?;
        let room_handles: Vec<_> = room_arbiters.iter().map(Arbiter::handle).collect();
        let rooms = Rooms::start(
            &RoomConfig {
                db: db.clone(),
                metrics: metrics.clone(),
                history_len: settings.limits.history_len,
                // Half a member's outbox: a joiner's history frame always
                // fits, with room for the presence list and live messages.
                history_bytes: settings.limits.send_queue_bytes / 2,
                presence_limit: settings.limits.presence_limit,
                bus: bus.clone(),
            },
            settings.staff_rooms.clone(),
            &room_handles,
        );
        let (db_for_analytics, metrics_for_analytics) = (db.clone(), metrics.clone());
        let bus_for_analytics = bus.clone();
        let interval = settings.analytics_interval;
        let analytics =
            AnalyticsBroadcaster::start_in_arbiter(&analytics_arbiter.handle(), move |_| {
                AnalyticsBroadcaster::new(
                    db_for_analytics,
                    metrics_for_analytics,
                    interval,
                    bus_for_analytics,
                )
            });
        let notifier = Notifier::start(
            settings.dns_primary.notify.clone(),
            settings.dns_primary.notify_key.as_ref().map(tsig_key),
            settings.dns_primary.catalog.as_deref(),
            metrics.clone(),
            &analytics_arbiter.handle(),
        )
        .map_err(|e| {
            anyhow::anyhow!("HUB_DNS_NOTIFY: could not open a socket to send from: {e}")
        })?;
        let (db_for_dns, bus_for_dns, metrics_for_dns) = (db.clone(), bus.clone(), metrics.clone());
        let dns = DnsBroadcaster::start_in_arbiter(&analytics_arbiter.handle(), move |_| {
            DnsBroadcaster::new(db_for_dns, bus_for_dns, metrics_for_dns, notifier)
        });
        let dns_primary = match settings.dns_primary.listen {
            Some(addr) => {
                let sockets = Sockets::bind(addr).map_err(|e| {
                    anyhow::anyhow!("HUB_DNS_LISTEN: could not listen on {addr}: {e}")
                })?;
                let bound = sockets.local_addr()?;
                if settings.dns_primary.default_ns.is_empty() {
                    tracing::warn!(
                        "HUB_DNS_LISTEN without HUB_DNS_DEFAULT_NS: a zone with no NS record of its own \
                         is served without one, and BIND refuses to load it (\"has no NS records\"); \
                         set HUB_DNS_DEFAULT_NS to the nameservers' names"
                    );
                }
                Primary::new(db.clone(), settings.dns_primary.clone(), metrics.clone())
                    .start(sockets, &analytics_arbiter.handle());
                Some(bound)
            }
            None => None,
        };
        let client_timeout = settings.limits.client_timeout;
        let user_recheck = settings.limits.user_recheck;
        let (bus_for_goodbye, metrics_for_goodbye) = (bus.clone(), metrics.clone());
        let state = web::Data::new(AppState {
            tokens: TokenCodec::new(&settings.jwt),
            settings,
            db,
            metrics,
            throttle: LoginThrottle::standard(),
            users: UserCache::new(user_recheck, 200_000),
            bus,
            draining: tokio::sync::watch::Sender::new(false),
        });
        let state_for_drain = state.clone();
        // Past the window, a socket still open is one whose close is not
        // answered: the close timeout bounds it.
        let shutdown_secs = CLOSE_TIMEOUT.as_secs() + 2;
        let rooms_data = web::Data::new(rooms.clone());
        let analytics_data = web::Data::new(analytics.clone());
        let dns_data = web::Data::new(dns.clone());
        let guests = web::Data::new(Guests::default());
        let admission = web::Data::new(Admission::new(
            state.settings.caps.clone(),
            max_sockets,
            Instant::now(),
        ));

        let admission_for_drain = admission.clone();
        let trusted = state.settings.trusted_proxies.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(rooms_data.clone())
                .app_data(analytics_data.clone())
                .app_data(dns_data.clone())
                .app_data(guests.clone())
                .app_data(admission.clone())
                .wrap(
                    // The client as `HUB_TRUSTED_PROXIES` says (actix's own
                    // `%a` believes any `X-Forwarded-For`).
                    Logger::new("%{client}xi \"%{request}xi\" %s %b %Dms")
                        .custom_request_replace("client", client_in_log(&trusted))
                        .custom_request_replace("request", redacted_request_line),
                )
                .configure(crate::http::routes)
        })
        .on_connect(move |conn, data| {
            if let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                reap_stuck_readers(stream, client_timeout);
                data.insert(Connection::of(stream));
            }
        })
        .backlog(4096)
        // The hub handles SIGTERM and SIGINT itself, to close every socket
        // properly first (run_until_signalled).
        .disable_signals()
        .shutdown_timeout(shutdown_secs)
        // A session ends once the close handshake is done (RFC 6455 §7.1.1:
        // the server then closes the TCP connection first), having read what
        // the client sent until then; so the connection is closed at once,
        // not after a linger of actix's own.
        .client_disconnect_timeout(Duration::ZERO)
        .workers(workers);
        let server = server.listen(listener)?.run();
        tracing::info!(
            port,
            dns = dns_primary.map(|a| a.to_string()),
            workers,
            room_threads = room_handles.len(),
            max_sockets,
            "serving"
        );
        Ok(Self {
            port,
            dns_primary,
            server,
            state: state_for_drain,
            admission: admission_for_drain,
            arbiters,
            bus: bus_for_goodbye,
            metrics: metrics_for_goodbye,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dns_primary(&self) -> Option<std::net::SocketAddr> {
        self.dns_primary
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        stop(&self.arbiters);
        served
    }

    /// Serves until SIGTERM or SIGINT, then drains: `/readyz` turns 503 and
    /// new sockets are refused (503 `draining`); every socket is closed with
    /// 1012 (service restart), each at its own moment within
    /// `HUB_DRAIN_SECS`, so that its client reconnects (with backoff)
    /// without the whole crowd at once; once they are gone, or the window
    /// has passed, the node stops accepting and the server stops (within
    /// its shutdown timeout); in a cluster the node then leaves Redis's
    /// presence itself (within [`GOODBYE`]) instead of waiting to be reaped.
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let handle = self.server.handle();
        let mut server = self.server;
        tokio::select! {
            served = &mut server => return served,
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        let window = self.state.settings.drain_window;
        tracing::info!(
            window_secs = window.as_secs(),
            "draining: new sockets refused; every socket closes with 1012 at a moment of its own within the window"
        );
        self.state.draining.send_replace(true);
        // The sockets close themselves over the window; meanwhile the node
        // still answers plain requests (`/readyz`: 503) and refuses new
        // sockets. Then it stops accepting, and the server future waits
        // for the last connections and carries out the stop, so both are
        // awaited together.
        let window_ends = tokio::time::Instant::now() + window;
        while self.admission.open() > 0 && tokio::time::Instant::now() < window_ends {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ((), served) = tokio::join!(handle.stop(true), server);
        // Every session has left its room; once the rooms have announced
        // it and closed, the node says goodbye to the others.
        let deadline = tokio::time::Instant::now() + GOODBYE;
        while self.metrics.rooms_open() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.bus
            .leave(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await;
        stop(&self.arbiters);
        served
    }
}

/// How long a stopping node waits for its rooms to close and its last
/// messages to go out before it leaves the cluster.
const GOODBYE: Duration = Duration::from_secs(3);

/// Binds the listening socket; with `reuse_port`, several hub processes on
/// this machine bind the same port and the kernel spreads connections over
/// them.
fn listen(bind: &str, reuse_port: bool) -> anyhow::Result<TcpListener> {
    if !reuse_port {
        return Ok(TcpListener::bind(bind)?);
    }
    let addr: std::net::SocketAddr = bind
        .parse()
        .map_err(|_| anyhow::anyhow!("HUB_BIND: '{bind}' is not an address and port"))?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

fn stop(arbiters: &[Arbiter]) {
    for arbiter in arbiters {
        arbiter.stop();
    }
}

/// The access log's client address: the client's, behind a trusted proxy.
fn client_in_log(trusted: &crate::config::Networks) -> impl Fn(&ServiceRequest) -> String + use<> {
    let trusted = trusted.clone();
    move |req| {
        crate::http::client::address(req.request(), &trusted)
            .map_or_else(|| "-".to_owned(), |ip| ip.to_string())
    }
}

/// The access-log request line with any `token=` value replaced, so tokens
/// sent the way the existing frontend sends them never reach a log. Keys are
/// decoded as the guard decodes them, so `%74oken=` is redacted too.
fn redacted_request_line(req: &ServiceRequest) -> String {
    let query = req.query_string();
    let query = if query.is_empty() {
        String::new()
    } else {
        let parts: Vec<&str> = query
            .split('&')
            .map(|pair| {
                let key = pair.split('=').next().unwrap_or_default();
                let decoded =
                    web::Query::<Vec<(String, String)>>::from_query(&format!("{key}=")).ok();
                let is_token =
                    decoded.is_some_and(|q| q.first().is_some_and(|(k, _)| k == "token"));
                if is_token { "token=[redacted]" } else { pair }
            })
            .collect();
        format!("?{}", parts.join("&"))
    };
    format!(
        "{} {}{} {:?}",
        req.method(),
        req.path(),
        query,
        req.version()
    )
}

/// A client that stops reading freezes its session (actix-http stops polling
/// it), so no heartbeat can reap it. The kernel can: with TCP_USER_TIMEOUT,
/// data left unacknowledged for the client timeout tears the connection down.
/// (A session the hub closes does not wait that long: see `ws::connection`.)
fn reap_stuck_readers(stream: &actix_web::rt::net::TcpStream, timeout: Duration) {
    if let Err(err) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout)) {
        tracing::warn!(error = %err, "could not set TCP_USER_TIMEOUT");
    }
}

/// One socket is one file: raises the soft limit to the hard one, and
/// gives the limit this process runs with.
fn raise_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(error = %err, "could not raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// The sockets a process with `open_files` may hold: every file but those
/// the database pool, Redis, the listener, the log and plain HTTP requests
/// need.
fn sockets_allowed(open_files: u64, db_pool_size: u32) -> usize {
    let reserve = 100 + u64::from(db_pool_size);
    usize::try_from(open_files.saturating_sub(reserve).max(1)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_from_the_request_line_however_the_key_is_written() {
        for (uri, shown) in [
            (
                "/ws/chat/a/?token=abc.def",
                "GET /ws/chat/a/?token=[redacted] HTTP/1.1",
            ),
            (
                "/ws/chat/a/?since=4&%74oken=abc&x=1",
                "GET /ws/chat/a/?since=4&token=[redacted]&x=1 HTTP/1.1",
            ),
            ("/ws/chat/a/?tokens=1", "GET /ws/chat/a/?tokens=1 HTTP/1.1"),
            ("/healthz", "GET /healthz HTTP/1.1"),
        ] {
            let req = actix_web::test::TestRequest::with_uri(uri).to_srv_request();
            assert_eq!(redacted_request_line(&req), shown);
        }
    }
}
