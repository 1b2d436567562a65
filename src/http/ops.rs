//! Operators' endpoints: liveness, readiness and metrics.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use diesel::connection::SimpleConnection;
use serde_json::json;

use super::error::ApiError;
use crate::state::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the database answers a query.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.db.run(|conn| conn.batch_execute("SELECT 1")).await {
        Ok(()) => Ok(HttpResponse::Ok().json(json!({"status": "ready", "database": "ok"}))),
        Err(err) => {
            tracing::warn!(error = %err, "readiness: database unreachable");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the database is unreachable",
            ))
        }
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
