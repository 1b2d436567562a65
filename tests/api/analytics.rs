//! Dashboards: snapshot on connect, coalesced live updates, staff totals, and
//! the ingest API's checks.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

const INGEST_KEY: &str = "ingest-key-for-tests";

on_both_backends!(
    a_dashboard_gets_its_snapshot_then_coalesced_updates_of_its_own_metrics,
    staff_may_watch_global_totals_and_others_may_not,
    ingest_checks_who_sends_and_what,
);

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        &[
            ("HUB_INGEST_KEY", INGEST_KEY),
            ("HUB_ANALYTICS_INTERVAL_MS", "300"),
        ],
    )
    .await
}

async fn ingest(app: &TestApp, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(app.http("/api/analytics/events"))
        .header("x-hub-ingest-key", INGEST_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn a_dashboard_gets_its_snapshot_then_coalesced_updates_of_its_own_metrics(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.create_user("alice", false);
    let bob = app.create_user("bob", false);
    let (status, body) = ingest(
        &app,
        json!([
            {"user_id": alice, "metric": "visits", "value": 10, "op": "set"},
            {"user_id": alice, "metric": "bandwidth.gb", "value": 1.5, "op": "add"},
            {"user_id": bob, "metric": "visits", "value": 99, "op": "set"},
        ]),
    )
    .await;
    assert_eq!((status, body), (200, json!({"accepted": 3})));

    let mut dash = app
        .connect(&format!("/ws/analytics/?token={}", app.token(alice)))
        .await;
    let snapshot = dash.recv().await;
    assert_eq!(snapshot["type"], "analytics.snapshot");
    assert_eq!(
        snapshot["metrics"],
        json!({"bandwidth.gb": 1.5, "visits": 10.0})
    );
    let mut bobs = app
        .connect(&format!("/ws/analytics?token={}", app.token(bob)))
        .await;
    assert_eq!(bobs.recv().await["metrics"], json!({"visits": 99.0}));

    // Fifty separate ingests within about one interval: a handful of updates, not fifty.
    for _ in 0..50 {
        ingest(
            &app,
            json!({"user_id": alice, "metric": "visits", "value": 1, "op": "add"}),
        )
        .await;
    }
    let mut updates = 0;
    let mut visits = 0.0;
    while visits < 60.0 {
        let update = dash.recv().await;
        assert_eq!(update["type"], "analytics.update");
        assert!(update["at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(
            update["metrics"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["visits"],
            "only what changed"
        );
        visits = update["metrics"]["visits"].as_f64().unwrap();
        updates += 1;
    }
    assert_eq!(visits, 60.0);
    assert!(
        updates < 25,
        "{updates} updates for 50 events: bursts are coalesced"
    );
    bobs.silent_for(Duration::from_millis(700)).await;
}

async fn staff_may_watch_global_totals_and_others_may_not(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.create_user("alice", false);
    let sam = app.create_user("sam", true);
    ingest(
        &app,
        json!([
            {"user_id": alice, "metric": "visits", "value": 5, "op": "set"},
            {"user_id": sam, "metric": "visits", "value": 7, "op": "set"},
        ]),
    )
    .await;
    let mut plain = app
        .connect(&format!("/ws/analytics/?token={}", app.token(alice)))
        .await;
    plain.recv().await;
    plain
        .send(json!({"type": "analytics.subscribe", "ref": "g", "scope": "global"}))
        .await;
    let err = plain.recv().await;
    assert_eq!(
        (err["code"].as_str(), err["ref"].as_str()),
        (Some("forbidden"), Some("g"))
    );

    let mut staff = app
        .connect(&format!("/ws/analytics/?token={}", app.token(sam)))
        .await;
    assert_eq!(staff.recv().await["metrics"], json!({"visits": 7.0}));
    staff
        .send(json!({"type": "analytics.subscribe", "ref": "g", "scope": "global"}))
        .await;
    assert_eq!(
        staff.recv().await,
        json!({"type": "analytics.subscribed", "ref": "g", "scope": "global"})
    );
    let totals = staff.recv().await;
    assert_eq!(
        (totals["type"].as_str(), totals["scope"].as_str()),
        (Some("analytics.snapshot"), Some("global"))
    );
    assert_eq!(totals["metrics"], json!({"visits": 12.0}));

    ingest(
        &app,
        json!({"user_id": alice, "metric": "visits", "value": 3, "op": "add"}),
    )
    .await;
    let update = staff.recv_type("analytics.update").await;
    assert_eq!(
        (update["scope"].as_str(), &update["metrics"]),
        (Some("global"), &json!({"visits": 15.0}))
    );
}

async fn ingest_checks_who_sends_and_what(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.create_user("alice", false);
    let sam = app.create_user("sam", true);
    let event = json!({"user_id": alice, "metric": "visits", "value": 1, "op": "add"});
    let client = reqwest::Client::new();
    let post = |auth: Option<(&'static str, String)>, body: Value| {
        let mut req = client.post(app.http("/api/analytics/events")).json(&body);
        if let Some((name, value)) = auth {
            req = req.header(name, value);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (
                status,
                resp.json::<Value>().await.unwrap()["error"]
                    .as_str()
                    .map(str::to_owned),
            )
        }
    };
    let code = |s: &str| Some(s.to_owned());
    assert_eq!(
        post(None, event.clone()).await,
        (401, code("token_missing"))
    );
    assert_eq!(
        post(Some(("x-hub-ingest-key", "wrong".into())), event.clone()).await,
        (401, code("ingest_key_invalid"))
    );
    assert_eq!(
        post(
            Some(("authorization", format!("Bearer {}", app.token(alice)))),
            event.clone()
        )
        .await,
        (403, code("staff_only"))
    );
    assert_eq!(
        post(
            Some(("authorization", format!("Bearer {}", app.token(sam)))),
            event.clone()
        )
        .await
        .0,
        200
    );

    let key = || Some(("x-hub-ingest-key", INGEST_KEY.to_owned()));
    let bad = [
        json!({"user_id": alice, "metric": "bad name", "value": 1, "op": "add"}),
        json!({"user_id": alice, "metric": "visits", "value": 1}),
        json!({"user_id": alice, "metric": "visits", "value": "1", "op": "add"}),
        json!({"user_id": 0, "metric": "visits", "value": 1, "op": "add"}),
        json!({"user_id": alice, "metric": "visits", "value": 1, "op": "multiply"}),
        json!([]),
        Value::Array(vec![event.clone(); 1001]),
    ];
    for body in bad {
        assert_eq!(
            post(key(), body.clone()).await,
            (400, code("validation")),
            "{body:.80}"
        );
    }
}
