//! The load generator against a real hub, at toy sizes: each scenario runs to
//! its end and reports what it saw. Nothing here depends on timing figures.

use std::process::Command;

use crate::helpers::{Backend, KEY, TestApp};
use crate::on_both_backends;

on_both_backends!(
    the_connect_scenario_opens_every_socket,
    the_fanout_scenario_delivers_every_message,
    the_analytics_scenario_sees_updates,
    the_dns_scenario_pushes_every_change_to_every_watching_panel,
);

const INGEST_KEY: &str = "bench-test-ingest-key";

fn bench(app: &TestApp, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hub-bench"))
        .args([
            "--server",
            &format!("127.0.0.1:{}", app.port),
            "--threads",
            "1",
        ])
        .args(args)
        .env_clear()
        .env("DATABASE_URL", &app.database_url)
        .env("JWT_SIGNING_KEY", KEY)
        .env("HUB_INGEST_KEY", INGEST_KEY)
        .output()
        .expect("hub-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "hub-bench {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn the_connect_scenario_opens_every_socket(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let report = bench(
        &app,
        &[
            "connect",
            "--sockets",
            "40",
            "--processes",
            "2",
            "--rooms",
            "4",
            "--hold-secs",
            "1",
        ],
    );
    assert!(
        report.contains("connect: 40 of 40 sockets open"),
        "{report}"
    );
    assert!(report.contains("failures {}"), "{report}");
}

async fn the_fanout_scenario_delivers_every_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let args = [
        "fanout",
        "--rooms",
        "2",
        "--members",
        "3",
        "--rate",
        "5",
        "--duration-secs",
        "1",
        "--warmup-secs",
        "0",
    ];
    let report = bench(&app, &args);
    assert!(report.contains("(loss 0.0000%)"), "{report}");
    assert!(report.contains("(0 more rejected)"), "{report}");
    assert!(!report.contains("published 0 "), "{report}");
}

async fn the_analytics_scenario_sees_updates(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("HUB_INGEST_KEY", INGEST_KEY),
            ("HUB_ANALYTICS_INTERVAL_MS", "100"),
        ],
    )
    .await;
    let args = [
        "analytics",
        "--dashboards",
        "3",
        "--events-per-sec",
        "30",
        "--batch",
        "3",
        "--duration-secs",
        "1",
    ];
    let report = bench(&app, &args);
    assert!(report.contains("(0 not)"), "{report}");
    assert!(!report.contains(" 0 updates"), "{report}");
}

async fn the_dns_scenario_pushes_every_change_to_every_watching_panel(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let args = [
        "dns",
        "--panels",
        "5",
        "--zones",
        "2",
        "--writes-per-sec",
        "20",
        "--duration-secs",
        "1",
    ];
    let report = bench(&app, &args);
    assert!(
        report.contains("dns: 5 panels over 2 zones connected"),
        "{report}"
    );
    assert!(report.contains("(0 rejected)"), "{report}");
    assert!(report.contains("(lost 0)"), "{report}");
    assert!(!report.contains("dns: 0 changes"), "{report}");
}
