//! `POST /api/analytics/events`: metric events from the backend, stored
//! through diesel and then pushed to the dashboards that show them.

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::guard;
use crate::analytics::broadcaster::{AnalyticsBroadcaster, Changed};
use crate::auth::refusal::Refusal;
use crate::auth::users;
use crate::db::metrics::{self, Event, Op};
use crate::state::AppState;

/// Events in one request, at most.
pub const MAX_EVENTS: usize = 1000;
/// The body limit that fits `MAX_EVENTS` events of any valid shape.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    user_id: i64,
    metric: String,
    value: f64,
    op: Op,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum Batch {
    Many(Vec<serde_json::Value>),
    One(serde_json::Value),
}

fn parse_event(index: usize, value: serde_json::Value) -> Result<Event, ApiError> {
    let at = |detail: String| ApiError::validation(format!("event {index}: {detail}"));
    let raw: RawEvent = serde_json::from_value(value).map_err(|e| at(e.to_string()))?;
    let user_id = i32::try_from(raw.user_id)
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| at("user_id must be a positive user id".into()))?;
    let name_ok = (1..=64).contains(&raw.metric.len())
        && raw
            .metric
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if !name_ok {
        return Err(at("metric is 1 to 64 of [A-Za-z0-9_.:-]".into()));
    }
    if !raw.value.is_finite() {
        return Err(at("value must be a finite number".into()));
    }
    Ok(Event {
        user_id,
        metric: raw.metric,
        value: raw.value,
        op: raw.op,
    })
}

/// The backend proves itself with `X-Hub-Ingest-Key` (`HUB_INGEST_KEY`); an
/// operator may also use a staff access token.
async fn authorise(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    if let Some(given) = req.headers().get("x-hub-ingest-key") {
        let matches = state
            .settings
            .ingest_key
            .as_ref()
            .is_some_and(|key| key.matches(given.as_bytes()));
        return if matches {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "ingest_key_invalid",
                "the ingest key does not match",
            ))
        };
    }
    let token = guard::bearer_token(req).ok_or(Refusal::TokenMissing)?;
    let auth = users::authenticate(&state.tokens, &state.users, &state.db, token).await?;
    if auth.user.is_staff {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Refusal::StaffOnly.code(),
            "posting metric events needs the ingest key or a staff token",
        ))
    }
}

/// Takes the body as a raw payload so the caller is authorised before a byte
/// of it is read: an unknown caller cannot make the hub buffer and parse up to
/// `MAX_BODY_BYTES`. The body is then read by the `Json` extractor under the
/// route's `JsonConfig`, which holds that limit and the JSON error shapes.
pub async fn ingest(
    req: HttpRequest,
    state: web::Data<AppState>,
    broadcaster: web::Data<Addr<AnalyticsBroadcaster>>,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    authorise(&req, &state).await?;
    let body = web::Json::<Batch>::from_request(&req, &mut payload.into_inner()).await?;
    let values = match body.into_inner() {
        Batch::Many(values) => values,
        Batch::One(value) => vec![value],
    };
    if values.is_empty() || values.len() > MAX_EVENTS {
        return Err(ApiError::validation(format!("send 1 to {MAX_EVENTS} events")).into());
    }
    let events = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| parse_event(i, v))
        .collect::<Result<Vec<_>, _>>()?;
    let accepted = events.len();
    let current = state
        .db
        .run(move |conn| metrics::apply(conn, &events))
        .await
        .map_err(ApiError::from)?
        .map_err(|overflow| ApiError::validation(overflow.to_string()))?;
    // Waits for room in the broadcaster's bounded mailbox: a flood of ingests
    // is held back here instead of queueing without limit.
    if broadcaster
        .send(Changed { changes: current })
        .await
        .is_err()
    {
        tracing::error!("the analytics broadcaster is gone; stored events were not pushed");
    }
    Ok(HttpResponse::Ok().json(json!({"accepted": accepted})))
}
