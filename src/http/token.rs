//! `POST /api/token/` and `POST /api/token/refresh/`, answering as
//! djangorestframework-simplejwt does, with tokens it would accept.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::auth::jwt::TokenKind;
use crate::auth::password;
use crate::auth::refusal::Refusal;
use crate::auth::users::load_active;
use crate::db::DbError;
use crate::db::users::{self, User};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
}

#[derive(Serialize)]
struct TokenPair {
    access: String,
    refresh: String,
}

#[derive(Deserialize)]
pub struct RefreshBody {
    refresh: String,
}

#[derive(Serialize)]
struct AccessOnly {
    access: String,
}

/// Checks credentials on the blocking pool: one check costs about a tenth of
/// a second of CPU. Unknown users cost the same, so timing reveals nothing.
fn check_credentials(state: &AppState, creds: &Credentials) -> Result<Option<User>, DbError> {
    let username = creds.username.clone();
    let found = state
        .db
        .run_here(|conn| users::find_with_password(conn, &username))?;
    Ok(match found {
        Some((user, hash)) if password::verify(&creds.password, &hash) && user.is_active => {
            Some(user)
        }
        Some(_) => None,
        None => {
            password::waste_time(&creds.password, state.settings.password_iterations);
            None
        }
    })
}

pub async fn obtain(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let creds = body.into_inner();
    if creds.username.is_empty() || creds.username.len() > 150 || creds.password.len() > 4096 {
        return Err(ApiError::validation(
            "username is 1 to 150 characters, password at most 4096",
        ));
    }
    let address = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    if let Some(wait) = state.throttle.check(&creds.username, &address) {
        return Err(ApiError::throttled(wait.as_secs().max(1)));
    }
    let checking = state.clone();
    let (user, creds) = web::block(move || (check_credentials(&checking, &creds), creds))
        .await
        .map_err(|_| ApiError::from(DbError::Cancelled))?;
    match user? {
        Some(user) => {
            state.throttle.record_success(&creds.username);
            Ok(HttpResponse::Ok().json(TokenPair {
                access: state.tokens.mint(user.id, TokenKind::Access),
                refresh: state.tokens.mint(user.id, TokenKind::Refresh),
            }))
        }
        None => {
            state.throttle.record_failure(&creds.username, &address);
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "no_active_account",
                "No active account found with the given credentials",
            ))
        }
    }
}

pub async fn refresh(
    state: web::Data<AppState>,
    body: web::Json<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    let verified = state
        .tokens
        .verify(&body.refresh, TokenKind::Refresh)
        .map_err(|e| match Refusal::from(e) {
            // Here the wrong kind is an access token offered as a refresh one.
            Refusal::TokenNotAccess => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "token_not_refresh",
                "a refresh token is required, not an access token",
            ),
            other => other.into(),
        })?;
    let user = load_active(&state.db, &state.users, verified.user_id).await?;
    Ok(HttpResponse::Ok().json(AccessOnly {
        access: state.tokens.mint(user.id, TokenKind::Access),
    }))
}
