//! `POST /api/token/` and `/api/token/refresh/` with Django-format passwords.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, join};
use crate::on_both_backends;

/// Made as Django's PBKDF2PasswordHasher makes it (python3:
/// `hashlib.pbkdf2_hmac('sha256', b'correct horse', b'Qw3rTyS4lt', 1000)`).
const DJANGO_HASH: &str =
    "pbkdf2_sha256$1000$Qw3rTyS4lt$tzUK+8ACebcxqBShRpGFIw4fOeaMho8NaTL8iAsFO0E=";

on_both_backends!(
    a_django_password_gets_tokens_that_open_sockets,
    wrong_credentials_get_401_and_repeated_failures_are_throttled,
    refresh_gives_a_new_access_token_and_refuses_an_access_token,
    a_password_set_by_the_command_line_logs_in,
);

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(app.http(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn a_django_password_gets_tokens_that_open_sockets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user_with_hash("django", true, DJANGO_HASH);
    let (status, pair) = post(
        &app,
        "/api/token/",
        json!({"username": "django", "password": "correct horse"}),
    )
    .await;
    assert_eq!(status, 200, "{pair}");
    let access = pair["access"].as_str().unwrap();
    assert!(pair["refresh"].as_str().is_some());
    let (_c, _, presence) = join(&app, &format!("/ws/chat/management/?token={access}")).await;
    assert_eq!(presence["members"][0]["username"], "django");
}

async fn wrong_credentials_get_401_and_repeated_failures_are_throttled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user_with_hash("django", false, DJANGO_HASH);
    let (status, body) = post(
        &app,
        "/api/token/",
        json!({"username": "nobody", "password": "x"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("no_active_account"))
    );
    for _ in 0..5 {
        let (status, _) = post(
            &app,
            "/api/token/",
            json!({"username": "django", "password": "guess"}),
        )
        .await;
        assert_eq!(status, 401);
    }
    let (status, body) = post(
        &app,
        "/api/token/",
        json!({"username": "django", "password": "correct horse"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("throttled")),
        "even the right password waits"
    );
    let (status, body) = post(&app, "/api/token/", json!({"user": "django"})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("validation")));
}

async fn refresh_gives_a_new_access_token_and_refuses_an_access_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user_with_hash("django", false, DJANGO_HASH);
    let (_, pair) = post(
        &app,
        "/api/token/",
        json!({"username": "django", "password": "correct horse"}),
    )
    .await;
    let (status, body) = post(
        &app,
        "/api/token/refresh/",
        json!({"refresh": pair["refresh"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    join(
        &app,
        &format!("/ws/chat/lobby/?token={}", body["access"].as_str().unwrap()),
    )
    .await;
    let (status, body) = post(
        &app,
        "/api/token/refresh/",
        json!({"refresh": pair["access"]}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("token_not_refresh"))
    );
    app.cli(&["user", "set-active", "django", "false"]);
    let (status, body) = post(
        &app,
        "/api/token/refresh/",
        json!({"refresh": pair["refresh"]}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("user_inactive"))
    );
}

async fn a_password_set_by_the_command_line_logs_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.cli_with_input(
        &[
            "user",
            "create",
            "--username",
            "ops",
            "--staff",
            "--password-stdin",
        ],
        "s3cret pass\n",
    );
    let (status, _) = post(
        &app,
        "/api/token/",
        json!({"username": "ops", "password": "s3cret pass"}),
    )
    .await;
    assert_eq!(status, 200);
    let token = String::from_utf8(app.cli(&["token", "ops"]).stdout).unwrap();
    join(
        &app,
        &format!("/ws/chat/management/?token={}", token.trim()),
    )
    .await;
}
