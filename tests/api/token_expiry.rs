//! `HUB_TOKEN_EXPIRY`: kept (the default), an open socket outlives its
//! token, as under Django Channels, while its user is still re-checked;
//! closed, it ends with 4001 at `exp` (tests/api/lifetime.rs). In either
//! mode the maximum connection age ends it with 1012.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::SinkExt;
use hub::auth::jwt::{TokenKind, now_secs};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::analytics::{self, ingest};
use crate::dns::{create_zone, panel};
use crate::helpers::{Backend, Client, Ending, TestApp, join};
use crate::on_both_backends;

on_both_backends!(
    a_kept_socket_outlives_its_token_on_chat_dashboards_and_dns,
    a_kept_socket_past_its_token_still_leaves_a_staff_room_and_is_closed_on_deactivation,
    the_frontends_dashboard_hook_stays_live_past_its_token_by_default,
    the_maximum_connection_age_closes_an_idle_socket_with_1012_in_either_mode,
    where_expiry_closes_nothing_sent_after_exp_is_stored_even_before_the_close,
);

/// Seconds the short-lived tokens here last.
const LIFETIME: i64 = 3;

/// How long after opening a kept socket is shown to be live: more than
/// three of its tokens' lifetimes.
const PAST_EXPIRY: Duration = Duration::from_secs(10);

/// A user's change reaches an open socket within one re-check interval
/// (1 s here) and a database round trip; the rest is slack for a busy
/// machine.
const RECHECKED: Duration = Duration::from_secs(5);

/// A dashboard opened on `token`, its snapshot read.
async fn dashboard(app: &TestApp, token: &str) -> Client {
    let mut dash = app.connect(&format!("/ws/analytics/?token={token}")).await;
    assert_eq!(dash.recv().await["type"], "analytics.snapshot");
    dash
}

/// Adds one visit to `user_id`'s dashboard and reads the update it gets.
async fn a_visit_reaches(app: &TestApp, user_id: i32, dash: &mut Client, visits: f64) {
    let (status, _) = ingest(
        app,
        json!({"user_id": user_id, "metric": "visits", "value": 1, "op": "add"}),
    )
    .await;
    assert_eq!(status, 200);
    let update = dash.recv_type("analytics.update").await;
    assert_eq!(update["metrics"]["visits"], visits);
}

async fn a_kept_socket_outlives_its_token_on_chat_dashboards_and_dns(backend: Backend) {
    let app = analytics::spawn_with(backend, &[("HUB_TOKEN_EXPIRY", "keep")]).await;
    let alice = app.create_user("alice", false);
    let bob = app.create_user("bob", false);
    let token = app.token_expiring_in(alice, LIFETIME);
    let (mut chat, _, _) = join(&app, &format!("/ws/chat/lobby/?token={token}")).await;
    let mut dash = dashboard(&app, &token).await;
    let mut dns = app.connect(&format!("/ws/dns/?token={token}")).await;

    tokio::time::sleep(PAST_EXPIRY).await;

    let (mut bobs, _, _) = join(&app, &format!("/ws/chat/lobby/?token={}", app.token(bob))).await;
    bobs.say("long after alice's token").await;
    let heard = chat.recv_type("chat.message").await;
    assert_eq!(heard["message"], "long after alice's token");
    chat.echo("and alice still speaks").await;

    a_visit_reaches(&app, alice, &mut dash, 1.0).await;

    // A change from another tab of alice's, opened with a fresh token.
    let mut fresh_tab = panel(&app, alice).await;
    create_zone(&mut fresh_tab, "example.com").await;
    let pushed = dns.recv_type("dns.zone.created").await;
    assert_eq!(pushed["zone"]["name"], "example.com");
}

async fn a_kept_socket_past_its_token_still_leaves_a_staff_room_and_is_closed_on_deactivation(
    backend: Backend,
) {
    let app = TestApp::spawn_with(
        backend,
        &[("HUB_TOKEN_EXPIRY", "keep"), ("HUB_USER_RECHECK_SECS", "1")],
    )
    .await;
    let sam = app.create_user("sam", true);
    let token = app.token_expiring_in(sam, LIFETIME);
    let (mut staff_room, _, _) = join(&app, &format!("/ws/chat/management/?token={token}")).await;
    let (mut lobby, _, _) = join(&app, &format!("/ws/chat/lobby/?token={token}")).await;
    // `exp` is in whole seconds: one more and the token is past it.
    tokio::time::sleep(Duration::from_secs(LIFETIME.unsigned_abs() + 1)).await;
    staff_room.echo("past the token, still staff").await;

    app.cli(&["user", "set-staff", "sam", "false"]);
    assert_eq!(staff_room.ending(RECHECKED).await, Ending::Closed(4003));
    lobby.echo("the public room does not care").await;

    app.cli(&["user", "set-active", "sam", "false"]);
    assert_eq!(lobby.ending(RECHECKED).await, Ending::Closed(4003));
}

