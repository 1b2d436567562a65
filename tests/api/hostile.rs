//! Hostile input from the open internet: forged and malformed tokens,
//! requests of extreme size, clients that stall a handshake or a message,
//! protocol violations, deep JSON, and strings built to break a parser, a
//! path or a query. Each gets its documented answer, and the hub serves
//! on afterwards.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, Ending, KEY, TestApp, WAIT, join};
use crate::on_both_backends;

on_both_backends!(strings_built_to_break_a_parser_a_path_or_a_query_are_refused_where_they_enter,);

/// The hub still serves: a new guest joins and hears itself.
async fn serves_on(app: &TestApp) {
    let (mut guest, _, _) = join(app, "/ws/chat/lobby/").await;
    guest.echo("still here").await;
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A token with this header and these claims, signed with HMAC-SHA256 over
/// the hub's key whatever the header says.
fn forged(header: &Value, claims: &Value) -> String {
    let message = format!("{}.{}", b64(header), b64(claims));
    let key = jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes());
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
            .unwrap();
    format!("{message}.{signature}")
}

fn claims(user_id: i32) -> Value {
    let now = hub::auth::jwt::now_secs();
    json!({"token_type": "access", "exp": now + 300, "iat": now, "jti": "j1", "user_id": user_id})
}

/// The refusal a dashboard (which never seats a guest) gives this token.
async fn dashboard_refusal(app: &TestApp, token: &str) -> (u16, String) {
    let mut request = app.request("/ws/analytics/");
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let refused = app.refused(request).await;
    (refused.status, refused.code().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_malformed_tokens_are_refused_and_keys_they_point_to_are_never_fetched() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.create_user("alice", false);
    let staff = app.create_user("sam", true);
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    let with = |field: &str, value: Value| {
        let mut c = claims(alice);
        c[field] = value;
        forged(&hs256, &c)
    };
    let valid = forged(&hs256, &claims(alice));
    let (head, _, signature) = {
        let mut parts = valid.split('.');
        (
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
        )
    };
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(alice))
    );
    let cases = [
        ("alg none", unsigned),
        (
            "an RS256 header over the HMAC key",
            forged(&json!({"alg": "RS256", "typ": "JWT"}), &claims(alice)),
        ),
        (
            "an ES256 header over the HMAC key",
            forged(&json!({"alg": "ES256", "typ": "JWT"}), &claims(alice)),
        ),
        (
            "a payload swapped for staff's",
            format!("{head}.{}.{signature}", b64(&claims(staff))),
        ),
        ("user_id as a float", with("user_id", json!(1.5))),
        (
            "user_id huge",
            with("user_id", json!(9_999_999_999_999_u64)),
        ),
        (
            "user_id a nested object",
            with("user_id", json!({"id": alice})),
        ),
        (
            "exp as a string of digits",
            with(
                "exp",
                json!(format!("{}", hub::auth::jwt::now_secs() + 300)),
            ),
        ),
        ("exp a nested object", with("exp", json!({"exp": 1}))),
        ("three dots and nothing", "...".to_owned()),
        ("not base64", "a.b.c".to_owned()),
    ];
    for (what, token) in cases {
        assert_eq!(
            dashboard_refusal(&app, &token).await,
            (401, "token_invalid".to_owned()),
            "{what}"
        );
    }
    assert_eq!(
        dashboard_refusal(&app, &with("exp", json!(-5))).await,
        (401, "token_expired".to_owned())
    );
    assert_eq!(
        dashboard_refusal(&app, &with("user_id", json!(-5))).await,
        (401, "user_not_found".to_owned())
    );

    // Headers that name other keys are ignored, as PyJWT ignores them: the
    // signature over the one configured key decides, and nothing is
    // fetched from where they point.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let there = format!("http://127.0.0.1:{}/key", trap.local_addr().unwrap().port());
    let pointing = json!({"alg": "HS256", "typ": "JWT", "kid": "../../../etc/passwd", "jku": there, "x5u": there});
    let token = forged(&pointing, &claims(alice));
    let mut dashboard = app.connect(&format!("/ws/analytics/?token={token}")).await;
    assert_eq!(
        dashboard.recv_type("analytics.snapshot").await["type"],
        "analytics.snapshot"
    );
    let mut other = pointing.clone();
    other["kid"] = json!("another");
    let wrongly_signed = {
        let message = format!("{}.{}", b64(&other), b64(&claims(alice)));
        let key = jsonwebtoken::EncodingKey::from_secret(b"the attacker's own key");
        let sig =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
                .unwrap();
        format!("{message}.{sig}")
    };
    assert_eq!(
        dashboard_refusal(&app, &wrongly_signed).await,
        (401, "token_invalid".to_owned())
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), trap.accept())
            .await
            .is_err(),
        "the hub fetched a key"
    );
    serves_on(&app).await;
}

