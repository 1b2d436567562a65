//! The HTTP edge: routes, the guard, the socket endpoints' handshakes, the
//! token and ingest APIs, operators' endpoints, static pages, and the one
//! error type they answer with.
//!
//! Every path is one resource: `HEAD` is answered wherever `GET` is (as `GET`
//! without the body) and any other method gets 405 with `Allow`. The APIs a
//! browser calls across origins (the token API and the ingest API) answer
//! CORS as django-cors-headers does with the same `CORS_ALLOWED_ORIGINS`.

pub mod assets;
pub mod client;
pub mod error;
pub mod guard;
pub mod ingest;
pub mod ops;
pub mod sockets;
pub mod token;

use actix_web::body::MessageBody;
use actix_web::dev::{HttpServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{Next, from_fn};
use actix_web::{Handler, HttpRequest, HttpResponse, Resource, Responder, web};

use crate::state::AppState;
use error::ApiError;

/// A room name is checked by the guard (`RoomName::parse`), which answers a
/// bad one with 404 before any upgrade; a plain segment spares every request
/// a regex match.
const ROOM: &str = "{room}";

const READABLE: &str = "GET, HEAD";
const CROSS_ORIGIN_API: &str = "POST, OPTIONS";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(16 * 1024)
            .error_handler(json_error),
    );
    for path in [format!("/ws/chat/{ROOM}"), format!("/ws/chat/{ROOM}/")] {
        cfg.service(readable(&path, sockets::chat));
    }
    for path in ["/ws/analytics", "/ws/analytics/"] {
        cfg.service(readable(path, sockets::analytics));
    }
    for path in ["/ws/dns", "/ws/dns/"] {
        cfg.service(readable(path, sockets::dns));
    }
    cfg.service(cross_origin(
        web::resource("/api/analytics/events")
            .app_data(
                web::JsonConfig::default()
                    .limit(ingest::MAX_BODY_BYTES)
                    .error_handler(json_error),
            )
            .route(web::post().to(ingest::ingest)),
    ))
    .service(cross_origin(
        web::resource("/api/token/").route(web::post().to(token::obtain)),
    ))
    .service(cross_origin(
        web::resource("/api/token/refresh/").route(web::post().to(token::refresh)),
    ));
    // Django's APPEND_SLASH: the token API without its trailing slash is a
    // permanent redirect to it, whatever the method.
    for path in ["/api/token", "/api/token/refresh"] {
        cfg.service(cross_origin(web::resource(path).to(append_slash)));
    }
    cfg.service(readable("/healthz", ops::healthz))
        .service(readable("/readyz", ops::readyz))
        .service(readable("/metrics", ops::metrics))
        .service(readable("/api/stats/", ops::stats))
        .service(readable("/", |req: HttpRequest| async move {
            assets::serve(&req, "index.html")
        }));
    for name in assets::names() {
        cfg.service(readable(
            &format!("/{name}"),
            move |req: HttpRequest| async move { assets::serve(&req, name) },
        ));
    }
    cfg.default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint",
        ))
    }));
}

/// A path answering `GET` and `HEAD` with `handler`, and 405 otherwise.
fn readable<F, Args>(path: &str, handler: F) -> Resource
where
    F: Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path)
        .route(
            web::route()
                .guard(actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head()))
                .to(handler),
        )
        .default_service(web::to(|req: HttpRequest| async move {
            Err::<HttpResponse, _>(ApiError::method_not_allowed(req.method(), READABLE))
        }))
}

/// A `POST` API browsers may call from the origins in
/// `CORS_ALLOWED_ORIGINS`: preflights answered, CORS headers added, and 405
/// for other methods.
fn cross_origin(resource: Resource) -> impl HttpServiceFactory {
    resource
        .default_service(web::to(|req: HttpRequest| async move {
            Err::<HttpResponse, _>(ApiError::method_not_allowed(req.method(), CROSS_ORIGIN_API))
        }))
        .wrap(from_fn(cors))
}

async fn append_slash(req: HttpRequest) -> HttpResponse {
    let query = req.query_string();
    let location = if query.is_empty() {
        format!("{}/", req.path())
    } else {
        format!("{}/?{query}", req.path())
    };
    HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// django-cors-headers' default `CORS_ALLOW_HEADERS`.
const ALLOW_HEADERS: &str =
    "accept, authorization, content-type, user-agent, x-csrftoken, x-requested-with";
/// django-cors-headers' default `CORS_PREFLIGHT_MAX_AGE`: a day.
const PREFLIGHT_MAX_AGE: &str = "86400";

/// As django-cors-headers: every `OPTIONS` is answered here (200, empty);
/// a response to a listed `Origin` carries `Access-Control-Allow-Origin`
/// (and, for `OPTIONS`, the allowed methods and headers); an unlisted or
/// absent origin gets no CORS headers, so the browser withholds the answer.
async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let allowed = req
        .headers()
        .get(header::ORIGIN)
        .filter(|origin| {
            let listed = req
                .app_data::<web::Data<AppState>>()
                .and_then(|state| state.settings.cors_allowed_origins.as_ref());
            listed.is_some_and(|list| origin.to_str().is_ok_and(|o| list.contains(o)))
        })
        .cloned();
    let options = req.method() == Method::OPTIONS;
    let mut res = if options {
        req.into_response(
            HttpResponse::Ok()
                .insert_header((header::ALLOW, CROSS_ORIGIN_API))
                .finish(),
        )
        .map_into_boxed_body()
    } else {
        next.call(req).await?.map_into_boxed_body()
    };
    let headers = res.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if options {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(CROSS_ORIGIN_API),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(PREFLIGHT_MAX_AGE),
            );
        }
    }
    Ok(res)
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
