//! A token that is present but invalid on a public chat room joins the
//! client as a guest, as Django Channels did, and the first frame says so
//! and why; staff rooms, dashboards and DNS panels keep refusing it, and
//! `HUB_INVALID_TOKEN=refuse` makes public rooms refuse it too.
//!
//! A guest that asks is told who it is (`chat.identity`) with a key that
//! brings the same name back on its next socket; a key that is not valid
//! makes a fresh guest, and a key is never taken as a token.

use std::time::Duration;

use hub::auth::guest_key::{self, GuestIdentity};
use hub::auth::jwt::{TokenCodec, TokenKind, now_secs};
use hub::config::Settings;
use serde_json::{Value, json};

use crate::helpers::{Backend, Client, KEY, TestApp, join};
use crate::on_both_backends;

on_both_backends!(
    an_expired_forged_or_deactivated_users_token_joins_a_public_room_as_a_guest_told_why,
    the_same_tokens_are_still_refused_on_staff_rooms_dashboards_and_dns_panels,
    with_refuse_a_public_room_refuses_them_too,
    a_member_that_asks_is_told_who_it_is_first_and_a_guest_gets_a_key,
    a_guest_key_brings_the_same_name_back_on_the_next_socket,
    a_forged_expired_or_foreign_key_joins_a_fresh_guest_never_refused,
    a_guest_key_is_refused_wherever_a_token_is_needed,
    two_sockets_of_one_guest_key_are_one_person_with_one_name,
);

/// A codec with a key that is not the hub's.
fn forger() -> TokenCodec {
    TokenCodec::new(
        &Settings::from_lookup(false, |k| {
            (k == "JWT_SIGNING_KEY").then(|| "another key entirely".to_owned())
        })
        .unwrap()
        .jwt,
    )
}

/// The invalid tokens a visitor's store may hold, with the code each is
/// refused with: expired, signed with another key, a refresh token, and a
/// valid one of a user since deactivated.
fn invalid_tokens(app: &TestApp) -> Vec<(String, &'static str)> {
    let alice = app.create_user("alice", false);
    let gone = app.create_user("gone", false);
    app.cli(&["user", "set-active", "gone", "false"]);
    let forger = forger();
    vec![
        (app.token_expiring_in(alice, -10), "token_expired"),
        (forger.mint(alice, TokenKind::Access), "token_invalid"),
        (
            app.codec.mint(alice, TokenKind::Refresh),
            "token_not_access",
        ),
        (app.token(gone), "user_inactive"),
    ]
}

async fn an_expired_forged_or_deactivated_users_token_joins_a_public_room_as_a_guest_told_why(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    for (token, code) in invalid_tokens(&app) {
        let mut c = app.connect(&format!("/ws/chat/lobby/?token={token}")).await;
        let told = c.recv().await;
        assert_eq!(told["type"], "auth.guest", "{code}: {told}");
        assert_eq!(told["code"], code, "{told}");
        let name = told["username"].as_str().unwrap().to_owned();
        assert!(name.starts_with("guest-"), "{told}");
        // Then the join, as any guest's, under the name it was told.
        c.recv_type("chat.history").await;
        c.say("still here").await;
        let said = c.recv_type("chat.message").await;
        assert_eq!(said["user"]["username"], name, "{said}");
        assert_eq!(said["user"]["id"], json!(null), "{said}");
    }
    // A client without a token is a guest as before, with no such frame.
    let (_c, history, _) = join(&app, "/ws/chat/lobby/").await;
    assert_eq!(history["type"], "chat.history");
}

async fn the_same_tokens_are_still_refused_on_staff_rooms_dashboards_and_dns_panels(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    for (token, code) in invalid_tokens(&app) {
        for path in ["/ws/chat/management/", "/ws/analytics/", "/ws/dns/"] {
            let refused = app
                .refused(app.request(&format!("{path}?token={token}")))
                .await;
            assert_eq!((refused.status, refused.code()), (401, code), "{path}");
        }
    }
}

