//! The real `hub` binary as operators run it: what it logs, how it stops,
//! how several of it start together.

use std::io::{BufRead, Read};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::helpers::{Backend, HubProcess, KEY, TestApp, post_json};
use crate::on_both_backends;

on_both_backends!(
    a_token_in_the_query_never_reaches_the_log,
    sigterm_closes_every_socket_with_1012_spread_over_the_drain_window_then_exits_0,
    no_secret_reaches_the_log_even_at_trace,
);

async fn a_token_in_the_query_never_reaches_the_log(backend: Backend) {
    // The TestApp provides the database (and drops it); the hub under test is the binary.
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let token = app.token(alice);
    let mut hub = HubProcess::serve(&app.database_url, &[]);
    let port = hub.port;

    let url = format!("ws://127.0.0.1:{port}/ws/chat/lobby/?since=0&token={token}");
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    drop(ws);
    let refused = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{port}/ws/analytics/?token={token}x"
    ))
    .await;
    assert!(refused.is_err());
    // The socket's line is logged when its connection ends, the refusal's
    // at once: read until both are there.
    let mut stderr = hub.take_stderr();
    let reading = tokio::task::spawn_blocking(move || {
        let mut log = String::new();
        while !(log.contains("GET /ws/analytics/") && log.contains("GET /ws/chat/lobby/")) {
            if stderr.read_line(&mut log).unwrap() == 0 {
                break;
            }
        }
        log
    });
    let log = tokio::time::timeout(std::time::Duration::from_secs(10), reading)
        .await
        .expect("the access log in time")
        .unwrap();

    assert!(
        log.contains("GET /ws/chat/lobby/?since=0&token=[redacted]"),
        "{log}"
    );
    assert!(!log.contains(&token), "a token reached the log:\n{log}");
    assert!(!log.contains(KEY), "the signing key reached the log");
}

/// How a socket ended after SIGTERM: its close code, and when it came.
async fn close_of(mut socket: Socket) -> (u16, Instant) {
    loop {
        match socket.next().await {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), Instant::now());
            }
            Some(Ok(_)) => continue,
            other => panic!("no close frame before the end: {other:?}"),
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn sigterm_closes_every_socket_with_1012_spread_over_the_drain_window_then_exits_0(
    backend: Backend,
) {
    const WINDOW: Duration = Duration::from_secs(3);
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let token = app.token(alice);
    let mut hub = HubProcess::serve(&app.database_url, &[("HUB_DRAIN_SECS", "3")]);
    let base = format!("ws://127.0.0.1:{}", hub.port);
    let mut paths = vec![format!("/ws/chat/lobby/?token={token}")];
    paths.extend((0..20).map(|_| "/ws/chat/lobby/".to_owned()));
    paths.extend((0..5).map(|_| format!("/ws/analytics/?token={token}")));
    paths.extend((0..5).map(|_| format!("/ws/dns/?token={token}")));
    let mut sockets = Vec::new();
    for path in &paths {
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("{base}{path}"))
            .await
            .unwrap();
        // Fully open once its first frame arrives (a DNS panel speaks
        // first only when asked).
        if !path.starts_with("/ws/dns/") {
            assert!(matches!(socket.next().await, Some(Ok(Message::Text(_)))));
        }
        sockets.push(socket);
    }
    // A chat message acknowledged just before the signal.
    let speaker = &mut sockets[0];
    let said = r#"{"type": "chat.message", "ref": "last", "message": "last words"}"#;
    speaker.send(Message::text(said)).await.unwrap();
    loop {
        let Some(Ok(Message::Text(text))) = speaker.next().await else {
            panic!("no ack")
        };
        if text.contains(r#""ref":"last""#) {
            break;
        }
    }
    let http = reqwest::Client::new();
    let readyz = format!("http://127.0.0.1:{}/readyz", hub.port);
    assert_eq!(http.get(&readyz).send().await.unwrap().status(), 200);

    let closes: Vec<_> = sockets
        .into_iter()
        .map(|s| tokio::spawn(close_of(s)))
        .collect();
    let signalled = Instant::now();
    // SAFETY: kill only sends a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(hub.pid() as i32, libc::SIGTERM) }, 0);
    // Unready at once: a 503 while the sockets are still being closed,
    // and new sockets are refused.
    loop {
        let resp = http
            .get(&readyz)
            .send()
            .await
            .expect("an answer while draining");
        if resp.status() == 200 {
            assert!(signalled.elapsed() < WINDOW, "still ready while draining");
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        assert_eq!(resp.status(), 503);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "not_ready", "{body}");
        break;
    }
    let refused = tokio_tungstenite::connect_async(format!("{base}/ws/chat/lobby/")).await;
    let Err(tungstenite::Error::Http(resp)) = refused else {
        panic!("a socket opened while draining")
    };
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
    assert_eq!(body["error"], "draining", "{body}");
    let mut times = Vec::new();
    for close in closes {
        let (code, at) = close.await.unwrap();
        assert_eq!(code, 1012);
        times.push(at.duration_since(signalled));
    }
    times.sort();
    let (first, last) = (times[0], times[times.len() - 1]);
    // 31 moments drawn evenly over 3 s: all within the window (and the
    // time a busy machine takes to deliver them), and not in one instant.
    assert!(
        last < WINDOW + Duration::from_secs(2),
        "last close after {last:?}"
    );
    assert!(
        last - first > Duration::from_secs(1),
        "closes within {:?}",
        last - first
    );

    // Out within the window, the close timeout and slack, with success.
    let deadline = signalled + WINDOW + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = hub.child().try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the hub did not exit after draining"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");

    // What was acknowledged was kept.
    let hub = HubProcess::serve(&app.database_url, &[]);
    let url = format!("ws://127.0.0.1:{}/ws/chat/lobby/", hub.port);
    let (mut reader, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let Some(Ok(Message::Text(history))) = reader.next().await else {
        panic!("no history")
    };
    assert!(history.contains("last words"), "{history}");
}

