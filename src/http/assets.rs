//! The pages in `static/`, compiled into the binary so the hub runs the same
//! from any working directory.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use super::error::ApiError;

/// Each file's path under `static/` (and under `/`) and its text. The
/// scripts are ES modules; the chart library is vendored in `vendor/` (its
/// version and licence beside it), so no page loads anything from elsewhere.
const FILES: &[(&str, &str)] = &[
    ("index.html", include_str!("../../static/index.html")),
    (
        "dashboard.html",
        include_str!("../../static/dashboard.html"),
    ),
    ("chat.html", include_str!("../../static/chat.html")),
    ("dns.html", include_str!("../../static/dns.html")),
    ("staff.html", include_str!("../../static/staff.html")),
    ("about.html", include_str!("../../static/about.html")),
    ("hub.css", include_str!("../../static/hub.css")),
    ("conn.js", include_str!("../../static/conn.js")),
    ("shell.js", include_str!("../../static/shell.js")),
    ("room.js", include_str!("../../static/room.js")),
    ("metrics.js", include_str!("../../static/metrics.js")),
    ("home.js", include_str!("../../static/home.js")),
    ("dashboard.js", include_str!("../../static/dashboard.js")),
    ("chat.js", include_str!("../../static/chat.js")),
    ("dns.js", include_str!("../../static/dns.js")),
    ("staff.js", include_str!("../../static/staff.js")),
    (
        "badge-hostadvice-2026.svg",
        include_str!("../../static/badge-hostadvice-2026.svg"),
    ),
    (
        "vendor/uplot/uPlot.esm.js",
        include_str!("../../static/vendor/uplot/uPlot.esm.js"),
    ),
    (
        "vendor/uplot/uPlot.min.css",
        include_str!("../../static/vendor/uplot/uPlot.min.css"),
    ),
];

/// The type of a file, by its extension; every name in `FILES` has one of these.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// The files served at `/<name>`.
pub fn names() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(name, _)| *name)
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
    let (_, body) = FILES
        .iter()
        .find(|(file, _)| *file == name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such page"))?;
    Ok(HttpResponse::Ok()
        .content_type(content_type(name))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Content-Security-Policy", content_security_policy(req)))
        .insert_header(("Referrer-Policy", "same-origin"))
        .body(*body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_known_type() {
        for name in names() {
            assert_ne!(content_type(name), "application/octet-stream", "{name}");
        }
    }
}
