//! `POST /api/token/` and `POST /api/token/refresh/`, answering as
//! djangorestframework-simplejwt 5.5.1 does (its bodies, content types and
//! error shapes), with tokens it would accept.

use std::borrow::Cow;
use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::Serialize;

use super::error::{ApiError, FieldErrors};
use crate::auth::jwt::TokenKind;
use crate::auth::refusal::Refusal;
use crate::auth::users::load_active;
use crate::db::users::{self, User};
use crate::state::AppState;
use crate::text;

/// Credentials and refresh tokens are small; a larger body is refused unread.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Django's `auth_user.username` is 150 characters.
const MAX_USERNAME_CHARS: usize = 150;
const MAX_PASSWORD_CHARS: usize = 4096;
/// A refresh token the hub or simplejwt mints is a few hundred bytes.
const MAX_TOKEN_CHARS: usize = 4096;

/// One field of a request body as DRF's `CharField` sees it.
enum FieldValue {
    Text(String),
    /// JSON `null`.
    Null,
    /// A JSON boolean, array or object, or an uploaded file.
    NotText,
}

type Fields = HashMap<String, FieldValue>;

/// Reads the body as DRF's default parsers do: JSON, form-urlencoded or
/// multipart. No body (or no content type) is no fields, as in DRF, so each
/// field is then reported missing.
async fn read_fields(req: &HttpRequest, mut payload: web::Payload) -> Result<Fields, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::validation(format!("the body was cut off: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the body is over {MAX_BODY_BYTES} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let mime = req.mime_type().map_err(|_| unsupported(req))?;
    let Some(mime) = mime.filter(|_| !body.is_empty()) else {
        return Ok(Fields::new());
    };
    match (mime.type_().as_str(), mime.subtype().as_str()) {
        ("application", "json") => json_fields(&body),
        ("application", "x-www-form-urlencoded") => {
            let text = String::from_utf8_lossy(&body);
            let pairs = web::Query::<Vec<(String, String)>>::from_query(&text)
                .map_err(|e| parse_error("Form", e))?;
            // Django's QueryDict gives the last of repeated keys.
            Ok(pairs
                .into_inner()
                .into_iter()
                .map(|(k, v)| (k, FieldValue::Text(v)))
                .collect())
        }
        ("multipart", "form-data") => {
            let boundary = mime
                .get_param("boundary")
                .map(|b| b.as_str().to_owned())
                .ok_or_else(|| {
                    parse_error("Multipart form", "Invalid boundary in multipart: None")
                })?;
            multipart_fields(&body, &boundary)
        }
        _ => Err(unsupported(req)),
    }
}

fn unsupported(req: &HttpRequest) -> ApiError {
    let media_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("Unsupported media type \"{media_type}\" in request."),
    )
}

fn parse_error(what: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::validation(format!("{what} parse error - {err}"))
}

fn json_fields(body: &[u8]) -> Result<Fields, ApiError> {
    use serde_json::Value;
    let value: Value = serde_json::from_slice(body).map_err(|e| parse_error("JSON", e))?;
    let Value::Object(map) = value else {
        // Python's names for the types, as DRF reports them.
        let kind = match value {
            Value::Null => "NoneType",
            Value::Bool(_) => "bool",
            Value::Number(n) if n.is_f64() => "float",
            Value::Number(_) => "int",
            Value::String(_) => "str",
            Value::Array(_) => "list",
            Value::Object(_) => unreachable!("matched above"),
        };
        return Err(ApiError::fields(vec![(
            "non_field_errors",
            vec![format!("Invalid data. Expected a dictionary, but got {kind}.").into()],
        )]));
    };
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => FieldValue::Text(s),
                // DRF's CharField takes numbers as their text.
                Value::Number(n) => FieldValue::Text(n.to_string()),
                Value::Null => FieldValue::Null,
                _ => FieldValue::NotText,
            };
            (k, v)
        })
        .collect())
}

/// The text fields of a `multipart/form-data` body; a file part is kept as
/// [`FieldValue::NotText`], as DRF's `CharField` refuses an upload.
fn multipart_fields(body: &[u8], boundary: &str) -> Result<Fields, ApiError> {
    let malformed = || parse_error("Multipart form", "the body does not match its boundary");
    let body = std::str::from_utf8(body).map_err(|_| malformed())?;
    let delimiter = format!("--{boundary}");
    let mut parts = body.split(delimiter.as_str());
    parts.next(); // the preamble
    let mut fields = Fields::new();
    for part in parts {
        if part.starts_with("--") {
            return Ok(fields);
        }
        let part = part.strip_prefix("\r\n").ok_or_else(malformed)?;
        let (headers, value) = part.split_once("\r\n\r\n").ok_or_else(malformed)?;
        let value = value.strip_suffix("\r\n").ok_or_else(malformed)?;
        let disposition = headers
            .split("\r\n")
            .find_map(|h| {
                let (name, value) = h.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("content-disposition")
                    .then_some(value)
            })
            .ok_or_else(malformed)?;
        let param = |wanted: &str| {
            disposition.split(';').find_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k.trim() == wanted).then(|| v.trim().trim_matches('"').to_owned())
            })
        };
        let name = param("name").ok_or_else(malformed)?;
        let value = if param("filename").is_some() {
            FieldValue::NotText
        } else {
            FieldValue::Text(value.to_owned())
        };
        fields.insert(name, value);
    }
    Err(malformed())
}

