//! Dashboards: snapshot on connect with the last hour, coalesced live
//! updates, staff totals, and the ingest API's checks.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use hub::db::metrics::{self, Current, minute_of};
use serde_json::{Value, json};

use crate::helpers::{Backend, Client, TestApp, open_at};
use crate::on_both_backends;

pub(crate) const INGEST_KEY: &str = "ingest-key-for-tests";

on_both_backends!(
    a_dashboard_gets_its_snapshot_then_coalesced_updates_of_its_own_metrics,
    staff_may_watch_global_totals_and_others_may_not,
    ingest_checks_who_sends_and_what,
    a_staff_dashboard_that_loses_staff_keeps_its_own_metrics_and_loses_the_totals,
    a_dashboard_ends_on_the_stored_value_whatever_order_racing_ingests_arrive_in,
    a_snapshot_carries_the_last_hour_of_each_metric_again_after_a_reconnect,
    samples_older_than_an_hour_are_deleted_by_the_next_ingest_and_never_sent,
    a_snapshot_of_many_metrics_keeps_its_series_within_ten_thousand_points,
);

pub(crate) async fn spawn(backend: Backend) -> TestApp {
    spawn_with(backend, &[]).await
}

pub(crate) async fn spawn_with(backend: Backend, more: &[(&str, &str)]) -> TestApp {
    let mut settings = vec![
        ("HUB_INGEST_KEY", INGEST_KEY),
        ("HUB_ANALYTICS_INTERVAL_MS", "300"),
    ];
    settings.extend_from_slice(more);
    TestApp::spawn_with(backend, &settings).await
}

/// A staff dashboard subscribed to the totals, with both snapshots read;
/// the totals' snapshot with it.
async fn watching_totals(app: &TestApp, user_id: i32) -> (Client, Value) {
    watching_totals_at(app.port, &app.token(user_id)).await
}

/// `watching_totals` on the hub at `port`, whichever node of a cluster.
pub(crate) async fn watching_totals_at(port: u16, token: &str) -> (Client, Value) {
    let mut dash = open_at(port, &format!("/ws/analytics/?token={token}")).await;
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
    (dash, totals)
}