/// A `hub migrate` process, killed and reaped however the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for a `hub` process to exit, killing it if it takes longer than
/// `within`, and returns what it printed.
fn finish(mut child: Running, within: Duration) -> Output {
    let deadline = Instant::now() + within;
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "hub did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut output = Output {
        status: child.0.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    for (pipe, buf) in [
        (
            child.0.stdout.take().map(|p| Box::new(p) as Box<dyn Read>),
            &mut output.stdout,
        ),
        (
            child.0.stderr.take().map(|p| Box::new(p) as Box<dyn Read>),
            &mut output.stderr,
        ),
    ] {
        if let Some(mut pipe) = pipe {
            pipe.read_to_end(buf).unwrap();
        }
    }
    output
}

/// Two hubs (or two `hub migrate`) started together on a fresh SQLite file
/// must not both create the tables: each of several processes started at
/// once succeeds, over several fresh files.
#[test]
fn concurrent_migrations_on_a_fresh_sqlite_file_all_succeed() {
    for trial in 0..8 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("hub.sqlite3").display());
        let started: Vec<Running> = (0..4)
            .map(|_| {
                Running(
                    Command::new(env!("CARGO_BIN_EXE_hub"))
                        .arg("migrate")
                        .env_clear()
                        .env("DATABASE_URL", &url)
                        .env("RUST_LOG", "warn")
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .expect("hub starts"),
                )
            })
            .collect();
        for child in started {
            let out = finish(child, Duration::from_secs(30));
            assert!(
                out.status.success(),
                "trial {trial}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Several hub processes on one machine share one port with
/// `--reuse-port`: the kernel spreads new connections over them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_started_with_reuse_port_share_one_port() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hub.sqlite3").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let overrides = [("HUB_BIND", bind.as_str()), ("HUB_REUSE_PORT", "true")];
    let nodes = [
        HubProcess::serve(&url, &overrides),
        HubProcess::serve(&url, &overrides),
    ];
    assert!(nodes.iter().all(|n| n.port == port));
    // Each connection lands on one of them, by a hash of its addresses: of
    // 64, each process gets some (all on one has odds of 2^-63). Counted
    // from each process's own sockets, since any request to the port may
    // reach either.
    let before: Vec<usize> = nodes.iter().map(|n| sockets_of(n.pid())).collect();
    let mut guests = Vec::new();
    for _ in 0..64 {
        guests.push(crate::helpers::join_at(port, "/ws/chat/shared/").await);
    }
    for (node, before) in nodes.iter().zip(before) {
        let now = sockets_of(node.pid());
        assert!(now > before, "process {} took no connection", node.pid());
    }
}

/// The sockets a process holds open.
fn sockets_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

/// Every secret the hub handles, used everywhere it takes one, with the
/// most verbose log there is: none of them is in the log.
async fn no_secret_reaches_the_log_even_at_trace(backend: Backend) {
    const PASSWORD: &str = "tr0ub4dor & 3 horses";
    const INGEST_KEY: &str = "ingest-key-7f3a9c1e";
    const METRICS_TOKEN: &str = "metrics-token-5d2b8e4f";
    let app = TestApp::spawn(backend).await;
    app.cli_with_input(
        &["user", "create", "--username", "ops", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    let (user, hash) = app
        .db
        .run_here(|conn| hub::db::users::find_with_password(conn, "ops"))
        .unwrap()
        .expect("the user was made");
    let mut hub = HubProcess::serve(
        &app.database_url,
        &[
            ("RUST_LOG", "trace"),
            ("HUB_INGEST_KEY", INGEST_KEY),
            ("HUB_METRICS_TOKEN", METRICS_TOKEN),
        ],
    );
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", hub.port);
    let ws = |path: &str| format!("ws://127.0.0.1:{}{path}", hub.port);

    // A login and a refresh.
    let login = post_json(
        &http,
        &url("/api/token/"),
        serde_json::json!({"username": "ops", "password": PASSWORD}),
    )
    .await;
    let (access, refresh) = (
        login["access"].as_str().unwrap().to_owned(),
        login["refresh"].as_str().unwrap().to_owned(),
    );
    let refreshed = post_json(
        &http,
        &url("/api/token/refresh/"),
        serde_json::json!({"refresh": refresh}),
    )
    .await;
    let renewed = refreshed["access"].as_str().unwrap().to_owned();

    // The token in all three places a socket takes it, and refreshed on
    // an open socket.
    let (mut by_query, _) =
        tokio_tungstenite::connect_async(ws(&format!("/ws/analytics/?token={access}")))
            .await
            .unwrap();
    let mut by_header = ws("/ws/dns/").into_client_request().unwrap();
    by_header.headers_mut().insert(
        "authorization",
        format!("Bearer {renewed}").parse().unwrap(),
    );
    let (_dns, _) = tokio_tungstenite::connect_async(by_header).await.unwrap();
    let mut by_protocol = ws("/ws/chat/lobby/").into_client_request().unwrap();
    by_protocol.headers_mut().insert(
        "sec-websocket-protocol",
        format!("bearer, {access}").parse().unwrap(),
    );
    let (_chat, _) = tokio_tungstenite::connect_async(by_protocol).await.unwrap();
    let refresh_frame = serde_json::json!({"type": "auth.refresh", "ref": "r", "token": renewed});
    by_query
        .send(Message::text(refresh_frame.to_string()))
        .await
        .unwrap();
    loop {
        let Some(Ok(Message::Text(text))) = by_query.next().await else {
            panic!("no answer to the refresh")
        };
        if text.contains("auth.refreshed") {
            break;
        }
    }
    // A bad login, the ingest key and the metrics token.
    http.post(url("/api/token/"))
        .json(&serde_json::json!({"username": "ops", "password": format!("{PASSWORD}!")}))
        .send()
        .await
        .unwrap();
    let ingest = http
        .post(url("/api/analytics/events"))
        .header("x-hub-ingest-key", INGEST_KEY)
        .json(
            &serde_json::json!([{"user_id": user.id, "metric": "visits", "value": 1, "op": "add"}]),
        )
        .send()
        .await
        .unwrap();
    assert!(ingest.status().is_success(), "{}", ingest.status());
    let metrics = http
        .get(url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);

    // SAFETY: kill only sends a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(hub.pid() as i32, libc::SIGTERM) }, 0);
    let mut stderr = hub.take_stderr();
    let log = tokio::task::spawn_blocking(move || {
        let mut log = String::new();
        stderr.read_to_string(&mut log).unwrap();
        log
    })
    .await
    .unwrap();
    assert!(log.len() > 10_000, "trace logged little: {log}");
    let secrets = [
        ("the password", PASSWORD),
        ("the password hash", hash.as_str()),
        ("the hash's digest", hash.rsplit('$').next().unwrap()),
        ("the signing key", KEY),
        ("the ingest key", INGEST_KEY),
        ("the metrics token", METRICS_TOKEN),
        ("an access token", access.as_str()),
        ("a refresh token", refresh.as_str()),
        ("a refreshed token", renewed.as_str()),
        ("a token's signature", access.rsplit('.').next().unwrap()),
    ];
    for (what, secret) in secrets {
        assert!(!log.contains(secret), "{what} reached the log");
    }
}
