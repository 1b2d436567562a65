//! Spawns the real hub on port 0 (its own thread and actix system, like a
//! separate process) with its own database, and talks to it over TCP with a
//! real WebSocket client. Every receive has a timeout, so a bug fails a test
//! instead of hanging it.

use std::collections::HashMap;
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use futures_util::{SinkExt, StreamExt};
use hub::auth::jwt::{TokenCodec, TokenKind, now_secs};
use hub::config::Settings;
use hub::db::{self, Db, users};
use hub::startup::Application;
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
pub use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

pub const KEY: &str = "test-signing-key-that-django-would-also-hold";
pub const WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Whether the tests run in CI (`CI` set to 1, true or yes, in any case,
/// when they were built; see `build.rs`): there a missing service fails
/// the tests that need it instead of marking them ignored.
pub fn in_ci() -> bool {
    option_env!("HUB_TEST_IN_CI").is_some()
}

/// The administrative PostgreSQL URL, from `HUB_TEST_POSTGRES_URL`. Missing
/// is a skip on a developer's machine (the test is built as ignored, see
/// `build.rs`) and a failure in CI.
pub fn postgres_admin_url() -> Option<String> {
    let url = std::env::var("HUB_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    match url {
        Some(url) => {
            if let Err(e) = PgConnection::establish(&url) {
                panic!("HUB_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {e}");
            }
            Some(url)
        }
        None if in_ci() => {
            panic!("in CI HUB_TEST_POSTGRES_URL must be set: PostgreSQL tests must run")
        }
        None => {
            eprintln!("skipping a PostgreSQL test: set HUB_TEST_POSTGRES_URL to run it");
            None
        }
    }
}

/// A database of its own for one PostgreSQL test, dropped with it.
pub struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    fn create(admin_url: &str) -> (Self, String) {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "hub_test_{}_{}_{:08x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let mut admin = PgConnection::establish(admin_url).expect("admin connection");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create test database");
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        let url = format!("{base}/{name}");
        (
            Self {
                admin_url: admin_url.to_owned(),
                name,
            },
            url,
        )
    }
}

impl PgDatabase {
    /// Drops the database now, cutting every connection to it, as an outage would.
    pub fn drop_now(&self) {
        let mut admin = PgConnection::establish(&self.admin_url).expect("admin connection");
        admin
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .expect("drop test database");
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.admin_url) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Every test client comes from 127.0.0.1, many as one user, and faster
/// than people: the caps per person and per node are set out of the way,
/// and tested with small settings of their own (`caps::`).
pub const UNCAPPED: [(&str, &str); 5] = [
    ("HUB_MAX_SOCKETS_PER_USER", "1000000"),
    ("HUB_MAX_GUEST_SOCKETS_PER_ADDRESS", "1000000"),
    ("HUB_MAX_HANDSHAKES_PER_SEC", "1000000"),
    ("HUB_PERSON_RATE_PER_SEC", "1000000"),
    ("HUB_PERSON_RATE_BURST", "1000000"),
];

/// POSTs a JSON body and reads the JSON answer, whatever its status.
pub async fn post_json(client: &reqwest::Client, url: &str, body: Value) -> Value {
    client
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub struct TestApp {
    pub port: u16,
    /// Where the hidden primary answers, when `HUB_DNS_LISTEN` is set.
    pub dns: Option<std::net::SocketAddr>,
    pub database_url: String,
    pub db: Db,
    pub codec: TokenCodec,
    env: HashMap<String, String>,
    handle: actix_web::dev::ServerHandle,
    _dir: tempfile::TempDir,
    /// The PostgreSQL database of this test, if it runs on PostgreSQL.
    pub pg: Option<PgDatabase>,
    /// One HTTP client for the whole test. A client per request costs a TLS
    /// context each; built inside a burst of `join_all`, those delay the
    /// writes of connections already accepted past the server's 5 s request
    /// timeout on a busy machine, and the server's 408 then reaches the
    /// client before its request is sent.
    client: reqwest::Client,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop at once; the server's thread winds down by itself.
        drop(self.handle.stop(false));
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, &[]).await
    }

    /// Starts a hub with the test defaults plus these settings.
    pub async fn spawn_with(backend: Backend, overrides: &[(&str, &str)]) -> Self {
        Self::spawn_prepared(backend, overrides, |_| {}).await
    }

