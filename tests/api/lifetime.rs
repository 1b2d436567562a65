//! A token's lifetime on an open socket: refresh, expiry, and a user who loses
//! the right to stay. The tests of expiry run with `HUB_TOKEN_EXPIRY=close`,
//! where it ends the socket; kept (the default), see tests/api/token_expiry.rs.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::helpers::{Backend, Ending, TestApp, join};
use crate::on_both_backends;

on_both_backends!(
    auth_refresh_extends_a_connection_past_its_first_token,
    a_connection_whose_token_expires_is_closed_with_4001,
    a_deactivated_user_is_closed_with_4003,
    a_user_who_loses_staff_leaves_the_staff_room_with_4003,
    a_refresh_with_another_users_token_is_refused,
    nothing_is_stored_or_refreshed_after_a_token_expires,
    a_cached_user_who_loses_staff_is_closed_within_one_recheck_interval_of_its_load,
    after_a_close_handshake_the_server_closes_the_connection_at_once,
);

/// A hub whose sockets are closed with 4001 when their token expires.
async fn closing_at_expiry(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, &[("HUB_TOKEN_EXPIRY", "close")]).await
}

async fn auth_refresh_extends_a_connection_past_its_first_token(backend: Backend) {
    let app = closing_at_expiry(backend).await;
    let alice = app.create_user("alice", false);
    let (mut c, _, _) = join(
        &app,
        &format!("/ws/chat/lobby/?token={}", app.token_expiring_in(alice, 2)),
    )
    .await;
    let fresh = app.token_expiring_in(alice, 300);
    c.send(json!({"type": "auth.refresh", "ref": "r1", "token": fresh}))
        .await;
    let reply = c.recv_type("auth.refreshed").await;
    assert_eq!(reply["ref"], "r1");
    assert!(reply["exp"].as_i64().unwrap() > hub::auth::jwt::now_secs() + 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.echo("still connected").await;
}

async fn a_connection_whose_token_expires_is_closed_with_4001(backend: Backend) {
    let app = closing_at_expiry(backend).await;
    let alice = app.create_user("alice", false);
    let (mut c, _, _) = join(
        &app,
        &format!("/ws/chat/lobby/?token={}", app.token_expiring_in(alice, 2)),
    )
    .await;
    assert_eq!(c.ending(Duration::from_secs(5)).await, Ending::Closed(4001));
}

async fn a_deactivated_user_is_closed_with_4003(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("HUB_USER_RECHECK_SECS", "1")]).await;
    let bob = app.create_user("bob", false);
    let (mut c, _, _) = join(&app, &format!("/ws/chat/lobby/?token={}", app.token(bob))).await;
    c.silent_for(Duration::from_millis(1500)).await;
    app.cli(&["user", "set-active", "bob", "false"]);
    assert_eq!(c.ending(Duration::from_secs(5)).await, Ending::Closed(4003));
    // Back again: refused where a user is needed, a guest in a public room.
    let refused = app
        .refused(app.request(&format!("/ws/analytics/?token={}", app.token(bob))))
        .await;
    assert_eq!(refused.code(), "user_inactive");
    let mut back = app
        .connect(&format!("/ws/chat/lobby/?token={}", app.token(bob)))
        .await;
    assert_eq!(back.recv().await["code"], "user_inactive");
}

async fn a_user_who_loses_staff_leaves_the_staff_room_with_4003(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("HUB_USER_RECHECK_SECS", "1")]).await;
    let sam = app.create_user("sam", true);
    let (mut staff_room, _, _) = join(
        &app,
        &format!("/ws/chat/management/?token={}", app.token(sam)),
    )
    .await;
    let (mut lobby, _, _) = join(&app, &format!("/ws/chat/lobby/?token={}", app.token(sam))).await;
    app.cli(&["user", "set-staff", "sam", "false"]);
    assert_eq!(
        staff_room.ending(Duration::from_secs(5)).await,
        Ending::Closed(4003)
    );
    // The public room does not care.
    lobby.echo("still in the lobby").await;
}