/// Sends raw bytes on a new connection and reads what comes back until the
/// hub closes it (or `wait` passes): the status line, or `None` when the
/// hub closed without an answer.
async fn raw(app: &TestApp, bytes: &[u8], wait: Duration) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    // The hub may answer and close before it has read everything.
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the connection was still open after {wait:?}");
    let text = String::from_utf8_lossy(&answer).into_owned();
    text.lines().next().map(str::to_owned)
}

fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_of_extreme_size_are_refused_before_they_cost_anything() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.create_user("alice", false);
    let megabyte = "a".repeat(1 << 20);
    let token = app.token(alice);
    let cases = [
        (
            "a megabyte request line",
            upgrade_request(&format!("/ws/chat/lobby/?x={megabyte}"), ""),
        ),
        (
            "a megabyte token",
            upgrade_request(
                "/ws/analytics/",
                &format!("Authorization: Bearer {token}{megabyte}\r\n"),
            ),
        ),
        (
            "a megabyte header",
            upgrade_request("/ws/chat/lobby/", &format!("X-Pad: {megabyte}\r\n")),
        ),
        (
            "ten thousand headers",
            upgrade_request("/ws/chat/lobby/", &"X-Pad: 1\r\n".repeat(10_000)),
        ),
    ];
    for (what, request) in cases {
        let status = raw(&app, request.as_bytes(), WAIT).await;
        // actix-http refuses a head past its buffer with 431 (or closes).
        assert!(
            status
                .as_deref()
                .is_none_or(|s| s.starts_with("HTTP/1.1 4")),
            "{what}: {status:?}"
        );
    }
    serves_on(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stall_a_handshake_are_cut_off_within_the_request_timeout() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // actix-web's client request timeout is 5 s: past it a connection that
    // has not sent a whole request head is answered 408 and closed.
    let bound = Duration::from_secs(5) + WAIT;
    let slow: Vec<_> = (0..50)
        .map(|i| {
            let port = app.port;
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                if i % 2 == 0 {
                    // Half of a request head, then nothing.
                    stream
                        .write_all(b"GET /ws/chat/lobby/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                        .await
                        .unwrap();
                }
                let mut buf = Vec::new();
                tokio::time::timeout(bound, stream.read_to_end(&mut buf))
                    .await
                    .expect("cut off in time")
                    .ok();
            })
        })
        .collect();
    // Meanwhile everyone else is served.
    serves_on(&app).await;
    for stalled in slow {
        stalled.await.unwrap();
    }
    serves_on(&app).await;
}

/// A WebSocket frame from a client (masked, with a zero mask so the payload
/// goes as it is).
fn frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
    out
}

