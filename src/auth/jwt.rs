//! Tokens exactly as djangorestframework-simplejwt 5.x writes and checks them,
//! so one minted by the Django backend works here unchanged and the reverse.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::JwtSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    fn claim(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }
}

/// Why a token was refused; each maps to one refusal code of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is invalid")]
    Invalid,
    #[error("token has expired")]
    Expired,
    #[error("token has the wrong type")]
    WrongKind,
}

/// A token that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub user_id: i32,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

#[derive(Serialize)]
struct OutClaims<'a> {
    token_type: &'a str,
    exp: i64,
    iat: i64,
    jti: String,
    /// simplejwt 5.5.1 writes the id as a string; so does the hub.
    user_id: String,
}

#[derive(Deserialize)]
struct InClaims {
    token_type: Option<String>,
    exp: i64,
    jti: Option<String>,
    #[serde(deserialize_with = "user_id_claim")]
    user_id: i32,
}

/// simplejwt before 5.5.1 wrote the id as a number, from 5.5.1 as a string.
fn user_id_claim<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(i64),
        Text(String),
    }
    let raw = Raw::deserialize(d)?;
    let number = match raw {
        Raw::Number(n) => n,
        Raw::Text(s) => s
            .parse::<i64>()
            .map_err(|_| serde::de::Error::custom("user_id is not numeric"))?,
    };
    i32::try_from(number).map_err(|_| serde::de::Error::custom("user_id out of range"))
}

/// Signs and verifies the hub's tokens with one key and algorithm.
pub struct TokenCodec {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    header: Header,
    access_lifetime: Duration,
    refresh_lifetime: Duration,
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl TokenCodec {
    pub fn new(settings: &JwtSettings) -> Self {
        let mut validation = Validation::new(settings.algorithm);
        // simplejwt allows no leeway; jsonwebtoken's default is 60 s.
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp"]);
        Self {
            encoding: EncodingKey::from_secret(settings.key.as_bytes()),
            decoding: DecodingKey::from_secret(settings.key.as_bytes()),
            validation,
            header: Header::new(settings.algorithm),
            access_lifetime: settings.access_lifetime,
            refresh_lifetime: settings.refresh_lifetime,
        }
    }

    /// Mints a token of the given kind for a user, valid from now.
    pub fn mint(&self, user_id: i32, kind: TokenKind) -> String {
        let lifetime = match kind {
            TokenKind::Access => self.access_lifetime,
            TokenKind::Refresh => self.refresh_lifetime,
        };
        let now = now_secs();
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
        self.mint_with_expiry(user_id, kind, now, now.saturating_add(lifetime))
    }

    /// Mints with explicit times: for operators' tooling and for tests of expiry.
    pub fn mint_with_expiry(&self, user_id: i32, kind: TokenKind, iat: i64, exp: i64) -> String {
        let mut jti = [0u8; 16];
        rand::rng().fill_bytes(&mut jti);
        let claims = OutClaims {
            token_type: kind.claim(),
            exp,
            iat,
            jti: jti.iter().map(|b| format!("{b:02x}")).collect(),
            user_id: user_id.to_string(),
        };
        jsonwebtoken::encode(&self.header, &claims, &self.encoding)
            .expect("HMAC signing of plain claims cannot fail")
    }

    /// Checks signature, algorithm, expiry (no leeway), `jti` and type.
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Verified, TokenError> {
        let data = jsonwebtoken::decode::<InClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        let claims = data.claims;
        // jsonwebtoken accepts exp == now; simplejwt treats it as expired.
        if claims.exp <= now_secs() {
            return Err(TokenError::Expired);
        }
        if claims.jti.as_deref().is_none_or(str::is_empty) {
            return Err(TokenError::Invalid);
        }
        match claims.token_type.as_deref() {
            None => Err(TokenError::Invalid),
            Some(t) if t != kind.claim() => Err(TokenError::WrongKind),
            Some(_) => Ok(Verified {
                user_id: claims.user_id,
                exp: claims.exp,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use jsonwebtoken::Algorithm;

    fn codec(key: &str) -> TokenCodec {
        TokenCodec::new(&JwtSettings {
            key: Secret::new(key.as_bytes().to_vec()),
            key_generated: false,
            algorithm: Algorithm::HS256,
            access_lifetime: Duration::from_secs(300),
            refresh_lifetime: Duration::from_secs(86_400),
        })
    }

    /// Signs arbitrary claims, as another issuer (or an attacker) would.
    fn sign(key: &str, claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn a_minted_access_token_verifies_and_carries_the_user() {
        let c = codec("k");
        let v = c
            .verify(&c.mint(7, TokenKind::Access), TokenKind::Access)
            .unwrap();
        assert_eq!(v.user_id, 7);
    }

    #[test]
    fn user_id_may_be_a_number_or_a_numeric_string() {
        let c = codec("k");
        let exp = now_secs() + 60;
        for id in [serde_json::json!(5), serde_json::json!("5")] {
            let t = sign(
                "k",
                serde_json::json!({"token_type":"access","exp":exp,"iat":0,"jti":"ab","user_id":id}),
            );
            assert_eq!(c.verify(&t, TokenKind::Access).unwrap().user_id, 5);
        }
        let t = sign(
            "k",
            serde_json::json!({"token_type":"access","exp":exp,"jti":"ab","user_id":"x5"}),
        );
        assert_eq!(c.verify(&t, TokenKind::Access), Err(TokenError::Invalid));
    }

    #[test]
    fn refresh_expired_foreign_and_jti_less_tokens_are_refused() {
        let c = codec("k");
        assert_eq!(
            c.verify(&c.mint(1, TokenKind::Refresh), TokenKind::Access),
            Err(TokenError::WrongKind)
        );
        let now = now_secs();
        assert_eq!(
            c.verify(
                &c.mint_with_expiry(1, TokenKind::Access, now - 10, now - 1),
                TokenKind::Access
            ),
            Err(TokenError::Expired)
        );
        assert_eq!(
            codec("other").verify(&c.mint(1, TokenKind::Access), TokenKind::Access),
            Err(TokenError::Invalid)
        );
        let t = sign(
            "k",
            serde_json::json!({"token_type":"access","exp":now+60,"user_id":1}),
        );
        assert_eq!(c.verify(&t, TokenKind::Access), Err(TokenError::Invalid));
        assert_eq!(
            c.verify("not.a.jwt", TokenKind::Access),
            Err(TokenError::Invalid)
        );
    }
}
