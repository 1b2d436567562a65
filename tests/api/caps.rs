//! The caps answered before the upgrade (sockets and handshakes per node:
//! 503 `overloaded`; sockets per user and guest sockets per client address:
//! 429 `too_many_connections`, both with `Retry-After`) and the write
//! budgets one person shares over all their sockets. Each is set small
//! here; the other tests run uncapped (`helpers::UNCAPPED`).
//!
//! The caps and budgets do not touch the database, so these run on SQLite
//! only.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::dns::{create_zone, panel};
use crate::helpers::{Backend, Client, Refused, Request, TestApp, WAIT, join};

fn with_forwarded_for(app: &TestApp, path: &str, client: &str) -> Request {
    with_header(app, path, "x-forwarded-for", client)
}

fn with_header(app: &TestApp, path: &str, name: &'static str, value: &str) -> Request {
    let mut request = app.request(path);
    request.headers_mut().insert(name, value.parse().unwrap());
    request
}

fn assert_capped(refused: &Refused, status: u16, code: &str, waits: std::ops::RangeInclusive<u64>) {
    assert_eq!(refused.status, status, "{refused:?}");
    assert_eq!(refused.code(), code, "{refused:?}");
    assert!(refused.body["detail"].is_string(), "{refused:?}");
    let wait = refused.retry_after.expect("Retry-After");
    assert!(waits.contains(&wait), "Retry-After {wait}");
}

/// Opens a guest socket forwarded for each of `admitted` (through a
/// trusted proxy or not), then expects one forwarded for `refused` to be
/// refused at the per-address cap.
async fn fill_then_refuse(app: &TestApp, admitted: &[&str], refused: &str) -> Vec<Client> {
    let mut kept = Vec::new();
    for client in admitted {
        kept.push(
            app.open(with_forwarded_for(app, LOBBY, client))
                .await
                .unwrap(),
        );
    }
    let refusal = app
        .open(with_forwarded_for(app, LOBBY, refused))
        .await
        .err()
        .expect("refused at the per-address cap");
    assert_capped(&refusal, 429, "too_many_connections", 5..=15);
    kept
}

const LOBBY: &str = "/ws/chat/lobby/";

/// A socket that still works: it answers a request.
async fn still_answers(client: &mut Client) {
    client
        .send(json!({"type": "nonsense", "ref": "alive"}))
        .await;
    assert_eq!(client.reply_to("alive").await["code"], "unknown_type");
}

