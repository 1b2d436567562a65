//! Operators' endpoints: liveness, readiness, metrics, and the live figures
//! of the staff console.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use diesel::connection::SimpleConnection;
use serde_json::json;

use super::error::ApiError;
use super::guard;
use crate::auth::refusal::Refusal;
use crate::auth::users;
use crate::state::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the database answers a query and, in a cluster, the bus
/// reaches the other nodes: a node that cannot would serve its sockets
/// alone, so a load balancer should send new ones elsewhere.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if *state.draining.borrow() {
        return HttpResponse::ServiceUnavailable().json(json!({
            "error": "not_ready",
            "detail": "the node is draining: it is stopping",
        }));
    }
    let database = match state.db.run(|conn| conn.batch_execute("SELECT 1")).await {
        Ok(()) => "ok",
        Err(err) => {
            tracing::warn!(error = %err, "readiness: database unreachable");
            "unreachable"
        }
    };
    let bus = match (
        state.settings.cluster.redis_url.is_some(),
        state.bus.is_up(),
    ) {
        (false, _) => "local",
        (true, true) => "up",
        (true, false) => "down",
    };
    if database == "ok" && bus != "down" {
        return HttpResponse::Ok()
            .json(json!({"status": "ready", "database": database, "bus": bus}));
    }
    let detail = if database == "ok" {
        "the bus to the other nodes is down"
    } else {
        "the database is unreachable"
    };
    HttpResponse::ServiceUnavailable().json(json!({
        "error": "not_ready",
        "detail": detail,
        "database": database,
        "bus": bus,
    }))
}

/// Prometheus text. With `HUB_METRICS_TOKEN` set, only a scraper that
/// presents it as a bearer token may read it; the counters tell how busy and
/// how exposed the hub is.
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Some(expected) = &state.settings.metrics_token {
        let given = guard::bearer_token(&req).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "token_missing",
                "/metrics needs Authorization: Bearer with the metrics token",
            )
        })?;
        if !expected.matches(given.as_bytes()) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "metrics_token_invalid",
                "the metrics token does not match",
            ));
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(state.db.gauges())))
}

/// The hub's live figures as JSON for the staff console: open sockets by
/// endpoint and chat rooms. A staff access token reads them; `/metrics`
/// stays the operators' (it may be open to the network, or need its own
/// token a browser should never hold).
pub async fn stats(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let token = guard::bearer_token(&req).ok_or(Refusal::TokenMissing)?;
    let auth = users::authenticate(&state.tokens, &state.users, &state.db, token).await?;
    if !auth.user.is_staff {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Refusal::StaffOnly.code(),
            "the hub's live figures are for staff only",
        ));
    }
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({
            "connections": state.metrics.connections(),
            "rooms": state.metrics.rooms(),
        })))
}
