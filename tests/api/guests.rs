//! A token that is present but invalid on a public chat room joins the
//! client as a guest, as Django Channels did, and the first frame says so
//! and why; staff rooms, dashboards and DNS panels keep refusing it, and
//! `HUB_INVALID_TOKEN=refuse` makes public rooms refuse it too.

use hub::auth::jwt::{TokenCodec, TokenKind};
use hub::config::Settings;
use serde_json::json;

use crate::helpers::{Backend, TestApp, join};
use crate::on_both_backends;

on_both_backends!(
    an_expired_forged_or_deactivated_users_token_joins_a_public_room_as_a_guest_told_why,
    the_same_tokens_are_still_refused_on_staff_rooms_dashboards_and_dns_panels,
    with_refuse_a_public_room_refuses_them_too,
);

/// The invalid tokens a visitor's store may hold, with the code each is
/// refused with: expired, signed with another key, a refresh token, and a
/// valid one of a user since deactivated.
fn invalid_tokens(app: &TestApp) -> Vec<(String, &'static str)> {
    let alice = app.create_user("alice", false);
    let gone = app.create_user("gone", false);
    app.cli(&["user", "set-active", "gone", "false"]);
    let forger = TokenCodec::new(
        &Settings::from_lookup(false, |k| {
            (k == "JWT_SIGNING_KEY").then(|| "another key entirely".to_owned())
        })
        .unwrap()
        .jwt,
    );
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
