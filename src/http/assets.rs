//! The pages in `static/`, compiled into the binary so the hub runs the same
//! from any working directory.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

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

fn serve(name: &str) -> Result<HttpResponse, ApiError> {
    let (_, content_type, body) = FILES
        .iter()
        .find(|(file, _, _)| *file == name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such page"))?;
    Ok(HttpResponse::Ok()
        .content_type(*content_type)
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(*body))
}

pub async fn index() -> Result<HttpResponse, ApiError> {
    serve("index.html")
}

pub async fn file(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    serve(&name)
}
