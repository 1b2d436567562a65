//! Who a token speaks for: the token verified, then its user loaded through
//! diesel (or, on the handshake's fast path, from the short-lived cache).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Instant;

use crate::auth::cache::UserCache;
use crate::auth::jwt::{TokenCodec, TokenKind, Verified};
use crate::auth::refusal::Refusal;
use crate::db::Db;
use crate::db::users::{self, User};

/// A user proven by an access token.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: User,
    /// The token's expiry, seconds since the epoch.
    pub exp: i64,
    /// When `user` was read from the database: a socket counts its next
    /// re-check from here, so a cached user is never trusted for longer
    /// than one re-check interval in all.
    pub loaded_at: Instant,
}

/// Whether the last user load reached the database. Every open socket
/// re-checks its user, so an outage would log a line per socket per
/// interval; this logs the change of state once instead.
static DATABASE_REACHABLE: AtomicBool = AtomicBool::new(true);

/// Loads a user through diesel (never from the cache, which it refreshes)
/// and requires that it exists and is active.
pub async fn load_active(db: &Db, cache: &UserCache, user_id: i32) -> Result<User, Refusal> {
    let loaded = match db.run(move |conn| users::find(conn, user_id)).await {
        Ok(loaded) => {
            if changed(&DATABASE_REACHABLE, true) {
                tracing::info!("users load again: the database is reachable");
            }
            loaded
        }
        Err(err) => {
            if changed(&DATABASE_REACHABLE, false) {
                tracing::error!(error = %err, user_id, "loading users failed; logged once until it works again");
            }
            return Err(Refusal::Unavailable);
        }
    };
    match loaded {
        Some(user) => {
            cache.put(user.clone());
            active(user)
        }
        None => {
            cache.remove(user_id);
            Err(Refusal::UserNotFound)
        }
    }
}

/// Records whether the database was reached; `true` when that is news.
fn changed(state: &AtomicBool, reached: bool) -> bool {
    state.swap(reached, Relaxed) != reached
}

fn active(user: User) -> Result<User, Refusal> {
    if user.is_active {
        Ok(user)
    } else {
        Err(Refusal::UserInactive)
    }
}

/// The fast path: verifies the token and takes its user from the cache.
/// `Ok(None)` with the verified token means the user must be loaded.
pub fn authenticate_cached(
    tokens: &TokenCodec,
    cache: &UserCache,
    token: &str,
) -> Result<(Verified, Option<Authenticated>), Refusal> {
    let verified = tokens.verify(token, TokenKind::Access)?;
    let cached = match cache.get(verified.user_id) {
        Some((user, loaded_at)) => Some(Authenticated {
            user: active(user)?,
            exp: verified.exp,
            loaded_at,
        }),
        None => None,
    };
    Ok((verified, cached))
}

/// Verifies an access token and finds its user, cached or through diesel.
pub async fn authenticate(
    tokens: &TokenCodec,
    cache: &UserCache,
    db: &Db,
    token: &str,
) -> Result<Authenticated, Refusal> {
    match authenticate_cached(tokens, cache, token)? {
        (_, Some(auth)) => Ok(auth),
        (verified, None) => {
            let loaded_at = Instant::now();
            Ok(Authenticated {
                user: load_active(db, cache, verified.user_id).await?,
                exp: verified.exp,
                loaded_at,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_and_the_recovery_are_each_news_once() {
        let reachable = AtomicBool::new(true);
        assert!(!changed(&reachable, true), "reachable, as before");
        assert!(changed(&reachable, false), "the outage begins");
        assert!(!changed(&reachable, false), "the outage goes on");
        assert!(changed(&reachable, true), "it ends");
        assert!(!changed(&reachable, true));
    }
}