async fn with_refuse_a_public_room_refuses_them_too(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("HUB_INVALID_TOKEN", "refuse")]).await;
    for (token, code) in invalid_tokens(&app) {
        let refused = app
            .refused(app.request(&format!("/ws/chat/lobby/?token={token}")))
            .await;
        assert_eq!((refused.status, refused.code()), (401, code));
    }
}

/// Joins `path` offering these subprotocols; returns the client and its
/// `chat.identity`, with the subprotocol the hub answered checked.
async fn identified(app: &TestApp, path: &str, protocols: Option<&str>) -> (Client, Value) {
    let mut request = app.request(path);
    if let Some(offered) = protocols {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", offered.parse().unwrap());
    }
    let mut client = app.connect_request(request).await;
    let answered = protocols.map(|p| p.split(',').next().unwrap().trim().to_owned());
    assert_eq!(client.protocol, answered, "{path}");
    let identity = client.recv_type("chat.identity").await;
    (client, identity)
}

/// The name and key a `chat.identity` gave a guest.
fn name_and_key(identity: &Value) -> (String, String) {
    assert_eq!(identity["user"]["id"], json!(null), "{identity}");
    assert_eq!(identity["user"]["is_staff"], json!(false), "{identity}");
    let name = identity["user"]["username"].as_str().unwrap().to_owned();
    assert!(guest_key::is_guest_name(&name), "{identity}");
    let key = identity["guest_key"].as_str().unwrap().to_owned();
    (name, key)
}

async fn a_member_that_asks_is_told_who_it_is_first_and_a_guest_gets_a_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut guest = app.connect("/ws/chat/lobby/?identity=1").await;
    let identity = guest.recv().await;
    assert_eq!(identity["type"], "chat.identity", "first: {identity}");
    let (name, key) = name_and_key(&identity);
    assert_eq!(
        guest_key::read(&app.codec, &key).map(|g| g.name),
        Some(name.clone())
    );
    guest.recv_type("chat.history").await;
    guest.say("who am I").await;
    let said = guest.recv_type("chat.message").await;
    assert_eq!(said["user"], identity["user"], "{said}");

    // A signed-in user is told the user the room shows, with no key.
    let alice = app.create_user("alice", false);
    let path = format!("/ws/chat/lobby/?identity=1&token={}", app.token(alice));
    let mut user = app.connect(&path).await;
    let identity = user.recv().await;
    assert_eq!(
        identity,
        json!({"type": "chat.identity", "user": {"id": alice, "username": "alice", "is_staff": false}})
    );

    // Asked for in no other way: without it, and with `0`, history comes first.
    for path in ["/ws/chat/lobby/", "/ws/chat/lobby/?identity=0"] {
        let mut c = app.connect(path).await;
        assert_eq!(c.recv().await["type"], "chat.history", "{path}");
    }
    let refused = app
        .refused(app.request("/ws/chat/lobby/?identity=yes"))
        .await;
    assert_eq!((refused.status, refused.code()), (400, "validation"));
}

async fn a_guest_key_brings_the_same_name_back_on_the_next_socket(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (first, identity) = identified(&app, "/ws/chat/lobby/?identity=1", None).await;
    let (name, key) = name_and_key(&identity);
    drop(first);

    // A reconnect in the same room, then another room: the same name, and a
    // new key each time for the next.
    let offered = format!("guest, {key}");
    let (mut again, identity) =
        identified(&app, "/ws/chat/lobby/?identity=1", Some(&offered)).await;
    let (same, next_key) = name_and_key(&identity);
    assert_eq!(same, name);
    again.say("back again").await;
    assert_eq!(
        again.recv_type("chat.message").await["user"]["username"],
        name
    );
    drop(again);
    let offered = format!("guest, {next_key}");
    let (_elsewhere, identity) = identified(&app, "/ws/chat/tea/?identity=1", Some(&offered)).await;
    assert_eq!(name_and_key(&identity).0, name);
}

