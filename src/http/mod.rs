//! The HTTP edge: routes, the guard, the socket endpoints' handshakes, the
//! token and ingest APIs, operators' endpoints, static pages, and the one
//! error type they answer with.

pub mod assets;
pub mod error;
pub mod guard;
pub mod ingest;
pub mod ops;
pub mod sockets;
pub mod token;

use actix_web::http::StatusCode;
use actix_web::web;

use error::ApiError;

/// A room name is checked by the guard (`RoomName::parse`), which answers a
/// bad one with 404 before any upgrade; a plain segment spares every request
/// a regex match.
const ROOM: &str = "{room}";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(16 * 1024)
            .error_handler(json_error),
    )
    .route(&format!("/ws/chat/{ROOM}"), web::get().to(sockets::chat))
    .route(&format!("/ws/chat/{ROOM}/"), web::get().to(sockets::chat))
    .route("/ws/analytics", web::get().to(sockets::analytics))
    .route("/ws/analytics/", web::get().to(sockets::analytics))
    .route("/ws/dns", web::get().to(sockets::dns))
    .route("/ws/dns/", web::get().to(sockets::dns))
    .service(
        web::resource("/api/analytics/events")
            .app_data(
                web::JsonConfig::default()
                    .limit(ingest::MAX_BODY_BYTES)
                    .error_handler(json_error),
            )
            .route(web::post().to(ingest::ingest)),
    )
    .route("/api/token/", web::post().to(token::obtain))
    .route("/api/token/refresh/", web::post().to(token::refresh))
    .route("/healthz", web::get().to(ops::healthz))
    .route("/readyz", web::get().to(ops::readyz))
    .route("/metrics", web::get().to(ops::metrics))
    .route("/", web::get().to(assets::index))
    .route("/{file}", web::get().to(assets::file))
    .default_service(web::to(|| async {
        Err::<actix_web::HttpResponse, _>(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint",
        ))
    }));
}

fn json_error(
    err: actix_web::error::JsonPayloadError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError::{Overflow, OverflowKnownLength};
    match err {
        Overflow { limit } | OverflowKnownLength { limit, .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is over {limit} bytes"),
        ),
        other => ApiError::validation(format!(
            "the body must be JSON of the documented shape: {other}"
        )),
    }
    .into()
}
