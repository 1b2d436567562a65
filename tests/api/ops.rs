//! Operators' endpoints and the edges of routing.

use crate::helpers::{Backend, TestApp, join};
use crate::on_both_backends;

on_both_backends!(
    health_readiness_and_metrics_answer,
    a_bad_room_name_is_a_404_before_any_upgrade
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
}
