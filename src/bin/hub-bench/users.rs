//! The benchmark's users: `bench-00000`, `bench-00001`, … created in the
//! hub's database (from `DATABASE_URL`) when missing, and their tokens.

use std::collections::HashMap;

use diesel::prelude::*;
use hub::auth::jwt::{TokenCodec, TokenKind};
use hub::config::{DatabaseUrl, Settings};
use hub::db::schema::auth_user;
use hub::db::{self, Db, users};

fn name(i: usize) -> String {
    format!("bench-{i:05}")
}

/// The ids of the first `n` benchmark users, creating the missing ones.
pub fn ensure(n: usize) -> anyhow::Result<Vec<i32>> {
    let url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| hub::config::DEFAULT_DATABASE_URL.into());
    let db = Db::new(db::pool(
        &DatabaseUrl::parse(&url)?,
        1,
        db::DEFAULT_POOL_TIMEOUT,
    )?);
    db.migrate()?;
    let existing: HashMap<String, i32> = db
        .run_here(|conn| {
            auth_user::table
                .filter(auth_user::username.like("bench-%"))
                .select((auth_user::username, auth_user::id))
                .load::<(String, i32)>(conn)
        })?
        .into_iter()
        .collect();
    let missing: Vec<String> = (0..n)
        .map(name)
        .filter(|u| !existing.contains_key(u))
        .collect();
    let created: HashMap<String, i32> = db.run_here(|conn| {
        conn.transaction(|conn| {
            let hash = hub::auth::password::unusable();
            missing
                .iter()
                .map(|u| users::create(conn, u, &hash, false).map(|id| (u.clone(), id)))
                .collect()
        })
    })?;
    Ok((0..n)
        .map(|i| {
            let u = name(i);
            existing
                .get(&u)
                .or_else(|| created.get(&u))
                .copied()
                .expect("created above")
        })
        .collect())
}

/// Mints tokens with the hub's key (`JWT_SIGNING_KEY` or `SECRET_KEY`).
pub fn codec() -> anyhow::Result<TokenCodec> {
    let settings = Settings::from_env(false)?;
    anyhow::ensure!(
        !settings.jwt.key_generated,
        "set JWT_SIGNING_KEY to the hub's key so the benchmark can mint tokens"
    );
    Ok(TokenCodec::new(&settings.jwt))
}

pub fn access_token(codec: &TokenCodec, user_id: i32) -> String {
    codec.mint(user_id, TokenKind::Access)
}