/// An upgraded connection spoken to in raw frames.
async fn raw_socket(app: &TestApp, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    stream
        .write_all(upgrade_request(path, "").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

/// Reads server frames until a close frame; its code.
async fn close_code(stream: &mut TcpStream) -> u16 {
    tokio::time::timeout(WAIT, async {
        loop {
            let first = stream.read_u8().await.unwrap();
            let len = match stream.read_u8().await.unwrap() & 0x7F {
                126 => u64::from(stream.read_u16().await.unwrap()),
                127 => stream.read_u64().await.unwrap(),
                n => u64::from(n),
            };
            let mut payload = vec![0; usize::try_from(len).unwrap()];
            stream.read_exact(&mut payload).await.unwrap();
            if first & 0x0F == 0x8 {
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
    })
    .await
    .expect("a close frame in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_close_only_the_socket_that_made_them() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (mut bystander, _, _) = join(&app, "/ws/chat/lobby/").await;
    // RSV1 on a connection that agreed no extension: 1002.
    let mut rsv1 = raw_socket(&app, "/ws/chat/lobby/").await;
    rsv1.write_all(&frame(0x80 | 0x40 | 0x1, b"{}"))
        .await
        .unwrap();
    assert_eq!(close_code(&mut rsv1).await, 1002);
    // A text frame that is not UTF-8: 1007.
    let mut latin1 = raw_socket(&app, "/ws/chat/lobby/").await;
    latin1
        .write_all(&frame(0x81, b"{\"message\": \"caf\xe9\"}"))
        .await
        .unwrap();
    assert_eq!(close_code(&mut latin1).await, 1007);
    bystander.echo("unbothered").await;
    serves_on(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_left_unfinished_or_a_socket_left_silent_holds_no_more_than_its_bounds() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("HUB_HEARTBEAT_SECS", "1"),
            ("HUB_CLIENT_TIMEOUT_SECS", "2"),
        ],
    )
    .await;
    // The first fragment of a message that never ends, from a client that
    // otherwise never speaks: the fragment is bounded by the frame limit,
    // and the client, answering no ping, is dropped at the client timeout.
    let mut unfinished = raw_socket(&app, "/ws/chat/lobby/").await;
    unfinished
        .write_all(&frame(0x01, &[b'x'; 1000]))
        .await
        .unwrap();
    let mut silent = raw_socket(&app, "/ws/chat/lobby/").await;
    for stream in [&mut unfinished, &mut silent] {
        let mut buf = Vec::new();
        // Pings, then the end: the timeout plus a heartbeat and slack.
        tokio::time::timeout(Duration::from_secs(3) + WAIT, stream.read_to_end(&mut buf))
            .await
            .expect("dropped in time")
            .ok();
    }
    serves_on(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nested_a_hundred_thousand_deep_is_refused_or_skipped_and_the_socket_stays() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.create_user("alice", false);
    // The DNS panel takes frames of half a megabyte, room for 100,000.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut panel = crate::dns::panel(&app, alice).await;
    panel
        .send_text(&format!(r#"{{"type": "dns.zones", "ref": {deep}}}"#))
        .await;
    let refused = panel.recv_type("error").await;
    assert_eq!(refused["code"], "invalid_json", "{refused}");
    let detail = refused["detail"].as_str().unwrap();
    assert!(detail.contains("recursion limit"), "{detail}");
    // A chat socket's limit is 64 KiB: 30,000 deep.
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let (mut chat, _, _) = join(&app, "/ws/chat/lobby/").await;
    // A field the hub does not read is skipped without recursion, however
    // deep: the message goes out.
    chat.send_text(&format!(
        r#"{{"type": "chat.message", "message": "hi", "extra": {deep}}}"#
    ))
    .await;
    assert_eq!(chat.recv_type("chat.message").await["message"], "hi");
    // Where a string belongs, the parser stops at the first bracket.
    chat.send_text(&format!(r#"{{"type": "chat.message", "message": {deep}}}"#))
        .await;
    assert_eq!(chat.recv_type("error").await["code"], "validation");
    chat.echo("shallow").await;
    panel.send(json!({"type": "dns.zones", "ref": "z"})).await;
    assert_eq!(panel.reply_to("z").await["type"], "dns.result");
    serves_on(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_null_is_refused_like_any_origin_not_listed() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("CORS_ALLOWED_ORIGINS", "https://panel.example.com")],
    )
    .await;
    let mut request = app.request("/ws/chat/lobby/");
    request
        .headers_mut()
        .insert("origin", "null".parse().unwrap());
    let refused = app.refused(request).await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "origin_not_allowed")
    );
    serves_on(&app).await;
}

/// Strings built to break something on the way in.
fn hostile_strings() -> Vec<(&'static str, String)> {
    vec![
        ("SQL", "x'); DROP TABLE auth_user; --".to_owned()),
        ("a path out", "../../../../etc/passwd".to_owned()),
        ("NUL", "a\u{0}b".to_owned()),
        ("a right-to-left override", "abc\u{202E}gpj.exe".to_owned()),
        ("100 KB", "a".repeat(100_000)),
    ]
}

async fn strings_built_to_break_a_parser_a_path_or_a_query_are_refused_where_they_enter(
    backend: Backend,
) {
    // Many requests from one socket: the per-socket rate is not the point.
    let settings = [
        ("HUB_INGEST_KEY", "ingest-key"),
        ("HUB_RATE_PER_SEC", "1000"),
        ("HUB_RATE_BURST", "1000"),
    ];
    let app = TestApp::spawn_with(backend, &settings).await;
    let alice = app.create_user("alice", false);
    let mut panel = crate::dns::panel(&app, alice).await;
    crate::dns::create_zone(&mut panel, "example.com").await;
    let (mut chat, _, _) = join(&app, "/ws/chat/lobby/").await;
    for (n, (what, text)) in hostile_strings().into_iter().enumerate() {
        // A room name: not a room (the path is percent-encoded as a
        // client would send it).
        let path = format!("/ws/chat/{}/", url_encode(&text));
        if path.len() < 8192 {
            let refused = app.refused(app.request(&path)).await;
            assert_eq!(
                (refused.status, refused.code()),
                (404, "not_found"),
                "{what}"
            );
        } else {
            // Past what a client library sends: raw, refused all the same.
            let status = raw(&app, upgrade_request(&path, "").as_bytes(), WAIT).await;
            assert!(
                status
                    .as_deref()
                    .is_none_or(|s| s.starts_with("HTTP/1.1 4")),
                "{status:?}"
            );
        }

        // A username at the login: refused (or its body too large), never
        // an error of the hub.
        let login = app
            .client()
            .post(app.http("/api/token/"))
            .json(&json!({"username": text, "password": "whatever"}))
            .send()
            .await
            .unwrap();
        assert!(
            [400, 401, 413].contains(&login.status().as_u16()),
            "{what}: {}",
            login.status()
        );

        // A metric name: validation.
        let ingest = app
            .client()
            .post(app.http("/api/analytics/events"))
            .header("x-hub-ingest-key", "ingest-key")
            .json(&json!([{"user_id": alice, "metric": text, "value": 1, "op": "add"}]))
            .send()
            .await
            .unwrap();
        assert_eq!(ingest.status(), 400, "{what}");
        let body: Value = ingest.json().await.unwrap();
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("metric"), "{what}: {detail}");

        // Every DNS field. Text that is only odd (SQL, a path) is data
        // where a field takes free text (TXT content, a comment), stored
        // as it came; everything else is refused, nothing applied.
        let free_text = matches!(what, "SQL" | "a path out");
        let record = |field: &str, name: &str| {
            let mut r = json!({"name": name, "type": "TXT", "content": "ok"});
            r[field] = json!(text);
            r
        };
        let requests = [
            (false, json!({"type": "dns.zone.create", "name": text})),
            (
                false,
                json!({"type": "dns.create", "zone": "example.com", "record": record("name", "x")}),
            ),
            (
                free_text,
                json!({"type": "dns.create", "zone": "example.com", "record": record("content", &format!("c{n}"))}),
            ),
            (
                free_text,
                json!({"type": "dns.create", "zone": "example.com", "record": record("comment", &format!("m{n}"))}),
            ),
            (false, json!({"type": "dns.list", "zone": text})),
        ];
        for (i, (taken, mut request)) in requests.into_iter().enumerate() {
            let reference = format!("{what}-{i}");
            request["ref"] = json!(reference);
            panel.send(request).await;
            let answer = panel.reply_to(&reference).await;
            if taken {
                assert_eq!(answer["type"], "dns.result", "{what} #{i}: {answer}");
                continue;
            }
            assert_eq!(answer["type"], "error", "{what} #{i}: {answer}");
            let code = answer["code"].as_str().unwrap();
            assert!(
                ["validation", "too_large", "not_found"].contains(&code),
                "{what} #{i}: {answer}"
            );
        }

        // A chat message: sent as it came when it is text people type; a
        // frame past the socket's limit (64 KiB) closes it with 1009.
        chat.send(json!({"type": "chat.message", "ref": "m", "message": text}))
            .await;
        if text.len() > 65_536 {
            assert_eq!(chat.ending(WAIT).await, Ending::Closed(1009));
            (chat, _, _) = join(&app, "/ws/chat/lobby/").await;
            continue;
        }
        let said = chat.reply_to("m").await;
        if free_text {
            assert_eq!(said["message"], text, "{what}");
        } else {
            assert_eq!(said["type"], "error", "{what}: {said}");
        }
    }
    // Stored as it came, and nothing else: the SQL ran nowhere (her user
    // is still there to sign in with).
    let records =
        crate::dns::records(&mut crate::dns::panel(&app, alice).await, "example.com").await;
    let stored = |name: &str, field: &str| {
        records
            .iter()
            .find(|r| r["name"] == name)
            .map(|r| r[field].clone())
    };
    assert_eq!(
        stored("c0", "content"),
        Some(json!("x'); DROP TABLE auth_user; --"))
    );
    assert_eq!(
        stored("m1", "comment"),
        Some(json!("../../../../etc/passwd"))
    );
    let named: Vec<&str> = records.iter().filter_map(|r| r["name"].as_str()).collect();
    assert!(
        named
            .iter()
            .all(|n| ["@", "c0", "c1", "m0", "m1"].contains(n)),
        "{named:?}"
    );
    serves_on(&app).await;
}

/// Percent-encodes every byte outside the unreserved set.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
