//! Operators' endpoints and the edges of routing.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Backend, TestApp, join};
use crate::on_both_backends;

on_both_backends!(
    health_readiness_and_metrics_answer,
    a_bad_room_name_is_a_404_before_any_upgrade,
    the_live_figures_answer_staff_tokens_only
);

async fn health_readiness_and_metrics_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/healthz", "/readyz"] {
        let resp = reqwest::get(app.http(path)).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let (_c, _, _) = join(&app, "/ws/chat/lobby/").await;
    let metrics = app.metrics().await;
    for line in ["hub_connections{endpoint=\"chat\"} 1", "hub_rooms 1"] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(metrics.contains("hub_frames_out_total "));
    let index = reqwest::get(app.http("/")).await.unwrap();
    assert_eq!(index.status(), 200);
    assert!(index.text().await.unwrap().contains("<html"));
}

async fn the_live_figures_answer_staff_tokens_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let staff = app.create_user("sam", true);
    let member = app.create_user("alice", false);
    let (_c, _, _) = join(&app, "/ws/chat/lobby/").await;
    let client = reqwest::Client::new();
    let stats = |token: Option<String>| {
        let request = client.get(app.http("/api/stats/"));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
    };

    let resp = stats(Some(app.token(staff))).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["connections"]["chat"], 1, "{body}");
    assert_eq!(body["rooms"], 1, "{body}");

    for (token, status, code) in [
        (Some(app.token(member)), 403, "staff_only"),
        (None, 401, "token_missing"),
        (Some("not-a-token".to_owned()), 401, "token_invalid"),
    ] {
        let resp = stats(token).await.unwrap();
        assert_eq!(resp.status(), status, "{code}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], code);
    }
}

async fn a_bad_room_name_is_a_404_before_any_upgrade(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in [
        "/ws/chat/a.b/",
        "/ws/chat/%20/",
        &format!("/ws/chat/{}/", "x".repeat(65)),
        "/ws/nowhere/",
    ] {
        let refused = app.refused(app.request(path)).await;
        assert_eq!(
            (refused.status, refused.code()),
            (404, "not_found"),
            "{path}"
        );
    }
    join(&app, "/ws/chat/no-slash").await;
    // A plain request on a socket path is told so, in the same JSON shape.
    let plain = reqwest::get(app.http("/ws/chat/lobby/")).await.unwrap();
    assert_eq!(plain.status(), 400);
    let body: serde_json::Value = plain.json().await.unwrap();
    assert_eq!(body["error"], "not_websocket");
}

/// PostgreSQL only: dropping the hub's database under it is a real outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    skip_postgres_tests,
    ignore = "HUB_TEST_POSTGRES_URL is missing (README, Test)"
)]
async fn a_lost_database_makes_readiness_and_user_handshakes_answer_503() {
    if crate::helpers::postgres_admin_url().is_none() {
        return;
    }
    let app = TestApp::spawn_with(Backend::Postgres, &[("HUB_DB_POOL_TIMEOUT_SECS", "1")]).await;
    let alice = app.create_user("alice", false);
    let (mut guest, _, _) = join(&app, "/ws/chat/lobby/").await;
    app.pg.as_ref().expect("a PostgreSQL test").drop_now();

    let ready = reqwest::get(app.http("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["error"], "not_ready");
    // The user is not cached yet, so the guard must load it, and cannot.
    let refused = app
        .refused(app.request(&format!("/ws/analytics/?token={}", app.token(alice))))
        .await;
    assert_eq!((refused.status, refused.code()), (503, "unavailable"));
    // Sockets already open are not dropped for it: this one still answers.
    guest.ws.send(Message::Ping(vec![1].into())).await.unwrap();
    let answer = tokio::time::timeout(crate::helpers::WAIT, async {
        loop {
            match guest.ws.next().await {
                Some(Ok(Message::Pong(payload))) => return payload,
                Some(Ok(Message::Ping(_))) => {}
                other => panic!("the socket was dropped: {other:?}"),
            }
        }
    })
    .await
    .expect("a pong in time");
    assert_eq!(&answer[..], [1]);
}

/// No database involved: the token is checked before anything is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_bearer_token_when_one_is_set_and_are_open_otherwise() {
    const TOKEN: &str = "scraper-token-for-tests";
    let guarded = TestApp::spawn_with(Backend::Sqlite, &[("HUB_METRICS_TOKEN", TOKEN)]).await;
    let client = reqwest::Client::new();
    for (auth, code) in [
        (None, "token_missing"),
        (
            Some("Bearer not-the-token".to_owned()),
            "metrics_token_invalid",
        ),
        (Some(format!("Basic {TOKEN}")), "token_missing"),
    ] {
        let mut req = client.get(guarded.http("/metrics"));
        if let Some(auth) = &auth {
            req = req.header("authorization", auth);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], code, "{auth:?}");
        assert!(body["detail"].is_string());
    }
    let resp = client
        .get(guarded.http("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("hub_rooms "));

    let open = TestApp::spawn(Backend::Sqlite).await;
    let resp = reqwest::get(open.http("/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
}
