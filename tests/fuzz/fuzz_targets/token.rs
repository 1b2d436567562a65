//! A token as a client sends it, whole, and claims the hub's own key has
//! signed (so that the fuzzer gets past the signature to the claims): the
//! codec must refuse or accept, never panic.
#![no_main]

use std::sync::LazyLock;

use hub::auth::guest_key;
use hub::auth::jwt::{TokenCodec, TokenKind};
use hub::config::Settings;
use libfuzzer_sys::fuzz_target;

const KEY: &str = "fuzzing-key";

static CODEC: LazyLock<TokenCodec> = LazyLock::new(|| {
    let settings = Settings::from_lookup(false, |name| {
        (name == "JWT_SIGNING_KEY").then(|| KEY.to_owned())
    })
    .expect("settings");
    TokenCodec::new(&settings.jwt)
});

fuzz_target!(|input: (&str, &[u8])| {
    let (token, claims) = input;
    let _ = CODEC.verify(token, TokenKind::Access);
    let _ = guest_key::read(&CODEC, token);
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
