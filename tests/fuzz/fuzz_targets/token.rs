//! The token path, from the request to the claims. A handshake's
//! `Authorization` header, `Sec-WebSocket-Protocol` offer and query string,
//! as any bytes, go through the guard's extraction and the codec; and
//! claims the hub's own key signed (so that the fuzzer gets past the
//! signature to the claims) go through the codec. Every one is refused or
//! accepted, never a panic.
#![no_main]

use std::sync::LazyLock;

use actix_web::http::Uri;
use actix_web::http::header::{AUTHORIZATION, HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use actix_web::test::TestRequest;
use hub::auth::guest_key;
use hub::auth::jwt::{TokenCodec, TokenKind};
use hub::config::Settings;
use hub::http::guard;
use libfuzzer_sys::fuzz_target;

const KEY: &str = "fuzzing-key";

static CODEC: LazyLock<TokenCodec> = LazyLock::new(|| {
    let settings = Settings::from_lookup(false, |name| {
        (name == "JWT_SIGNING_KEY").then(|| KEY.to_owned())
    })
    .expect("settings");
    TokenCodec::new(&settings.jwt)
});

/// A token and a guest key as the guard finds them in a handshake.
fn extracted(authorization: &[u8], protocols: &[u8], query: &str) {
    let mut req = TestRequest::default();
    let uri = format!("/ws/chat/lobby/?{query}");
    if Uri::try_from(uri.as_str()).is_ok() {
        req = req.uri(&uri);
    }
    if let Ok(value) = HeaderValue::from_bytes(authorization) {
        req = req.insert_header((AUTHORIZATION, value));
    }
    if let Ok(value) = HeaderValue::from_bytes(protocols) {
        req = req.insert_header((SEC_WEBSOCKET_PROTOCOL, value));
    }
    let req = req.to_http_request();
    if let Some(token) = guard::find_token(&req) {
        let _ = CODEC.verify(&token, TokenKind::Access);
    }
    if let Some(key) = guard::offered_after(&req, "guest") {
        let _ = guest_key::read(&CODEC, &key);
    }
}

fuzz_target!(|input: (&[u8], &[u8], &str, &[u8])| {
    let (authorization, protocols, query, claims) = input;
    extracted(authorization, protocols, query);
    // Any JSON the key signed, read as each kind of token.
    if let Ok(claims) = serde_json::from_slice::<serde_json::Value>(claims) {
        let signed = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes()),
        )
        .expect("HMAC signing of JSON cannot fail");
        for kind in [TokenKind::Access, TokenKind::Refresh] {
            let _ = CODEC.verify(&signed, kind);
        }
        let _ = guest_key::read(&CODEC, &signed);
    }
});
