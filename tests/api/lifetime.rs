//! A token's lifetime on an open socket: refresh, expiry, and a user who loses
//! the right to stay.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Backend, Ending, TestApp, join};
use crate::on_both_backends;

on_both_backends!(
    auth_refresh_extends_a_connection_past_its_first_token,
    a_connection_whose_token_expires_is_closed_with_4001,
    a_deactivated_user_is_closed_with_4003,
    a_user_who_loses_staff_leaves_the_staff_room_with_4003,
    a_refresh_with_another_users_token_is_refused,
);

async fn auth_refresh_extends_a_connection_past_its_first_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
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
    let app = TestApp::spawn(backend).await;
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
    let refused = app
        .refused(app.request(&format!("/ws/chat/lobby/?token={}", app.token(bob))))
        .await;
    assert_eq!(refused.code(), "user_inactive");
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