/// DRF's `CharField` (trimmed, not blank, not null, no NUL) with the hub's
/// bound on its length; every message for the field, as DRF collects them.
fn char_field(
    fields: &mut Fields,
    name: &'static str,
    max_chars: usize,
    errors: &mut FieldErrors,
) -> Option<String> {
    let messages: Vec<Cow<'static, str>> = match fields.remove(name) {
        None => vec!["This field is required.".into()],
        Some(FieldValue::Null) => vec!["This field may not be null.".into()],
        Some(FieldValue::NotText) => vec!["Not a valid string.".into()],
        Some(FieldValue::Text(text)) => {
            let text = text.trim();
            let mut messages: Vec<Cow<'static, str>> = Vec::new();
            if text.is_empty() {
                messages.push("This field may not be blank.".into());
            }
            if text.chars().count() > max_chars {
                messages.push(
                    format!("Ensure this field has no more than {max_chars} characters.").into(),
                );
            }
            if text.contains('\0') {
                messages.push("Null characters are not allowed.".into());
            }
            if messages.is_empty() {
                return Some(text.to_owned());
            }
            messages
        }
    };
    errors.push((name, messages));
    None
}

struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    fn from_fields(mut fields: Fields) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::new();
        let username = char_field(&mut fields, "username", MAX_USERNAME_CHARS, &mut errors);
        let password = char_field(&mut fields, "password", MAX_PASSWORD_CHARS, &mut errors);
        // No stored username holds a control character (the hub refuses them
        // and Django's validator allows only letters, digits and @.+-_), and
        // PostgreSQL cannot even compare one with NUL: refused here, on both
        // backends alike.
        if let Some(Err(bad)) = username.as_deref().map(text::check) {
            errors.push(("username", vec![bad.to_string().into()]));
        }
        match (username, password) {
            (Some(username), Some(password)) if errors.is_empty() => {
                Ok(Self { username, password })
            }
            _ => Err(ApiError::fields(errors)),
        }
    }
}

#[derive(Serialize)]
struct TokenPair {
    access: String,
    refresh: String,
}

#[derive(Serialize)]
struct AccessOnly {
    access: String,
}

/// Loads the user, then checks the password in a hashing slot: the database
/// connection is returned before the hashing starts. Every outcome (no such
/// user, unusable password, inactive, wrong password) costs the same work.
async fn check_credentials(
    state: &AppState,
    creds: &Credentials,
) -> Result<Option<User>, ApiError> {
    let username = creds.username.clone();
    let found = state
        .db
        .run(move |conn| users::find_with_password(conn, &username))
        .await?;
    let (user, stored) = found.map_or((None, None), |(user, hash)| (Some(user), Some(hash)));
    let matched = state
        .throttle
        .hashing()
        .check(
            creds.password.clone(),
            stored,
            state.settings.password_iterations,
        )
        .await
        .map_err(|_| {
            tracing::error!("a password check was lost on the blocking pool");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the password could not be checked; retry shortly",
            )
        })?;
    Ok(user.filter(|user| matched && user.is_active))
}

pub async fn obtain(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let creds = Credentials::from_fields(read_fields(&req, payload).await?)?;
    let address = super::client::address(&req, &state.settings.trusted_proxies)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    state
        .throttle
        .reserve(&creds.username, &address)
        .map_err(|wait| ApiError::throttled(wait.as_secs().max(1)))?;
    match check_credentials(&state, &creds).await {
        Ok(Some(user)) => {
            state.throttle.succeeded(&creds.username, &address);
            Ok(HttpResponse::Ok().json(TokenPair {
                access: state.tokens.mint(user.id, TokenKind::Access),
                refresh: state.tokens.mint(user.id, TokenKind::Refresh),
            }))
        }
        Ok(None) => {
            // A first run has no account at all: the sign-in page says how
            // an operator makes one (a database that cannot say shows no
            // hint). simplejwt's words stay the same.
            let none_yet = matches!(state.db.run(users::any).await, Ok(false));
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                if none_yet {
                    "no_users_yet"
                } else {
                    "no_active_account"
                },
                "No active account found with the given credentials",
            ))
        }
        Err(unavailable) => {
            // Not a guess: the password was never compared.
            state.throttle.release(&creds.username, &address);
            Err(unavailable)
        }
    }
}

pub async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut fields = read_fields(&req, payload).await?;
    let mut errors = FieldErrors::new();
    let Some(token) = char_field(&mut fields, "refresh", MAX_TOKEN_CHARS, &mut errors) else {
        return Err(ApiError::fields(errors));
    };
    let verified = state
        .tokens
        .verify(&token, TokenKind::Refresh)
        .map_err(|e| {
            // simplejwt's words for each refusal, with its code.
            let (code, detail) = match Refusal::from(e) {
                Refusal::TokenExpired => ("token_expired", "Token is expired"),
                // Here the wrong kind is an access token offered as a refresh one.
                Refusal::TokenNotAccess => ("token_not_refresh", "Token has wrong type"),
                _ => ("token_invalid", "Token is invalid"),
            };
            ApiError::new(StatusCode::UNAUTHORIZED, code, detail).with_drf_code("token_not_valid")
        })?;
    let user = load_active(&state.db, &state.users, verified.user_id)
        .await
        .map_err(|refusal| match refusal {
            Refusal::UserNotFound | Refusal::UserInactive => ApiError::new(
                StatusCode::UNAUTHORIZED,
                refusal.code(),
                "No active account found for the given token.",
            ),
            other => other.into(),
        })?;
    Ok(HttpResponse::Ok().json(AccessOnly {
        access: state.tokens.mint(user.id, TokenKind::Access),
    }))
}