async fn a_refresh_with_another_users_token_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mallory = app.create_user("mallory", false);
    let (mut c, _, _) = join(&app, &format!("/ws/chat/lobby/?token={}", app.token(alice))).await;
    c.send(json!({"type": "auth.refresh", "ref": 1, "token": app.token(mallory)}))
        .await;
    let err = c.recv().await;
    assert_eq!(
        (err["code"].as_str(), err["ref"].as_i64()),
        (Some("forbidden"), Some(1))
    );
    c.send(json!({"type": "auth.refresh", "ref": 2, "token": app.token_expiring_in(alice, -5)}))
        .await;
    let err = c.recv().await;
    assert_eq!(err["code"], "validation");
    assert!(err["detail"].as_str().unwrap().starts_with("token_expired"));
}

/// Waits until the wall clock reaches `exp` (seconds since the epoch) and a
/// little more.
async fn until_past(exp: i64) {
    let at =
        UNIX_EPOCH + Duration::from_secs(u64::try_from(exp).unwrap()) + Duration::from_millis(30);
    if let Ok(left) = at.duration_since(SystemTime::now()) {
        tokio::time::sleep(left).await;
    }
}

async fn nothing_is_stored_or_refreshed_after_a_token_expires(backend: Backend) {
    let app = closing_at_expiry(backend).await;
    let alice = app.create_user("alice", false);
    let (mut listener, _, _) = join(&app, "/ws/chat/lobby/").await;
    for late in ["say", "refresh"] {
        let exp = hub::auth::jwt::now_secs() + 2;
        let token =
            app.codec
                .mint_with_expiry(alice, hub::auth::jwt::TokenKind::Access, exp - 60, exp);
        let (mut c, _, _) = join(&app, &format!("/ws/chat/lobby/?token={token}")).await;
        listener.recv_type("presence.join").await;
        until_past(exp).await;
        match late {
            "say" => c.say("after expiry").await,
            _ => {
                c.send(json!({"type": "auth.refresh", "ref": "late", "token": app.token(alice)}))
                    .await;
            }
        }
        assert_eq!(
            c.ending(Duration::from_secs(2)).await,
            Ending::Closed(4001),
            "{late}"
        );
        let leave = listener.recv().await;
        assert_eq!(
            leave["type"], "presence.leave",
            "{late}: nothing said after expiry"
        );
    }
}

async fn a_cached_user_who_loses_staff_is_closed_within_one_recheck_interval_of_its_load(
    backend: Backend,
) {
    const RECHECK: Duration = Duration::from_secs(10);
    let app = TestApp::spawn_with(backend, &[("HUB_USER_RECHECK_SECS", "10")]).await;
    let sam = app.create_user("sam", true);
    let path = format!("/ws/chat/management/?token={}", app.token(sam));
    // The first handshake loads sam from the database and caches him.
    let loaded = Instant::now();
    let (_first, _, _) = join(&app, &path).await;
    // Halfway through the interval (so well within the cache's lifetime,
    // however slow the machine), the second handshake takes him from the
    // cache, and the change follows at once, well before the re-check.
    tokio::time::sleep(RECHECK / 2).await;
    let (mut second, _, _) = join(&app, &path).await;
    app.cli(&["user", "set-staff", "sam", "false"]);
    // The bound is the re-check interval from when sam was read, plus a
    // database round trip (given 2.5 s); counted from the second handshake
    // it would be half an interval later.
    let deadline = loaded + RECHECK + Duration::from_millis(2500);
    assert_eq!(
        second
            .ending(deadline.saturating_duration_since(Instant::now()))
            .await,
        Ending::Closed(4003)
    );
}

async fn after_a_close_handshake_the_server_closes_the_connection_at_once(backend: Backend) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let app = TestApp::spawn(backend).await;
    let (mut c, _, _) = join(&app, "/ws/chat/lobby/").await;
    c.ws.send(Message::Close(None)).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), c.ws.next())
            .await
            .expect("the close is answered")
        {
            Some(Ok(Message::Close(_))) => break,
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
    // RFC 6455 §7.1.1: the server closes the TCP connection first. The
    // client sees the end of the stream without closing anything itself,
    // and sooner than the close timeout, the longest the hub ever waits on
    // a client (a loaded machine may take a while, just not that long).
    let answered = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(5), c.ws.next()).await;
    assert!(matches!(end, Ok(None | Some(Err(_)))), "{end:?}");
    assert!(
        answered.elapsed() < hub::ws::session::CLOSE_TIMEOUT,
        "the server kept the connection {:?} after the close handshake",
        answered.elapsed()
    );
}
