//! The ingest API under contention and at its edges: concurrent first events
//! for one metric, versions in commit order, overflow, and who may post
//! before the body is read.

use hub::db::metrics::{self, Event, Op};
use hub::http::ingest::MAX_BODY_BYTES;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

const INGEST_KEY: &str = "ingest-key-for-tests";

on_both_backends!(
    concurrent_first_events_for_one_metric_all_succeed_and_add_up,
    every_change_bumps_the_metric_version_in_commit_order,
    an_add_that_would_overflow_is_refused_and_nothing_of_its_batch_is_stored,
    an_unauthorised_caller_is_refused_before_its_body_is_read,
);

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        &[("HUB_INGEST_KEY", INGEST_KEY), ("HUB_DB_POOL_SIZE", "8")],
    )
    .await
}

async fn ingest(app: &TestApp, body: &Value) -> (u16, Value) {
    let resp = app
        .client()
        .post(app.http("/api/analytics/events"))
        .header("x-hub-ingest-key", INGEST_KEY)
        .json(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// The stored metrics of a user, by name.
fn stored(app: &TestApp, user_id: i32) -> Vec<(String, f64)> {
    let rows = app
        .db
        .run_here(move |c| metrics::for_user(c, user_id, 100))
        .unwrap();
    rows.into_iter()
        .map(|(name, value, _)| (name, value))
        .collect()
}

async fn concurrent_first_events_for_one_metric_all_succeed_and_add_up(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.create_user("alice", false);
    // Several fresh metrics, each hit by many first events at once: each one
    // is a chance for two of them to find no row and both try to create it.
    let names: Vec<String> = (0..5).map(|i| format!("signups.{i}")).collect();
    let bodies: Vec<Value> = names
        .iter()
        .flat_map(|name| {
            (1..=16)
                .map(move |n| json!({"user_id": alice, "metric": name, "value": n, "op": "add"}))
        })
        .collect();
    let posts = bodies.iter().map(|body| ingest(&app, body));
    for (status, body) in futures_util::future::join_all(posts).await {
        assert_eq!((status, body), (200, json!({"accepted": 1})));
    }
    let expected: Vec<(String, f64)> = names.into_iter().map(|n| (n, 136.0)).collect();
    assert_eq!(stored(&app, alice), expected);
}

async fn every_change_bumps_the_metric_version_in_commit_order(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.create_user("alice", false);
    let url = hub::config::DatabaseUrl::parse(&app.database_url).unwrap();
    let pool = hub::db::pool(&url, 8, hub::db::DEFAULT_POOL_TIMEOUT).unwrap();
    let event = Event {
        user_id: alice,
        metric: "visits".into(),
        value: 1.0,
        op: Op::Add,
    };
    // Eight writers at once, one event a transaction, on one new metric.
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let (pool, event) = (pool.clone(), event.clone());
            std::thread::spawn(move || {
                let mut conn = pool.get().unwrap();
                (0..25)
                    .map(|_| {
                        let [current] = <[_; 1]>::try_from(
                            metrics::apply(&mut conn, std::slice::from_ref(&event))
                                .unwrap()
                                .unwrap(),
                        )
                        .unwrap();
                        (current.version, current.value)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seen: Vec<(i64, f64)> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    seen.sort_by_key(|(version, _)| *version);
    // One version per change, no gaps, and each version names the value that
    // change committed: the n-th add to commit made the value n.
    let expected: Vec<(i64, f64)> = (1..=200).map(|n| (n, n as f64)).collect();
    assert_eq!(seen, expected);

    let set = Event {
        value: 7.0,
        op: Op::Set,
        ..event
    };
    let mut conn = pool.get().unwrap();
    let after = metrics::apply(&mut conn, &[set.clone(), set])
        .unwrap()
        .unwrap();
    let versions: Vec<i64> = after.iter().map(|c| c.version).collect();
    assert_eq!(versions, [201, 202], "a set is a change too");
}

async fn an_add_that_would_overflow_is_refused_and_nothing_of_its_batch_is_stored(
    backend: Backend,
) {
    let app = spawn(backend).await;
    let alice = app.create_user("alice", false);
    let set = json!([
        {"user_id": alice, "metric": "big", "value": 1.7e308, "op": "set"},
        {"user_id": alice, "metric": "small", "value": -1.7e308, "op": "set"},
    ]);
    assert_eq!(ingest(&app, &set).await.0, 200);

    for (batch, index) in [
        (
            json!([
                {"user_id": alice, "metric": "visits", "value": 1, "op": "add"},
                {"user_id": alice, "metric": "big", "value": 1e308, "op": "add"},
            ]),
            1,
        ),
        (
            json!({"user_id": alice, "metric": "small", "value": -1e308, "op": "add"}),
            0,
        ),
    ] {
        let (status, body) = ingest(&app, &batch).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("validation")));
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.starts_with(&format!("event {index}:")), "{detail}");
    }
    let unchanged = vec![("big".to_owned(), 1.7e308), ("small".to_owned(), -1.7e308)];
    assert_eq!(stored(&app, alice), unchanged, "nothing of a refused batch");

    // The metric is still usable: an add that fits is taken.
    let fits = json!({"user_id": alice, "metric": "big", "value": -1e308, "op": "add"});
    assert_eq!(ingest(&app, &fits).await.0, 200);
    assert_eq!(stored(&app, alice)[0], ("big".to_owned(), 1.7e308 - 1e308));
}

async fn an_unauthorised_caller_is_refused_before_its_body_is_read(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.create_user("alice", false);
    let post = |auth: Option<(&'static str, String)>, content_type: &'static str| {
        let mut req = reqwest::Client::new()
            .post(app.http("/api/analytics/events"))
            .header(CONTENT_TYPE, content_type)
            .body("{not json");
        if let Some((name, value)) = auth {
            req = req.header(name, value);
        }
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    // A body that is not even JSON, or not declared as JSON: who sends it is
    // what is answered.
    for content_type in ["application/json", "text/plain"] {
        let (status, body) = post(None, content_type).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("token_missing"))
        );
        let wrong_key = Some(("x-hub-ingest-key", "wrong".to_owned()));
        let (status, body) = post(wrong_key, content_type).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("ingest_key_invalid"))
        );
        let not_staff = Some(("authorization", format!("Bearer {}", app.token(alice))));
        let (status, body) = post(not_staff, content_type).await;
        assert_eq!(
            (status, body),
            (
                403,
                json!({
                    "error": "staff_only",
                    "detail": "posting metric events needs the ingest key or a staff token"
                })
            )
        );
    }
    // The caller known, the body is read and judged as before.
    let key = Some(("x-hub-ingest-key", INGEST_KEY.to_owned()));
    let (status, body) = post(key.clone(), "application/json").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("validation")));
    let (status, body) = post(key, "text/plain").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("validation")));
    let oversized = format!("[{}]", " ".repeat(MAX_BODY_BYTES));
    let resp = reqwest::Client::new()
        .post(app.http("/api/analytics/events"))
        .header("x-hub-ingest-key", INGEST_KEY)
        .header(CONTENT_TYPE, "application/json")
        .body(oversized)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "too_large");
}