/// The frontend the hub replaces Channels for, as its WebSocket hook is
/// written: it opens `/ws/analytics/?token=${token}` with the token from its
/// auth store, never sends `auth.refresh`, and does nothing on a close (it
/// reconnects only when the store's token changes). Under the default
/// settings its dashboard stays live past the token.
async fn the_frontends_dashboard_hook_stays_live_past_its_token_by_default(backend: Backend) {
    let app = analytics::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mut hook = dashboard(&app, &app.token_expiring_in(alice, LIFETIME)).await;
    tokio::time::sleep(PAST_EXPIRY).await;
    a_visit_reaches(&app, alice, &mut hook, 1.0).await;
}

async fn the_maximum_connection_age_closes_an_idle_socket_with_1012_in_either_mode(
    backend: Backend,
) {
    const AGE: Duration = Duration::from_secs(2);
    for mode in ["keep", "close"] {
        let app = TestApp::spawn_with(
            backend,
            &[
                ("HUB_TOKEN_EXPIRY", mode),
                ("HUB_MAX_CONNECTION_AGE", &AGE.as_secs().to_string()),
            ],
        )
        .await;
        let alice = app.create_user("alice", false);
        // The token outlives the age (the default five minutes), so in
        // either mode only the age can end the socket.
        let opening = Instant::now();
        let (mut c, _, _) =
            join(&app, &format!("/ws/chat/lobby/?token={}", app.token(alice))).await;
        // The hub starts counting after `opening`, and jitters the age down
        // to no less than nine tenths of it: nothing ends the socket before.
        c.silent_for((opening + AGE.mul_f64(0.9)).saturating_duration_since(Instant::now()))
            .await;
        // By the age itself, and a close handshake; the rest is slack for
        // a busy machine.
        let deadline = opening + AGE + Duration::from_secs(5);
        assert_eq!(
            c.ending(deadline.saturating_duration_since(Instant::now()))
                .await,
            Ending::Closed(1012),
            "{mode}"
        );
    }
}

/// Microseconds since the epoch, by the clock the hub reads `exp` with.
fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

/// With `HUB_TOKEN_EXPIRY=close` a token speaks no more from its `exp`,
/// even in the moment between `exp` and the expiry timer's close (timers
/// fire on the next millisecond at best). A client sends a message every
/// millisecond across `exp`, each carrying its send time; no message sent
/// at or after `exp` may be kept in the room's history, in any trial. (The
/// moment is short: without the check, about one trial in six keeps one.)
async fn where_expiry_closes_nothing_sent_after_exp_is_stored_even_before_the_close(
    backend: Backend,
) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("HUB_TOKEN_EXPIRY", "close"),
            ("HUB_RATE_PER_SEC", "100000"),
            ("HUB_RATE_BURST", "100000"),
            ("HUB_PERSON_RATE_PER_SEC", "100000"),
            ("HUB_PERSON_RATE_BURST", "100000"),
        ],
    )
    .await;
    let alice = app.create_user("alice", false);
    for trial in 0..15 {
        let room = format!("/ws/chat/expiry{trial}/");
        // `exp` is in whole seconds: at least a second ahead, time to join
        // on a busy machine.
        let exp = now_secs() + 2;
        let token = app
            .codec
            .mint_with_expiry(alice, TokenKind::Access, now_secs(), exp);
        let exp_us = u128::try_from(exp).unwrap() * 1_000_000;
        let (mut c, _, _) = join(&app, &format!("{room}?token={token}")).await;
        // One every millisecond, from just before `exp` to a little past
        // it (or until a send fails on the close): a message that arrives
        // on its own meets the moment before the timer, where one in a
        // queued flood is read after it.
        let start = (exp_us - 30_000).saturating_sub(now_us());
        tokio::time::sleep(Duration::from_micros(u64::try_from(start).unwrap())).await;
        while now_us() < exp_us + 30_000 {
            let sent = json!({"type": "chat.message", "message": now_us().to_string()});
            if c.ws.send(Message::text(sent.to_string())).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(c);
        let (_, history, _) = join(&app, &room).await;
        let late: Vec<u128> = history["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["message"].as_str().unwrap().parse().unwrap())
            .filter(|&sent| sent >= exp_us)
            .collect();
        assert!(
            late.is_empty(),
            "trial {trial}: kept, sent after exp {exp_us}: {late:?}"
        );
    }
}
