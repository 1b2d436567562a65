//! The HTTP edge's one error type: a status, a stable snake_case code and a
//! human detail, as `{"error": ..., "detail": ...}`. Where the hub answers
//! for Django REST framework (the token API) the body also carries what DRF
//! writes: simplejwt's `code` beside `detail`, or DRF's field errors
//! (`{"username": ["This field is required."]}`) in place of `detail`.

use std::borrow::Cow;
use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::DbError;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: Detail,
    /// simplejwt's own code (`token_not_valid`), written beside `detail`.
    drf_code: Option<&'static str>,
    retry_after: Option<u64>,
    /// The methods a resource answers, for a 405.
    allow: Option<&'static str>,
}

#[derive(Debug)]
enum Detail {
    Text(Cow<'static, str>),
    Fields(FieldErrors),
}

/// DRF's validation errors: each field (or `non_field_errors`) with its
/// messages.
pub type FieldErrors = Vec<(&'static str, Vec<Cow<'static, str>>)>;

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(flatten)]
    fields: std::collections::BTreeMap<&'a str, &'a [Cow<'static, str>]>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            detail: Detail::Text(detail.into()),
            drf_code: None,
            retry_after: None,
            allow: None,
        }
    }

    /// A 400 as DRF writes a serializer's errors.
    pub fn fields(errors: FieldErrors) -> Self {
        Self {
            detail: Detail::Fields(errors),
            ..Self::new(StatusCode::BAD_REQUEST, "validation", "")
        }
    }

    /// Adds simplejwt's `code` beside the detail.
    pub fn with_drf_code(self, drf_code: &'static str) -> Self {
        Self {
            drf_code: Some(drf_code),
            ..self
        }
    }

    /// A 405 naming the methods the resource answers, in DRF's words.
    pub fn method_not_allowed(method: &Method, allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("Method \"{method}\" not allowed."),
            )
        }
    }

    pub fn validation(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "validation", detail)
    }

    pub fn throttled(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            format!("too many failed attempts; retry in {retry_after_secs} s"),
        )
        .with_retry_after(retry_after_secs)
    }

    /// Adds `Retry-After`, in whole seconds.
    pub fn with_retry_after(self, secs: u64) -> Self {
        Self {
            retry_after: Some(secs),
            ..self
        }
    }

    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.detail {
            Detail::Text(detail) => write!(f, "{}: {detail}", self.code),
            Detail::Fields(fields) => write!(f, "{}: {fields:?}", self.code),
        }
    }
}

/// A database failure is logged here, once, and shown to the client only as
/// "unavailable": a pool that cannot hand out a connection is a 503.
impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        tracing::error!(error = %err, "database request failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database is not available; retry shortly",
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status);
        let detail = match &self.detail {
            Detail::Text(detail) => Some(detail.as_ref()),
            Detail::Fields(_) => None,
        };
        if self.status == StatusCode::UNAUTHORIZED {
            // The detail is our own fixed text, never client input, so it
            // cannot break out of the quoted header parameter.
            let challenge = format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                detail.unwrap_or_default().replace('"', "'")
            );
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                resp.insert_header((header::WWW_AUTHENTICATE, value));
            }
        }
        if let Some(secs) = self.retry_after {
            resp.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(allow) = self.allow {
            resp.insert_header((header::ALLOW, allow));
        }
        let fields = match &self.detail {
            Detail::Text(_) => Default::default(),
            Detail::Fields(fields) => fields.iter().map(|(k, v)| (*k, v.as_slice())).collect(),
        };
        resp.json(Body {
            error: self.code,
            detail,
            code: self.drf_code,
            fields,
        })
    }
}
