//! The guard: every refusal of the contract, all three token places, and the
//! token formats simplejwt writes.

use hub::auth::jwt::{TokenKind, now_secs};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::helpers::{Backend, KEY, TestApp, join};
use crate::on_both_backends;

on_both_backends!(
    every_refusal_has_its_status_code_and_challenge,
    a_token_is_read_from_the_header_the_subprotocol_and_the_query,
    user_id_may_be_a_string_or_a_number,
    the_staff_room_admits_staff_only,
    an_origin_outside_the_allowed_list_is_refused,
    an_invalid_token_on_a_public_room_is_refused_when_the_operator_asks,
);

fn sign(claims: serde_json::Value, alg: Algorithm, key: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

async fn every_refusal_has_its_status_code_and_challenge(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let gone = app.create_user("gone", false);
    app.cli(&["user", "set-active", "gone", "false"]);
    // Well-formed access claims signed with the wrong key, or the right key
    // and the wrong algorithm.
    let forged = |alg, key| {
        let claims =
            json!({"token_type": "access", "exp": now_secs() + 300, "jti": "a1", "user_id": alice});
        sign(claims, alg, key)
    };
    let cases: Vec<(String, u16, &str)> = vec![
        ("/ws/analytics/".into(), 401, "token_missing"),
        (
            "/ws/analytics/?token=not-a-jwt".into(),
            401,
            "token_invalid",
        ),
        (
            format!(
                "/ws/analytics/?token={}",
                forged(Algorithm::HS256, "wrong-key")
            ),
            401,
            "token_invalid",
        ),
        (
            format!("/ws/analytics/?token={}", forged(Algorithm::HS512, KEY)),
            401,
            "token_invalid",
        ),
        (
            format!("/ws/analytics/?token={}", app.token_expiring_in(alice, -1)),
            401,
            "token_expired",
        ),
        (
            format!(
                "/ws/analytics/?token={}",
                app.codec.mint(alice, TokenKind::Refresh)
            ),
            401,
            "token_not_access",
        ),
        (
            format!("/ws/analytics/?token={}", app.token(99_999)),
            401,
            "user_not_found",
        ),
        (
            format!("/ws/analytics/?token={}", app.token(gone)),
            401,
            "user_inactive",
        ),
        (
            format!("/ws/chat/management/?token={}", app.token(alice)),
            403,
            "staff_only",
        ),
        ("/ws/chat/management/".into(), 403, "staff_only"),
    ];
    for (path, status, code) in cases {
        let refused = app.refused(app.request(&path)).await;
        assert_eq!((refused.status, refused.code()), (status, code), "{path}");
        assert!(
            refused.body["detail"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
        if status == 401 {
            let challenge = refused
                .www_authenticate
                .expect("401 carries WWW-Authenticate");
            assert!(
                challenge.starts_with("Bearer error=\"invalid_token\""),
                "{challenge}"
            );
        }
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("hub_handshakes_refused_total{code=\"token_invalid\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hub_handshakes_refused_total{code=\"staff_only\"} 2"),
        "{metrics}"
    );
}

async fn a_token_is_read_from_the_header_the_subprotocol_and_the_query(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let staff = app.create_user("sam", true);
    let token = app.token(staff);

    let mut by_header = app.request("/ws/chat/management/");
    by_header
        .headers_mut()
        .insert("authorization", format!("bearer {token}").parse().unwrap());
    let mut by_protocol = app.request("/ws/chat/management/");
    by_protocol.headers_mut().insert(
        "sec-websocket-protocol",
        format!("bearer, {token}").parse().unwrap(),
    );
    let by_query = app.request(&format!("/ws/chat/management/?token={token}"));

    for (request, protocol) in [
        (by_header, None),
        (by_protocol, Some("bearer")),
        (by_query, None),
    ] {
        let mut client = app.connect_request(request).await;
        assert_eq!(client.protocol.as_deref(), protocol);
        client.recv_type("chat.history").await;
        let presence = client.recv().await;
        assert_eq!(presence["type"], "presence");
        assert_eq!(
            presence["members"][0],
            json!({"id": staff, "username": "sam", "is_staff": true})
        );
    }
}

async fn user_id_may_be_a_string_or_a_number(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sam = app.create_user("sam", true);
    let exp = now_secs() + 300;
    for user_id in [json!(sam), json!(sam.to_string())] {
        let token = sign(
            json!({"token_type":"access","exp":exp,"iat":exp-300,"jti":"0123456789abcdef0123456789abcdef","user_id":user_id}),
            Algorithm::HS256,
            KEY,
        );
        let (_client, _, presence) =
            join(&app, &format!("/ws/chat/management/?token={token}")).await;
        assert_eq!(
            presence["members"][0]["username"], "sam",
            "user_id {user_id}"
        );
    }
}

async fn the_staff_room_admits_staff_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let staff = app.create_user("sam", true);
    let visitor = app.create_user("vic", false);
    let (mut sam, _, _) = join(
        &app,
        &format!("/ws/chat/management?token={}", app.token(staff)),
    )
    .await;
    sam.echo("staff only here").await;
    let refused = app
        .refused(app.request(&format!(
            "/ws/chat/management/?token={}",
            app.token(visitor)
        )))
        .await;
    assert_eq!((refused.status, refused.code()), (403, "staff_only"));
    let refused = app.refused(app.request("/ws/chat/management/")).await;
    assert_eq!((refused.status, refused.code()), (403, "staff_only"));
    // A public room takes the same visitor.
    join(
        &app,
        &format!("/ws/chat/lobby/?token={}", app.token(visitor)),
    )
    .await;
}

async fn an_origin_outside_the_allowed_list_is_refused(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[(
            "CORS_ALLOWED_ORIGINS",
            "https://panel.example.com, https://www.example.com",
        )],
    )
    .await;
    let alice = app.create_user("alice", false);
    let mut foreign = app.request(&format!("/ws/chat/lobby/?token={}", app.token(alice)));
    foreign
        .headers_mut()
        .insert("origin", "https://evil.example.net".parse().unwrap());
    let refused = app.refused(foreign).await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "origin_not_allowed")
    );
    assert!(refused.www_authenticate.is_none());

    let mut listed = app.request(&format!("/ws/chat/lobby/?token={}", app.token(alice)));
    listed
        .headers_mut()
        .insert("origin", "https://panel.example.com".parse().unwrap());
    app.connect_request(listed)
        .await
        .recv_type("chat.history")
        .await;
}

async fn an_invalid_token_on_a_public_room_is_refused_when_the_operator_asks(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("HUB_INVALID_TOKEN", "refuse")]).await;
    let refused = app
        .refused(app.request("/ws/chat/lobby/?token=garbage"))
        .await;
    assert_eq!((refused.status, refused.code()), (401, "token_invalid"));
    let (_guest, _, presence) = join(&app, "/ws/chat/lobby/").await;
    let name = presence["members"][0]["username"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(name.starts_with("guest-"), "{name}");
    assert_eq!(presence["members"][0]["id"], json!(null));
}
