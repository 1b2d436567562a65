//! The pages in `static/`, compiled into the binary so the hub runs the same
//! from any working directory.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use super::error::ApiError;

const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../static/index.html"),
    ),
    (
        "chat.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/chat.js"),
    ),
    (
        "hub.css",
        "text/css; charset=utf-8",
        include_str!("../../static/hub.css"),
    ),
];

/// The files served at `/<name>`.
pub fn names() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(name, _, _)| *name)
}

/// The pages load only their own script and stylesheet and talk only to
/// this hub (over HTTP and its sockets); nothing may frame them.
fn content_security_policy(req: &HttpRequest) -> String {
    let connect = match socket_origin(req) {
        Some(socket) => format!("'self' {socket}"),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'self'"
    )
}

/// `ws://host` or `wss://host` for this page's own host: older browsers do
/// not count a socket to the page's host as `'self'`. The host comes from the
/// request, so anything but a plain host and port leaves it out rather than
/// letting it write into the policy.
fn socket_origin(req: &HttpRequest) -> Option<String> {
    let info = req.connection_info();
    let host = info.host();
    let plain = !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    let scheme = if info.scheme() == "https" {
        "wss"
    } else {
        "ws"
    };
    plain.then(|| format!("{scheme}://{host}"))
}

pub fn serve(req: &HttpRequest, name: &str) -> Result<HttpResponse, ApiError> {
    let (_, content_type, body) = FILES
        .iter()
        .find(|(file, _, _)| *file == name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such page"))?;
    Ok(HttpResponse::Ok()
        .content_type(*content_type)
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Content-Security-Policy", content_security_policy(req)))
        .insert_header(("Referrer-Policy", "same-origin"))
        .body(*body))
}
