//! Micro-benchmarks of the pieces every handshake and every broadcast pays
//! for. Run with `cargo bench --bench hot_paths`; CI only builds them.

// A test may unwrap and cast freely: a failure is a failing test.
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hub::auth::cache::UserCache;
use hub::auth::jwt::{TokenCodec, TokenKind};
use hub::auth::users::authenticate_cached;
use hub::chat::frames::{Who, message_frame};
use hub::config::{JwtSettings, Secret};
use hub::db::users::User;

fn codec() -> TokenCodec {
    TokenCodec::new(&JwtSettings {
        key: Secret::new(b"a-django-secret-key-of-typical-length-0123456789".to_vec()),
        key_generated: false,
        algorithm: jsonwebtoken::Algorithm::HS256,
        access_lifetime: Duration::from_secs(300),
        refresh_lifetime: Duration::from_secs(86_400),
    })
}

fn verify_access_token(c: &mut Criterion) {
    let codec = codec();
    let token = codec.mint(7, TokenKind::Access);
    c.bench_function("verify an access token", |b| {
        b.iter(|| codec.verify(black_box(&token), TokenKind::Access).unwrap())
    });
}

fn guard_with_warm_cache(c: &mut Criterion) {
    let codec = codec();
    let cache = UserCache::new(Duration::from_secs(60), 100_000);
    for id in 1..=10_000 {
        cache.put(User {
            id,
            username: format!("user{id}"),
            is_active: true,
            is_staff: false,
        });
    }
    let token = codec.mint(4242, TokenKind::Access);
    c.bench_function("guard: token and cached user", |b| {
        b.iter(|| {
            let (_, auth) = authenticate_cached(&codec, &cache, black_box(&token)).unwrap();
            auth.expect("warm")
        })
    });
}

fn build_broadcast_frame(c: &mut Criterion) {
    let who = Who {
        id: Some(7),
        username: "alice".into(),
        is_staff: false,
    };
    let body = "a chat message of an ordinary length, about sixty characters";
    let at = chrono::Utc::now().naive_utc();
    c.bench_function("build one chat.message frame", |b| {
        b.iter(|| message_frame(black_box(42), "lobby", &who, black_box(body), at))
    });
    let frame = message_frame(42, "lobby", &who, body, at);
    c.bench_function("share a built frame with one more member", |b| {
        b.iter(|| black_box(&frame).clone())
    });
}

criterion_group!(
    benches,
    verify_access_token,
    guard_with_warm_cache,
    build_broadcast_frame
);
criterion_main!(benches);