/// Opens until the cap gives a place back: a closed socket's place is
/// free once its session has ended, a moment after the close.
async fn open_once_freed(app: &TestApp, path: &str) -> Client {
    let deadline = Instant::now() + WAIT;
    loop {
        match app.open(app.request(path)).await {
            Ok(client) => return client,
            Err(refused) if Instant::now() < deadline => {
                assert_eq!(refused.status, 429, "{refused:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(refused) => panic!("the place never came back: {refused:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_holds_at_most_their_sockets_and_gets_a_place_back_when_one_closes() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("HUB_MAX_SOCKETS_PER_USER", "2")]).await;
    let alice = app.create_user("alice", false);
    let bob = app.create_user("bob", false);
    let token = app.token(alice);
    let mut dashboard = app.connect(&format!("/ws/analytics/?token={token}")).await;
    let mut dns = panel(&app, alice).await;

    // Every endpoint counts toward the same cap, a chat room too.
    for path in [
        format!("/ws/chat/lobby/?token={token}"),
        format!("/ws/analytics/?token={token}"),
    ] {
        let refused = app.refused(app.request(&path)).await;
        assert_capped(&refused, 429, "too_many_connections", 5..=15);
    }
    // Those under the cap still work, and others are not counted with her.
    still_answers(&mut dashboard).await;
    still_answers(&mut dns).await;
    let mut bobs = panel(&app, bob).await;
    still_answers(&mut bobs).await;
    let (_guest, _, _) = join(&app, "/ws/chat/lobby/").await;

    app.until_metric("hub_handshakes_refused_total{code=\"too_many_connections\"} 2")
        .await;

    dashboard.ws.close(None).await.unwrap();
    let mut again = open_once_freed(&app, &format!("/ws/chat/lobby/?token={token}")).await;
    assert_eq!(
        again.recv_type("chat.history").await["type"],
        "chat.history"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_are_counted_by_the_address_a_trusted_proxy_names_and_never_by_one_a_client_writes()
{
    let caps = [("HUB_MAX_GUEST_SOCKETS_PER_ADDRESS", "2")];
    let lobby = LOBBY;

    // Behind a trusted proxy: each client behind it has its own cap.
    let trusting = [caps[0], ("HUB_TRUSTED_PROXIES", "127.0.0.1")];
    let app = TestApp::spawn_with(Backend::Sqlite, &trusting).await;
    let alice = app.create_user("alice", false);
    let mut first = fill_then_refuse(&app, &["198.51.100.1"; 2], "198.51.100.1").await;
    // The standard `Forwarded` header names the same client.
    let refused = app
        .open(with_header(
            &app,
            lobby,
            "forwarded",
            "for=198.51.100.1;proto=https",
        ))
        .await
        .err()
        .expect("the same address, named by Forwarded, is refused");
    assert_capped(&refused, 429, "too_many_connections", 5..=15);
    // Another client behind the same proxy, and a user at the first
    // address (users are counted as users), still get in.
    let mut second = app
        .open(with_forwarded_for(&app, lobby, "198.51.100.2"))
        .await
        .unwrap();
    let with_token = format!("{lobby}?token={}", app.token(alice));
    let mut user = app
        .open(with_forwarded_for(&app, &with_token, "198.51.100.1"))
        .await
        .unwrap();
    for client in first.iter_mut().chain([&mut second, &mut user]) {
        still_answers(client).await;
    }

    // Without trusting the proxy, what the client writes counts for
    // nothing: every guest is the peer's, 127.0.0.1.
    let app = TestApp::spawn_with(Backend::Sqlite, &caps).await;
    let mut kept = fill_then_refuse(&app, &["203.0.113.1", "203.0.113.2"], "203.0.113.3").await;
    for client in &mut kept {
        still_answers(client).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_at_its_socket_cap_refuses_as_overloaded_and_keeps_serving_those_it_holds() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("HUB_MAX_SOCKETS", "3")]).await;
    let alice = app.create_user("alice", false);
    let mut held = vec![
        panel(&app, alice).await,
        app.connect("/ws/chat/lobby/").await,
        app.connect("/ws/chat/lobby/").await,
    ];
    for path in [
        format!("/ws/dns/?token={}", app.token(alice)),
        "/ws/chat/lobby/".to_owned(),
    ] {
        let refused = app.refused(app.request(&path)).await;
        assert_capped(&refused, 503, "overloaded", 5..=15);
    }
    for client in &mut held {
        still_answers(client).await;
    }
    app.until_metric("hub_handshakes_refused_total{code=\"overloaded\"} 2")
        .await;
    // Plain requests are not sockets: the node still answers them.
    let health = app.client().get(app.http("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_past_the_node_rate_are_refused_as_overloaded_for_a_second() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("HUB_MAX_HANDSHAKES_PER_SEC", "2")]).await;
    // 2 a second with a burst of 2: back to back, handshakes pass at most
    // 2 plus 2 for each second the attempts took, then one is refused.
    let start = Instant::now();
    let mut admitted = Vec::new();
    let refused = loop {
        match app.open(app.request("/ws/chat/lobby/")).await {
            Ok(client) => admitted.push(client),
            Err(refused) => break refused,
        }
        assert!(start.elapsed() < WAIT, "never refused");
    };
    let allowed = 2.0 + 2.0 * start.elapsed().as_secs_f64();
    assert!(
        admitted.len() as f64 <= allowed,
        "{} admitted",
        admitted.len()
    );
    assert_capped(&refused, 503, "overloaded", 1..=1);
    for client in &mut admitted {
        still_answers(client).await;
    }
}

/// What became of each of a batch of chat messages sent at once from
/// several sockets: how many were sent, how many refused `rate_limited`.
async fn say_from_each(senders: &mut [Client]) -> (usize, usize) {
    for (i, sender) in senders.iter_mut().enumerate() {
        sender
            .send(json!({"type": "chat.message", "ref": format!("m{i}"), "message": "hi"}))
            .await;
    }
    let (mut sent, mut refused) = (0, 0);
    for (i, sender) in senders.iter_mut().enumerate() {
        let reply = sender.reply_to(&format!("m{i}")).await;
        match reply["type"].as_str() {
            Some("chat.message") => sent += 1,
            _ => {
                assert_eq!(reply["code"], "rate_limited", "{reply}");
                refused += 1;
            }
        }
    }
    (sent, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_s_chat_budget_is_shared_by_all_their_sockets_and_a_guest_s_by_their_address() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("HUB_PERSON_RATE_PER_SEC", "1"),
            ("HUB_PERSON_RATE_BURST", "2"),
        ],
    )
    .await;
    let alice = app.create_user("alice", false);
    let bob = app.create_user("bob", false);
    let path = |user| format!("/ws/chat/lobby/?token={}", app.token(user));
    for person in ["alice", "guests"] {
        let mut senders = Vec::new();
        for _ in 0..8 {
            let at = if person == "alice" {
                path(alice)
            } else {
                "/ws/chat/lobby/".to_owned()
            };
            let (client, _, _) = join(&app, &at).await;
            senders.push(client);
        }
        // Each socket has a whole budget of its own (10 a second); the
        // person's is 2 at once and 1 a second, for all eight.
        let start = Instant::now();
        let (sent, refused) = say_from_each(&mut senders).await;
        let allowed = 2.0 + start.elapsed().as_secs_f64();
        assert!(sent as f64 <= allowed, "{person}: {sent} sent");
        assert_eq!(sent + refused, 8);
        assert!(refused > 0, "{person}: nothing refused");
    }
    // Another person's budget is whole.
    let (mut bobs, _, _) = join(&app, &path(bob)).await;
    bobs.echo("bob here").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_dns_sockets_of_one_user_change_zones_no_faster_than_one() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("HUB_DNS_WRITES_PER_SEC", "1")]).await;
    let alice = app.create_user("alice", false);
    let bob = app.create_user("bob", false);
    let mut setup = panel(&app, alice).await;
    let mut panels = Vec::new();
    for _ in 0..40 {
        panels.push(panel(&app, alice).await);
    }
    let start = Instant::now();
    create_zone(&mut setup, "example.com").await;
    for (i, client) in panels.iter_mut().enumerate() {
        let record = json!({"name": format!("r{i}"), "type": "A", "content": "192.0.2.1"});
        client
            .send(json!({"type": "dns.create", "ref": format!("c{i}"), "zone": "example.com", "record": record}))
            .await;
    }
    let mut applied = 0;
    for (i, client) in panels.iter_mut().enumerate() {
        let reply = client.reply_to(&format!("c{i}")).await;
        if reply["type"] == "dns.result" {
            applied += 1;
        } else {
            assert_eq!(reply["code"], "rate_limited", "{reply}");
            let detail = reply["detail"].as_str().unwrap();
            assert!(detail.contains("per user"), "{detail}");
        }
    }
    // 1 at once and 1 a second, the zone's creation included.
    let allowed = 1.0 + start.elapsed().as_secs_f64();
    assert!(applied as f64 <= allowed, "{applied} applied");
    // Another user's budget is whole.
    let mut bobs = panel(&app, bob).await;
    create_zone(&mut bobs, "example.org").await;
}