pub(crate) async fn ingest(app: &TestApp, body: Value) -> (u16, Value) {
    let resp = app
        .client()
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

    // Fifty separate ingests: at most one update per interval (300 ms)
    // while they go on, however long they take, not one each.
    let started = Instant::now();
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
    let took = started.elapsed();
    let intervals = took.as_millis() / 300;
    assert!(
        updates <= intervals + 2 && updates < 50,
        "{updates} updates for 50 events in {took:?}: at most one per interval"
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

    let (mut staff, totals) = watching_totals(&app, sam).await;
    assert_eq!(totals["metrics"], json!({"visits": 12.0}));
    // What an average divides by; totals have no series.
    assert_eq!(totals["users"], json!({"visits": 2}));
    assert_eq!(totals.get("series"), None);
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
    assert_eq!(update["users"], json!({"visits": 2}));
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

async fn a_staff_dashboard_that_loses_staff_keeps_its_own_metrics_and_loses_the_totals(
    backend: Backend,
) {
    let app = spawn_with(backend, &[("HUB_USER_RECHECK_SECS", "1")]).await;
    let sam = app.create_user("sam", true);
    let sue = app.create_user("sue", true);
    let alice = app.create_user("alice", false);
    let (mut sams, _) = watching_totals(&app, sam).await;
    // A staff member who stays staff, to show that the totals did move.
    let (mut sues, _) = watching_totals(&app, sue).await;

    app.cli(&["user", "set-staff", "sam", "false"]);
    let ended = sams.recv_within(Duration::from_secs(5)).await;
    assert_eq!(
        (ended["type"].as_str(), ended["scope"].as_str()),
        (Some("analytics.unsubscribed"), Some("global")),
        "{ended}"
    );

    // Still open, with sam's own metrics.
    let (status, _) = ingest(
        &app,
        json!({"user_id": sam, "metric": "visits", "value": 4, "op": "set"}),
    )
    .await;
    assert_eq!(status, 200);
    let update = sams.recv().await;
    assert_eq!(
        (update["type"].as_str(), update["scope"].as_str()),
        (Some("analytics.update"), Some("own")),
        "{update}"
    );
    assert_eq!(update["metrics"], json!({"visits": 4.0}));

    // Another user's change moves the totals, for staff only.
    let (status, _) = ingest(
        &app,
        json!({"user_id": alice, "metric": "visits", "value": 6, "op": "set"}),
    )
    .await;
    assert_eq!(status, 200);
    let mut totals = sues.recv_type("analytics.update").await;
    while totals["metrics"]["visits"] != 10.0 {
        assert_eq!(totals["scope"], "global", "{totals}");
        totals = sues.recv_type("analytics.update").await;
    }
    sams.silent_for(Duration::from_secs(1)).await;
}

async fn a_dashboard_ends_on_the_stored_value_whatever_order_racing_ingests_arrive_in(
    backend: Backend,
) {
    let app = spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mut dash = app
        .connect(&format!("/ws/analytics/?token={}", app.token(alice)))
        .await;
    assert_eq!(dash.recv().await["type"], "analytics.snapshot");
    for round in 0..5 {
        // Forty `set`s at once: they commit in one order and may reach the
        // broadcaster in another.
        let app = &app;
        let posts = (0..40).map(|i| {
            let body =
                json!({"user_id": alice, "metric": "load", "value": round * 100 + i, "op": "set"});
            async move { ingest(app, body).await }
        });
        for (status, body) in futures_util::future::join_all(posts).await {
            assert_eq!(status, 200, "{body}");
        }
        let stored = app
            .db
            .run_here(move |c| hub::db::metrics::for_user(c, alice, 10))
            .unwrap();
        let stored = stored[0].1;
        // The last update shown, once updates stop coming.
        let mut shown = None;
        while let Ok(update) = tokio::time::timeout(Duration::from_millis(900), dash.recv()).await {
            shown = update["metrics"]["load"].as_f64().or(shown);
        }
        assert_eq!(shown, Some(stored), "round {round}");
    }
}

/// The snapshot's series, checked for the shape every series has: a step of
/// a minute, `minutes` points for each metric of the snapshot, the last of
/// them its value now; returned with its first minute.
fn series_of(snapshot: &Value, minutes: usize) -> (NaiveDateTime, &serde_json::Map<String, Value>) {
    assert_eq!(snapshot["type"], "analytics.snapshot");
    let series = &snapshot["series"];
    assert_eq!(series["step"], 60, "{series}");
    let from = DateTime::parse_from_rfc3339(series["from"].as_str().unwrap())
        .unwrap()
        .naive_utc();
    let at = DateTime::parse_from_rfc3339(snapshot["at"].as_str().unwrap())
        .unwrap()
        .naive_utc();
    let span = TimeDelta::minutes(minutes as i64 - 1);
    assert_eq!(from, minute_of(at) - span, "{snapshot:.300}");
    let points = series["points"].as_object().unwrap();
    let names = |o: &serde_json::Map<String, Value>| o.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(points),
        names(snapshot["metrics"].as_object().unwrap())
    );
    for (name, line) in points {
        let line = line.as_array().unwrap();
        assert_eq!(line.len(), minutes, "{name}");
        assert_eq!(
            line[minutes - 1],
            snapshot["metrics"][name],
            "{name} ends on its value"
        );
    }
    (from, points)
}

/// The place of `minute` in a series starting at `from`.
fn index(from: NaiveDateTime, minute: NaiveDateTime) -> usize {
    usize::try_from((minute - from).num_minutes()).unwrap()
}

/// Writes a sample as an ingest in that minute would have: ingest only
/// writes the current minute, and these tests need earlier ones.
fn seed_sample(app: &TestApp, user_id: i32, name: &str, minute: NaiveDateTime, value: f64) {
    let change = Current {
        user_id,
        metric: name.to_owned(),
        value,
        version: 0,
    };
    app.db
        .run_here(move |c| metrics::record_samples(c, &[change], minute))
        .unwrap();
}

fn this_minute() -> NaiveDateTime {
    minute_of(Utc::now().naive_utc())
}

async fn a_snapshot_carries_the_last_hour_of_each_metric_again_after_a_reconnect(backend: Backend) {
    let app = spawn(backend).await;
    let half_an_hour_ago = this_minute() - TimeDelta::minutes(30);
    let alice = app.create_user("alice", false);
    seed_sample(&app, alice, "cpu_pct", half_an_hour_ago, 12.0);
    let bob = app.create_user("bob", false);
    // Two events of one metric in one batch: its sample is the last.
    let batch = json!([
        {"user_id": alice, "metric": "cpu_pct", "value": 20, "op": "set"},
        {"user_id": alice, "metric": "cpu_pct", "value": 42, "op": "set"},
        {"user_id": alice, "metric": "bandwidth_bytes", "value": 155_189_248, "op": "add"},
        {"user_id": bob, "metric": "cpu_pct", "value": 99, "op": "set"},
    ]);
    assert_eq!(ingest(&app, batch).await.0, 200);

    let path = format!("/ws/analytics/?token={}", app.token(alice));
    let mut dash = app.connect(&path).await;
    let snapshot = dash.recv().await;
    assert_eq!(
        snapshot.get("users"),
        None,
        "own frames have no user counts"
    );
    let (from, points) = series_of(&snapshot, 60);
    let cpu = points["cpu_pct"].as_array().unwrap();
    let seeded = index(from, half_an_hour_ago);
    // Nothing is known before the first sample; from it on, each minute
    // without one holds the value before.
    assert!(cpu[..seeded].iter().all(Value::is_null), "{cpu:?}");
    assert!(cpu[seeded..59].iter().all(|p| p == 12.0 || p == 42.0));
    assert_eq!(cpu[seeded], 12.0);
    assert_eq!(cpu[59], 42.0);
    let bytes = points["bandwidth_bytes"].as_array().unwrap();
    assert_eq!(bytes[59], 155_189_248.0);
    assert!(cpu.iter().all(|p| p != 99.0), "bob's value is bob's");

    // A live update carries values only: the page appends them.
    ingest(
        &app,
        json!({"user_id": alice, "metric": "cpu_pct", "value": 7, "op": "set"}),
    )
    .await;
    let update = dash.recv().await;
    assert_eq!(
        (update["type"].as_str(), update.get("series")),
        (Some("analytics.update"), None)
    );
    drop(dash);

    // A reload: the same hour again, with the change in it.
    let mut again = app.connect(&path).await;
    let snapshot = again.recv().await;
    let (from, points) = series_of(&snapshot, 60);
    let cpu = points["cpu_pct"].as_array().unwrap();
    assert_eq!(cpu[index(from, half_an_hour_ago)], 12.0);
    assert_eq!(cpu[59], 7.0);
}

async fn samples_older_than_an_hour_are_deleted_by_the_next_ingest_and_never_sent(
    backend: Backend,
) {
    let app = spawn(backend).await;
    let alice = app.create_user("alice", false);
    ingest(
        &app,
        json!({"user_id": alice, "metric": "quiet", "value": 5, "op": "set"}),
    )
    .await;
    let now = this_minute();
    // Out of the hour: the next ingest of the metric deletes it.
    seed_sample(&app, alice, "load", now - TimeDelta::minutes(90), 1.0);
    // The oldest minute still kept.
    seed_sample(&app, alice, "load", now - TimeDelta::minutes(59), 2.0);
    // Out of the hour, of a metric no ingest touches again: kept, not sent.
    seed_sample(&app, alice, "quiet", now - TimeDelta::minutes(61), 3.0);
    ingest(
        &app,
        json!({"user_id": alice, "metric": "load", "value": 4, "op": "set"}),
    )
    .await;
    let stored = app
        .db
        .run_here(move |c| metrics::samples(c, alice, ("load", "quiet"), now - TimeDelta::days(1)))
        .unwrap();
    let minutes_ago = |name: &str| {
        stored
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, minute, _)| (now - *minute).num_minutes())
            .collect::<Vec<_>>()
    };
    // The ingest's own sample is this minute's, or the next one's if the
    // clock moved on meanwhile, which also ages out the 59-minute one.
    let load = minutes_ago("load");
    assert!(
        load == [59, 0] || load == [-1],
        "load's samples, minutes ago: {load:?}"
    );
    assert_eq!(minutes_ago("quiet")[0], 61, "left alone, not touched");

    let mut dash = app
        .connect(&format!("/ws/analytics/?token={}", app.token(alice)))
        .await;
    let snapshot = dash.recv().await;
    let (_, points) = series_of(&snapshot, 60);
    for old in [1.0, 3.0] {
        assert!(
            points
                .values()
                .flat_map(|l| l.as_array().unwrap())
                .all(|p| p != old),
            "{old} is over an hour old: {points:?}"
        );
    }
    assert_eq!(points["quiet"][59], 5.0);
}

async fn a_snapshot_of_many_metrics_keeps_its_series_within_ten_thousand_points(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.create_user("alice", false);
    // The most one request takes, each event a metric of its own.
    let events: Vec<Value> = (0..1000)
        .map(|i| json!({"user_id": alice, "metric": format!("m{i:04}"), "value": i, "op": "set"}))
        .collect();
    assert_eq!(ingest(&app, Value::Array(events)).await.0, 200);
    let mut dash = app
        .connect(&format!("/ws/analytics/?token={}", app.token(alice)))
        .await;
    let snapshot = dash.recv().await;
    // The last ten minutes of each: all of them, as far back as fits.
    let (_, points) = series_of(&snapshot, 10);
    assert_eq!(points.len(), 1000);
}