async fn a_forged_expired_or_foreign_key_joins_a_fresh_guest_never_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let claimed = GuestIdentity {
        id: "00000000000000aa".into(),
        name: "guest-0000aa".into(),
    };
    let now = now_secs();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"token_type": "guest", "guest_id": claimed.id, "name": claimed.name,
                "iat": now - 100, "exp": now - 1}),
        &jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes()),
    )
    .unwrap();
    for (what, key) in [
        ("forged", guest_key::mint(&forger(), &claimed)),
        ("expired", expired),
        ("an access token", app.token(alice)),
        ("not a JWT", "not-a-key".to_owned()),
    ] {
        let offered = format!("guest, {key}");
        let (mut c, identity) =
            identified(&app, "/ws/chat/lobby/?identity=1", Some(&offered)).await;
        let (name, fresh) = name_and_key(&identity);
        assert_ne!(name, claimed.name, "{what}");
        assert_ne!(fresh, key, "{what}");
        // A fresh guest, not the key's user or anyone told why.
        let history = c.recv().await;
        assert_eq!(history["type"], "chat.history", "{what}: {history}");
    }
}

async fn a_guest_key_is_refused_wherever_a_token_is_needed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_guest, identity) = identified(&app, "/ws/chat/lobby/?identity=1", None).await;
    let (_, key) = name_and_key(&identity);

    for path in ["/ws/analytics/", "/ws/dns/", "/ws/chat/management/"] {
        let by_query = app.request(&format!("{path}?token={key}"));
        let mut as_bearer = app.request(path);
        as_bearer.headers_mut().insert(
            "sec-websocket-protocol",
            format!("bearer, {key}").parse().unwrap(),
        );
        for request in [by_query, as_bearer] {
            let refused = app.refused(request).await;
            assert_eq!(
                (refused.status, refused.code()),
                (401, "token_invalid"),
                "{path}"
            );
        }
        let mut as_guest = app.request(path);
        as_guest.headers_mut().insert(
            "sec-websocket-protocol",
            format!("guest, {key}").parse().unwrap(),
        );
        let refused = app.refused(as_guest).await;
        let expected = if path.starts_with("/ws/chat/") {
            (403, "staff_only")
        } else {
            (401, "token_missing")
        };
        assert_eq!((refused.status, refused.code()), expected, "{path}");
    }

    // Nor on the token and ingest APIs.
    let http = reqwest::Client::new();
    let event = json!([{"user_id": 1, "metric": "visits", "value": 1, "op": "add"}]);
    for request in [
        http.post(app.http("/api/token/refresh/"))
            .json(&json!({"refresh": key})),
        http.post(app.http("/api/analytics/events"))
            .bearer_auth(&key)
            .json(&event),
    ] {
        assert_eq!(request.send().await.unwrap().status(), 401);
    }
}

async fn two_sockets_of_one_guest_key_are_one_person_with_one_name(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (mut watcher, _, _) = join(&app, "/ws/chat/tea/").await;
    let (first, identity) = identified(&app, "/ws/chat/tea/?identity=1", None).await;
    let (name, key) = name_and_key(&identity);
    let joined = watcher.recv_type("presence.join").await;
    assert_eq!(joined["user"]["username"], name);

    let offered = format!("guest, {key}");
    let (mut second, identity) = identified(&app, "/ws/chat/tea/?identity=1", Some(&offered)).await;
    assert_eq!(name_and_key(&identity).0, name);
    second.recv_type("chat.history").await;
    let presence = second.recv().await;
    let listed: Vec<&Value> = presence["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["username"] == name.as_str())
        .collect();
    assert_eq!(listed.len(), 1, "{presence}");
    watcher.silent_for(Duration::from_millis(300)).await;

    // The person leaves with its last socket.
    drop(first);
    watcher.silent_for(Duration::from_millis(300)).await;
    second.say("still here").await;
    assert_eq!(watcher.recv().await["user"]["username"], name);
    drop(second);
    let left = watcher.recv_type("presence.leave").await;
    assert_eq!(left["user"]["username"], name);
}
