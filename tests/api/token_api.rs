//! `POST /api/token/` and `/api/token/refresh/` with Django-format passwords.

use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::helpers::{Backend, KEY, TestApp, WAIT, join};
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
    concurrent_wrong_guesses_cannot_outrun_the_throttle,
    a_burst_of_logins_does_not_hold_the_connections_handshakes_need,
    every_failed_login_takes_as_long_as_a_wrong_password,
    the_token_api_reads_json_form_and_multipart_bodies,
    missing_blank_and_malformed_fields_answer_as_drf_does,
    a_blank_password_is_a_400_that_does_not_count_toward_the_throttle,
    spaces_around_the_username_are_trimmed,
    a_control_character_in_a_username_is_a_400,
    refused_refresh_tokens_answer_as_simplejwt_does,
    the_token_api_answers_405_with_allow_and_redirects_without_its_slash,
    hub_user_create_checks_the_name_before_reading_the_password,
);

/// A stored hash whose check costs `iterations` rounds of PBKDF2 whatever
/// the password (its digest matches none): for logins that must take a while.
fn slow_hash(iterations: u32) -> String {
    format!("pbkdf2_sha256${iterations}$slowsalt$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
}

async fn post_raw(app: &TestApp, path: &str, content_type: &str, body: &str) -> (u16, Value) {
    let resp = app
        .client()
        .post(app.http(path))
        .header(CONTENT_TYPE, content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let resp = app
        .client()
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

async fn concurrent_wrong_guesses_cannot_outrun_the_throttle(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Each check takes a while, so all the guesses are in flight together.
    app.create_user_with_hash("victim", false, &slow_hash(400_000));
    let guesses = (0..16).map(|i| {
        post(
            &app,
            "/api/token/",
            json!({"username": "victim", "password": format!("guess {i}")}),
        )
    });
    let answers = futures_util::future::join_all(guesses).await;
    let checked = answers.iter().filter(|(status, _)| *status == 401).count();
    let throttled = answers.iter().filter(|(status, _)| *status == 429).count();
    assert_eq!(
        (checked, throttled),
        (5, 11),
        "five guesses per username reach the hash: {answers:?}"
    );
}

async fn a_burst_of_logins_does_not_hold_the_connections_handshakes_need(backend: Backend) {
    // Two connections, and a handshake that waits more than a second for
    // one is answered 503.
    let app = TestApp::spawn_with(
        backend,
        &[("HUB_DB_POOL_SIZE", "2"), ("HUB_DB_POOL_TIMEOUT_SECS", "1")],
    )
    .await;
    for i in 0..3 {
        app.create_user_with_hash(&format!("slow{i}"), false, &slow_hash(3_000_000));
    }
    let logins = tokio::spawn({
        let client = reqwest::Client::new();
        let url = app.http("/api/token/");
        async move {
            let burst = (0..6).map(|i| {
                client
                    .post(&url)
                    .json(&json!({"username": format!("slow{}", i % 3), "password": "guess"}))
                    .send()
            });
            futures_util::future::join_all(burst).await
        }
    });
    // A user that does not exist: each handshake loads it from the database
    // (nothing is cached) and is refused 401, or 503 when no connection can
    // be had.
    let mut pace = tokio::time::interval(Duration::from_millis(100));
    let mut probes_during_burst = 0;
    while !logins.is_finished() {
        pace.tick().await;
        let probe = app.request(&format!("/ws/analytics/?token={}", app.token(999_999)));
        let refused = app.refused(probe).await;
        assert_eq!(
            (refused.status, refused.code()),
            (401, "user_not_found"),
            "a handshake got its database connection during the burst"
        );
        probes_during_burst += 1;
    }
    let answers = logins.await.unwrap();
    assert!(answers.iter().all(|a| a.as_ref().unwrap().status() == 401));
    assert!(
        probes_during_burst >= 2,
        "the burst took {probes_during_burst} probes"
    );
}

/// How long one wrong login for `username` takes.
async fn wrong_login(app: &TestApp, username: &str) -> Duration {
    let started = Instant::now();
    let (status, body) = post(
        app,
        "/api/token/",
        json!({"username": username, "password": "not the password"}),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, 401, "{username}: {body}");
    took
}

async fn every_failed_login_takes_as_long_as_a_wrong_password(backend: Backend) {
    const KINDS: [&str; 4] = ["no-such-user", "unusable", "older", "inactive"];
    // Work large enough to dwarf the rest of a request's time.
    let app = TestApp::spawn_with(backend, &[("HUB_PASSWORD_ITERATIONS", "300000")]).await;
    for k in 0..KINDS.len() {
        app.create_user_with_hash(&format!("current{k}"), false, &slow_hash(300_000));
    }
    app.create_user("unusable", false);
    app.create_user_with_hash("older", false, &slow_hash(1000));
    app.create_user_with_hash("inactive", false, &slow_hash(300_000));
    app.cli(&["user", "set-active", "inactive", "false"]);
    for (k, username) in KINDS.iter().enumerate() {
        // A wrong password for a current user, and this kind of failure,
        // in turn: whatever else the machine is doing weighs on both alike.
        // The fastest of each is the work a login cannot skip (load only
        // adds to it). Three each: under the five failures a username may
        // have, and 24 in all under the address's 30.
        let reference_user = format!("current{k}");
        let (mut reference, mut fastest) = (Duration::MAX, Duration::MAX);
        for _ in 0..3 {
            reference = reference.min(wrong_login(&app, &reference_user).await);
            fastest = fastest.min(wrong_login(&app, username).await);
        }
        // The rule is that no failure answers sooner than a wrong password:
        // one that skipped the hash would take a hundredth of it. The
        // margin is wide since a busy machine can slow every try of one
        // side (1.5 s against 3.1 s was seen with both cores taken by a
        // build); the upper bound catches a failure doing far more work.
        let ratio = fastest.as_secs_f64() / reference.as_secs_f64();
        assert!(
            (0.2..5.0).contains(&ratio),
            "{username}: {fastest:?} against {reference:?} for a wrong password"
        );
    }
}

async fn the_token_api_reads_json_form_and_multipart_bodies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user_with_hash("django", false, DJANGO_HASH);
    let (status, body) = post_raw(
        &app,
        "/api/token/",
        "application/x-www-form-urlencoded",
        "username=django&password=correct+horse",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let multipart = "--XyZ\r\n\
        Content-Disposition: form-data; name=\"username\"\r\n\r\ndjango\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=\"password\"\r\n\r\ncorrect horse\r\n\
        --XyZ--\r\n";
    let (status, body) = post_raw(
        &app,
        "/api/token/",
        "multipart/form-data; boundary=XyZ",
        multipart,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_raw(
        &app,
        "/api/token/refresh/",
        "application/x-www-form-urlencoded",
        &format!("refresh={}", body["refresh"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_raw(&app, "/api/token/", "text/plain", "username=django").await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (
            415,
            Some("Unsupported media type \"text/plain\" in request.")
        )
    );
}

async fn missing_blank_and_malformed_fields_answer_as_drf_does(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let required = json!(["This field is required."]);
    let blank = json!(["This field may not be blank."]);
    for (sent, username, password) in [
        (json!({}), &required, &required),
        (json!({"username": " ", "password": ""}), &blank, &blank),
        (
            json!({"username": null, "password": "x"}),
            &json!(["This field may not be null."]),
            &Value::Null,
        ),
        (
            json!({"username": ["a"], "password": "x"}),
            &json!(["Not a valid string."]),
            &Value::Null,
        ),
    ] {
        let (status, body) = post(&app, "/api/token/", sent.clone()).await;
        assert_eq!(status, 400, "{sent}: {body}");
        assert_eq!(
            (&body["username"], &body["password"], &body["error"]),
            (username, password, &json!("validation")),
            "{sent}"
        );
        assert!(body.get("detail").is_none(), "{body}");
    }
    let (status, body) = post(&app, "/api/token/", json!(["username"])).await;
    assert_eq!(
        (status, &body["non_field_errors"]),
        (
            400,
            &json!(["Invalid data. Expected a dictionary, but got list."])
        )
    );
    let (status, body) = post_raw(&app, "/api/token/", "application/json", "{oops").await;
    assert_eq!(status, 400);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error - "),
        "{body}"
    );
    // No body at all is no fields, as in DRF.
    let resp = reqwest::Client::new()
        .post(app.http("/api/token/refresh/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["refresh"], required);
}

async fn a_blank_password_is_a_400_that_does_not_count_toward_the_throttle(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user_with_hash("django", false, DJANGO_HASH);
    for _ in 0..8 {
        let (status, body) = post(
            &app,
            "/api/token/",
            json!({"username": "django", "password": "   "}),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["password"], json!(["This field may not be blank."]));
    }
    let (status, body) = post(
        &app,
        "/api/token/",
        json!({"username": "django", "password": "correct horse"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn spaces_around_the_username_are_trimmed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user_with_hash("django", false, DJANGO_HASH);
    let (status, body) = post(
        &app,
        "/api/token/",
        json!({"username": "  django\t", "password": "correct horse"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn a_control_character_in_a_username_is_a_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user_with_hash("django", false, DJANGO_HASH);
    let (status, body) = post(
        &app,
        "/api/token/",
        json!({"username": "dja\u{0}ngo", "password": "correct horse"}),
    )
    .await;
    assert_eq!(
        (status, &body["username"]),
        (400, &json!(["Null characters are not allowed."]))
    );
    let (status, body) = post(
        &app,
        "/api/token/",
        json!({"username": "dja\u{1b}ngo", "password": "correct horse"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["username"][0].as_str().unwrap().contains("U+001B"),
        "{body}"
    );
}

async fn refused_refresh_tokens_answer_as_simplejwt_does(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user_with_hash("django", false, DJANGO_HASH);
    let now = hub::auth::jwt::now_secs();
    let expired =
        app.codec
            .mint_with_expiry(id, hub::auth::jwt::TokenKind::Refresh, now - 10, now - 1);
    let foreign = hub::auth::jwt::TokenCodec::new(
        &hub::config::Settings::from_lookup(false, |k| {
            (k == "JWT_SIGNING_KEY").then(|| format!("not {KEY}"))
        })
        .unwrap()
        .jwt,
    )
    .mint(id, hub::auth::jwt::TokenKind::Refresh);
    for (token, detail) in [
        (expired, "Token is expired"),
        (foreign, "Token is invalid"),
        (app.token(id), "Token has wrong type"),
    ] {
        let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": token})).await;
        assert_eq!(
            (status, &body["detail"], &body["code"]),
            (401, &json!(detail), &json!("token_not_valid"))
        );
    }
    let refresh = app.codec.mint(id, hub::auth::jwt::TokenKind::Refresh);
    app.cli(&["user", "set-active", "django", "false"]);
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(
        (status, &body["detail"]),
        (401, &json!("No active account found for the given token."))
    );
}

async fn the_token_api_answers_405_with_allow_and_redirects_without_its_slash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/api/token/", "/api/token/refresh/"] {
        for method in [reqwest::Method::GET, reqwest::Method::PUT] {
            let resp = client
                .request(method.clone(), app.http(path))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 405, "{method} {path}");
            assert_eq!(resp.headers()["allow"], "POST, OPTIONS");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["detail"], format!("Method \"{method}\" not allowed."));
        }
        let slashless = path.trim_end_matches('/');
        let resp = client
            .post(app.http(&format!("{slashless}?next=1")))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 301, "POST {slashless}");
        assert_eq!(resp.headers()["location"], format!("{path}?next=1"));
    }
}

/// Runs `hub user create` with these arguments and input; returns whether
/// it succeeded and what it said on standard error.
fn create_user_cli(app: &TestApp, username: &str, input: &str) -> (bool, String) {
    let args = ["user", "create", "--username", username, "--password-stdin"];
    let out = app.cli_output(&args, input);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn hub_user_create_checks_the_name_before_reading_the_password(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Both the name and the (empty) password are wrong: the name is reported.
    let (ok, said) = create_user_cli(&app, &"x".repeat(151), "");
    assert!(!ok);
    assert!(said.contains("a username is 1 to 150 characters"), "{said}");
    let (ok, said) = create_user_cli(&app, "bad\u{7}name", "a password\n");
    assert!(!ok);
    assert!(said.contains("U+0007"), "{said}");
    let name = "bad\u{7}name".to_owned();
    let found = tokio::time::timeout(
        WAIT,
        app.db
            .run(move |c| hub::db::users::find_by_username(c, &name)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(found, None);
    // 150 characters, not bytes, as Django counts.
    let (ok, said) = create_user_cli(&app, &"é".repeat(150), "a password\n");
    assert!(ok, "{said}");
}