    /// Starts a hub on a database that `prepare` has set up first (given its
    /// URL), as when the hub joins a database another program already uses.
    pub async fn spawn_prepared(
        backend: Backend,
        overrides: &[(&str, &str)],
        prepare: impl FnOnce(&str),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (pg, database_url) = match backend {
            Backend::Sqlite => (
                None,
                format!("sqlite://{}", dir.path().join("hub.sqlite3").display()),
            ),
            Backend::Postgres => {
                let admin =
                    postgres_admin_url().expect("the caller checked PostgreSQL is configured");
                let (pg, url) = PgDatabase::create(&admin);
                (Some(pg), url)
            }
        };
        prepare(&database_url);
        let mut env: HashMap<String, String> = [
            ("DATABASE_URL", database_url.as_str()),
            ("JWT_SIGNING_KEY", KEY),
            ("HUB_BIND", "127.0.0.1:0"),
            ("HUB_PASSWORD_ITERATIONS", "1000"),
            ("HUB_DB_POOL_SIZE", "4"),
            // Tests change zones far faster than a person does; the limit
            // itself is tested with its own, small setting.
            ("HUB_DNS_WRITES_PER_SEC", "1000"),
        ]
        .iter()
        .chain(&UNCAPPED)
        .chain(overrides)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.entry("HUB_ENV".into()).or_insert_with(|| "test".into());
        let settings =
            Settings::from_lookup(false, |k| env.get(k).cloned()).expect("test settings are valid");
        let codec = TokenCodec::new(&settings.jwt);

        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match Application::build(settings) {
                    Ok(app) => {
                        tx.send(Ok((app.port(), app.dns_primary(), app.handle())))
                            .expect("test waits");
                        let _ = app.run_until_stopped().await;
                    }
                    Err(e) => tx.send(Err(format!("{e:#}"))).expect("test waits"),
                }
            });
        });
        let (port, dns, handle) = rx
            .recv()
            .expect("server thread reports")
            .expect("server starts");
        let db = Db::new(
            db::pool(
                &hub::config::DatabaseUrl::parse(&database_url).unwrap(),
                2,
                db::DEFAULT_POOL_TIMEOUT,
            )
            .unwrap(),
        );
        Self {
            port,
            dns,
            database_url,
            db,
            codec,
            env,
            handle,
            _dir: dir,
            pg,
            client: reqwest::Client::new(),
        }
    }

    /// The test's HTTP client, shared so that connections are pooled.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn create_user(&self, username: &str, staff: bool) -> i32 {
        self.create_user_with_hash(username, staff, &hub::auth::password::unusable())
    }

    pub fn create_user_with_hash(&self, username: &str, staff: bool, hash: &str) -> i32 {
        let (name, hash) = (username.to_owned(), hash.to_owned());
        self.db
            .run_here(move |c| users::create(c, &name, &hash, staff))
            .expect("create user")
    }

    pub fn token(&self, user_id: i32) -> String {
        self.codec.mint(user_id, TokenKind::Access)
    }

    pub fn token_expiring_in(&self, user_id: i32, secs: i64) -> String {
        let now = now_secs();
        self.codec
            .mint_with_expiry(user_id, TokenKind::Access, now, now + secs)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn request(&self, path: &str) -> Request {
        format!("ws://127.0.0.1:{}{}", self.port, path)
            .into_client_request()
            .expect("valid URL")
    }

    /// Opens a socket or panics with the refusal.
    pub async fn connect(&self, path: &str) -> Client {
        self.connect_request(self.request(path)).await
    }

    pub async fn connect_request(&self, request: Request) -> Client {
        match self.try_connect(request, None).await {
            Ok(c) => c,
            Err(e) => panic!("connect refused: {e:?}"),
        }
    }

    /// `recv_buffer` shrinks the client's socket buffer, for slow-reader tests.
    pub async fn try_connect(
        &self,
        request: Request,
        recv_buffer: Option<u32>,
    ) -> Result<Client, tungstenite::Error> {
        connect_at(self.port, request, recv_buffer).await
    }

    /// Expects the handshake to be refused; returns what the refusal said.
    pub async fn refused(&self, request: Request) -> Refused {
        match self.open(request).await {
            Ok(_) => panic!("the handshake was accepted"),
            Err(refused) => refused,
        }
    }

    /// Opens a socket, or gives what the refusal said; panics on any other
    /// failure.
    pub async fn open(&self, request: Request) -> Result<Client, Refused> {
        match self.try_connect(request, None).await {
            Ok(client) => Ok(client),
            Err(tungstenite::Error::Http(resp)) => Err(Refused {
                status: resp.status().as_u16(),
                body: serde_json::from_slice(resp.body().as_deref().unwrap_or_default())
                    .expect("JSON body"),
                www_authenticate: resp
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap().to_owned()),
                retry_after: resp
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().parse().expect("Retry-After in seconds")),
            }),
            Err(e) => panic!("unexpected handshake error: {e:?}"),
        }
    }

    /// Runs the real `hub` binary against this hub's database.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_input(args, "")
    }

    /// Runs the real `hub` binary with this on its standard input, and
    /// requires that it succeeds.
    pub fn cli_with_input(&self, args: &[&str], input: &str) -> Output {
        let out = self.cli_output(args, input);
        assert!(
            out.status.success(),
            "hub {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs the real `hub` binary with this on its standard input, whatever
    /// its outcome.
    pub fn cli_output(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hub"))
            .args(args)
            .env_clear()
            .envs(&self.env)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run hub");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().expect("hub finishes")
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.http("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one series of `/metrics`, named with its labels as
    /// shown (`hub_dns_queries_total{answer="ixfr"}`).
    pub async fn metric(&self, series: &str) -> u64 {
        let metrics = self.metrics().await;
        let line = format!("{series} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
            .parse()
            .unwrap()
    }

    /// Waits (within `WAIT`) until `/metrics` shows this line.
    pub async fn until_metric(&self, line: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let metrics = self.metrics().await;
            if metrics.lines().any(|l| l == line) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "/metrics never showed {line:?}:\n{metrics}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: Value,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<u64>,
}

impl Refused {
    pub fn code(&self) -> &str {
        self.body["error"].as_str().expect("error code")
    }
}

pub struct Client {
    pub ws: WebSocketStream<TcpStream>,
    /// The subprotocol the server answered with.
    pub protocol: Option<String>,
    /// Frames read while waiting for a reply, for the next reads: a push
    /// about a change may come before or after the reply to it.
    held: std::collections::VecDeque<Value>,
}

/// How a socket ended, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    Closed(u16),
    /// Reset or closed without a close frame.
    Dropped,
}

impl Client {
    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    pub async fn say(&mut self, message: &str) {
        self.send(serde_json::json!({"type": "chat.message", "message": message}))
            .await;
    }

    /// Says something and hears it back, as every member of the room does.
    pub async fn echo(&mut self, message: &str) {
        self.say(message).await;
        assert_eq!(self.recv_type("chat.message").await["message"], message);
    }

    /// The next JSON frame; panics on a timeout or a close.
    pub async fn recv(&mut self) -> Value {
        self.recv_within(WAIT).await
    }

    pub async fn recv_within(&mut self, wait: Duration) -> Value {
        if let Some(frame) = self.held.pop_front() {
            return frame;
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("a frame in time");
            match next {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).expect("JSON frame"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Skips frames until one of this type arrives.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.recv_within(left).await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// The frame that answers `reference` (its `ref`); frames that come
    /// before it are kept for the next reads.
    pub async fn reply_to(&mut self, reference: &str) -> Value {
        let mut read = std::collections::VecDeque::new();
        let reply = loop {
            let frame = self.recv().await;
            if frame["ref"] == reference {
                break frame;
            }
            read.push_back(frame);
        };
        read.append(&mut self.held);
        self.held = read;
        reply
    }

    /// Asserts that nothing arrives for a while (pings aside), and that
    /// nothing read earlier is still waiting to be looked at. Only time
    /// spent listening counts: once the deadline has passed nothing more is
    /// read (a timeout polls its future before it looks at the clock, so a
    /// frame that came after the window, read by a test that was itself
    /// late, would otherwise break the silence).
    pub async fn silent_for(&mut self, wait: Duration) {
        assert!(
            self.held.is_empty(),
            "expected silence, got {:?}",
            self.held
        );
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Reads until the socket ends, within `wait`; frames before the end are skipped.
    pub async fn ending(&mut self, wait: Duration) -> Ending {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("the socket ends in time")
            {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map_or(Ending::Dropped, |f: CloseFrame| {
                        Ending::Closed(f.code.into())
                    });
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Ending::Dropped,
            }
        }
    }
}

/// A `presence.leave` a watcher read, and when.
pub type Leave = (Value, std::time::Instant);

/// Drops a member that never reads: `sender` says 4,000-byte messages,
/// each read back by it and by `watcher` (each frame within `wait`), as
/// healthy clients read, until the node at `node_port` counts one slow
/// consumer closed. Returns when it was seen to, and the `presence.leave`
/// the watcher read meanwhile, if any.
pub async fn flood_until_a_member_is_dropped(
    sender: &mut Client,
    watcher: &mut Client,
    wait: Duration,
    node_port: u16,
) -> (std::time::Instant, Option<Leave>) {
    let body = "y".repeat(4000);
    let mut left = None;
    loop {
        for _ in 0..64 {
            sender.say(&body).await;
            sender.recv_type("chat.message").await;
            loop {
                let frame = watcher.recv_within(wait).await;
                match frame["type"].as_str() {
                    Some("chat.message") => break,
                    Some("presence.leave") => left = Some((frame, std::time::Instant::now())),
                    _ => {}
                }
            }
        }
        let metrics = reqwest::get(format!("http://127.0.0.1:{node_port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics
            .lines()
            .any(|l| l == "hub_slow_consumers_closed_total 1")
        {
            return (std::time::Instant::now(), left);
        }
    }
}

/// The `presence.leave` the watcher already read, or the next one it reads
/// before `deadline`; with when it came.
pub async fn leave_by(
    watcher: &mut Client,
    seen: Option<Leave>,
    deadline: std::time::Instant,
) -> Leave {
    if let Some(seen) = seen {
        return seen;
    }
    loop {
        let frame = watcher
            .recv_within(deadline.saturating_duration_since(std::time::Instant::now()))
            .await;
        if frame["type"] == "presence.leave" {
            return (frame, std::time::Instant::now());
        }
    }
}

/// Opens a socket to a hub on `port`; `recv_buffer` shrinks the client's
/// socket buffer, for slow-reader tests.
pub async fn connect_at(
    port: u16,
    request: Request,
    recv_buffer: Option<u32>,
) -> Result<Client, tungstenite::Error> {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    let stream = socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .expect("TCP connect");
    let (ws, response) =
        tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, stream))
            .await
            .expect("handshake in time")?;
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    Ok(Client {
        ws,
        protocol,
        held: std::collections::VecDeque::new(),
    })
}

/// Opens a socket on this path of the hub at `port`, or panics with the refusal.
pub async fn open_at(port: u16, path: &str) -> Client {
    let request = format!("ws://127.0.0.1:{port}{path}")
        .into_client_request()
        .expect("valid URL");
    connect_at(port, request, None)
        .await
        .expect("connect accepted")
}

/// Connects a chat member and reads its join frames (history, presence).
pub async fn join(app: &TestApp, path: &str) -> (Client, Value, Value) {
    join_at(app.port, path).await
}

pub async fn join_at(port: u16, path: &str) -> (Client, Value, Value) {
    let mut c = open_at(port, path).await;
    let history = c.recv_type("chat.history").await;
    let presence = c.recv().await;
    (c, history, presence)
}

/// The real `hub` binary serving on port 0 in a process of its own (so its
/// memory is its own), killed and reaped however the test ends.
pub struct HubProcess {
    child: std::process::Child,
    pub port: u16,
    /// What it logged before it served.
    pub startup_log: Vec<Value>,
    stderr: Option<std::io::BufReader<std::process::ChildStderr>>,
}

impl HubProcess {
    /// Starts `hub serve` on this database with these settings and reads
    /// the port it logs.
    pub fn serve(database_url: &str, overrides: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_hub"))
            .arg("serve")
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("JWT_SIGNING_KEY", KEY)
            .env("HUB_BIND", "127.0.0.1:0")
            .env("HUB_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(UNCAPPED)
            // A stopped node closes its sockets within a second, not the
            // 10 s spread of production; the drain test sets its own.
            .env("HUB_DRAIN_SECS", "1")
            .envs(overrides.iter().copied())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("hub starts");
        // Owned by the guard at once, so a failed start still reaps it.
        let mut hub = Self {
            child,
            port: 0,
            startup_log: Vec::new(),
            stderr: None,
        };
        let mut stderr = std::io::BufReader::new(hub.child.stderr.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "hub exited before serving"
            );
            let entry: Value = serde_json::from_str(&line).expect("JSON log line");
            if entry["fields"]["message"] == "serving" {
                let port = entry["fields"]["port"].as_u64().unwrap();
                hub.port = u16::try_from(port).unwrap();
                hub.stderr = Some(stderr);
                return hub;
            }
            hub.startup_log.push(entry);
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn child(&mut self) -> &mut std::process::Child {
        &mut self.child
    }

    /// The hub's log, to read; while it is not taken it is kept open (and
    /// unread) so the hub never writes to a closed pipe.
    pub fn take_stderr(&mut self) -> std::io::BufReader<std::process::ChildStderr> {
        self.stderr.take().expect("the log is taken once")
    }

    /// The hub's resident memory, from /proc.
    pub fn resident_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .expect("VmRSS")
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes each test once and runs it on both backends: SQLite always,
/// PostgreSQL where `HUB_TEST_POSTGRES_URL` is set (always in CI). Built as
/// ignored where a service it needs is missing: PostgreSQL for the second,
/// and for both the services named after `unless` (`build.rs` sets them).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $crate::on_both_backends!(unless () $($name),*);
    };
    (unless $missing:tt $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(any $missing, ignore = "a service it needs is missing (README, Test)")]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    any(skip_postgres_tests, any $missing),
                    ignore = "HUB_TEST_POSTGRES_URL or another service it needs is missing (README, Test)"
                )]
                async fn $name() {
                    if $crate::helpers::postgres_admin_url().is_some() {
                        super::$name($crate::helpers::Backend::Postgres).await;
                    }
                }
            )*
        }
    };
}
