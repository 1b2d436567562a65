//! What a dashboard may watch follows its user while it is open: losing
//! staff ends the global totals, not the socket.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, Client, TestApp};
use crate::on_both_backends;

const INGEST_KEY: &str = "ingest-key-for-scope-tests";

on_both_backends!(a_staff_dashboard_that_loses_staff_keeps_its_own_metrics_and_loses_the_totals);

async fn ingest(app: &TestApp, body: Value) {
    let resp = reqwest::Client::new()
        .post(app.http("/api/analytics/events"))
        .header("x-hub-ingest-key", INGEST_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
}

/// A staff dashboard subscribed to the totals, with both snapshots read.
async fn watching_totals(app: &TestApp, user_id: i32) -> Client {
    let mut dash = app
        .connect(&format!("/ws/analytics/?token={}", app.token(user_id)))
        .await;
    let own = dash.recv().await;
    assert_eq!(
        (own["type"].as_str(), own["scope"].as_str()),
        (Some("analytics.snapshot"), Some("own"))
    );
    dash.send(json!({"type": "analytics.subscribe", "ref": "g", "scope": "global"}))
        .await;
    assert_eq!(
        dash.recv().await,
        json!({"type": "analytics.subscribed", "ref": "g", "scope": "global"})
    );
    let totals = dash.recv().await;
    assert_eq!(
        (totals["type"].as_str(), totals["scope"].as_str()),
        (Some("analytics.snapshot"), Some("global"))
    );
    dash
}

async fn a_staff_dashboard_that_loses_staff_keeps_its_own_metrics_and_loses_the_totals(
    backend: Backend,
) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("HUB_INGEST_KEY", INGEST_KEY),
            ("HUB_ANALYTICS_INTERVAL_MS", "200"),
            ("HUB_USER_RECHECK_SECS", "1"),
        ],
    )
    .await;
    let sam = app.create_user("sam", true);
    let sue = app.create_user("sue", true);
    let alice = app.create_user("alice", false);
    let mut sams = watching_totals(&app, sam).await;
    // A staff member who stays staff, to show that the totals did move.
    let mut sues = watching_totals(&app, sue).await;

    app.cli(&["user", "set-staff", "sam", "false"]);
    let ended = sams.recv_within(Duration::from_secs(5)).await;
    assert_eq!(
        (ended["type"].as_str(), ended["scope"].as_str()),
        (Some("analytics.unsubscribed"), Some("global")),
        "{ended}"
    );

    // Still open, with sam's own metrics.
    ingest(
        &app,
        json!({"user_id": sam, "metric": "visits", "value": 4, "op": "set"}),
    )
    .await;
    let update = sams.recv().await;
    assert_eq!(
        (update["type"].as_str(), update["scope"].as_str()),
        (Some("analytics.update"), Some("own")),
        "{update}"
    );
    assert_eq!(update["metrics"], json!({"visits": 4.0}));

    // Another user's change moves the totals, for staff only.
    ingest(
        &app,
        json!({"user_id": alice, "metric": "visits", "value": 6, "op": "set"}),
    )
    .await;
    let mut totals = sues.recv_type("analytics.update").await;
    while totals["metrics"]["visits"] != 10.0 {
        assert_eq!(totals["scope"], "global", "{totals}");
        totals = sues.recv_type("analytics.update").await;
    }
    sams.silent_for(Duration::from_secs(1)).await;
}
