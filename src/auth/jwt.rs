//! Tokens exactly as djangorestframework-simplejwt 5.x writes and checks them,
//! so one minted by the Django backend works here unchanged and the reverse.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::de::DeserializeOwned;
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
    /// simplejwt requires `exp` ("Token has no 'exp' claim").
    exp: NumericDate,
    #[serde(default, deserialize_with = "present_date")]
    iat: Option<NumericDate>,
    #[serde(default, deserialize_with = "present_date")]
    nbf: Option<NumericDate>,
    jti: Option<String>,
    #[serde(deserialize_with = "user_id_claim")]
    user_id: i32,
}

/// A time claim as PyJWT 2.x reads it: any JSON number, truncated to whole
/// seconds (`int(payload["exp"])`), so a float `exp` another issuer writes is
/// accepted. A string, boolean or other value is refused: simplejwt itself
/// fails on a non-numeric `exp`, and no issuer writes `iat` or `nbf` as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NumericDate(i64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let number = serde_json::Number::deserialize(d)?;
        let secs = match (number.as_i64(), number.as_f64()) {
            (Some(n), _) => n,
            // `as` saturates (the lint's truncation is the point here): a date
            // beyond i64 seconds is as good as never.
            #[allow(clippy::cast_possible_truncation)]
            (None, Some(f)) if f.is_finite() => f.trunc() as i64,
            _ => return Err(serde::de::Error::custom("time claim out of range")),
        };
        Ok(Self(secs))
    }
}

/// An optional time claim that, when present, must be a number: PyJWT
/// refuses `"iat": null` as it refuses any other non-number.
fn present_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NumericDate>, D::Error> {
    NumericDate::deserialize(d).map(Some)
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
        // jsonwebtoken checks only the signature and algorithm here: its time
        // checks round a float `exp` and ignore `iat`, where PyJWT truncates
        // and refuses an `iat` in the future, so `verify` does them itself.
        // PyJWT checks `aud` only when simplejwt has an audience; the hub has none.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims::<&str>(&[]);
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
        self.sign(&claims)
    }

    /// Signs claims of the hub's own (a guest's key) with the tokens' key
    /// and algorithm.
    pub(crate) fn sign(&self, claims: &impl Serialize) -> String {
        jsonwebtoken::encode(&self.header, claims, &self.encoding)
            .expect("HMAC signing of plain claims cannot fail")
    }

    /// The claims of a token signed with this key and algorithm; the
    /// caller checks everything else, times included.
    pub(crate) fn signed_claims<T: DeserializeOwned>(&self, token: &str) -> Option<T> {
        jsonwebtoken::decode::<T>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
    }

    /// Checks signature, algorithm, the time claims as PyJWT does under
    /// simplejwt (no leeway), `jti` and type.
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Verified, TokenError> {
        let claims = self
            .signed_claims::<InClaims>(token)
            .ok_or(TokenError::Invalid)?;
        // PyJWT compares whole seconds with a fractional `now`: `exp <= now`
        // is expired and `iat > now` or `nbf > now` is not yet valid, which
        // for whole seconds is the same as comparing with the floor of now.
        let now = now_secs();
        let immature = |claim: Option<NumericDate>| claim.is_some_and(|NumericDate(t)| t > now);
        if immature(claims.iat) || immature(claims.nbf) {
            return Err(TokenError::Invalid);
        }
        let NumericDate(exp) = claims.exp;
        if exp <= now {
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
                exp,
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::cast_precision_loss)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Secret;
    use jsonwebtoken::Algorithm;

    /// A codec with this key and the default lifetimes.
    pub(crate) fn codec(key: &str) -> TokenCodec {
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

    fn claims_with(extra: serde_json::Value) -> serde_json::Value {
        let mut claims = serde_json::json!({
            "token_type": "access", "exp": now_secs() + 60, "jti": "ab", "user_id": "3"
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    }

    #[test]
    fn a_float_exp_is_accepted_and_truncated_as_pyjwt_does() {
        let c = codec("k");
        let exp = now_secs() + 60;
        let t = sign(
            "k",
            claims_with(serde_json::json!({"exp": exp as f64 + 0.75})),
        );
        assert_eq!(c.verify(&t, TokenKind::Access).unwrap().exp, exp);
        // int(now + 0.5) == now, which PyJWT counts as expired.
        let t = sign(
            "k",
            claims_with(serde_json::json!({"exp": now_secs() as f64 + 0.5})),
        );
        assert_eq!(c.verify(&t, TokenKind::Access), Err(TokenError::Expired));
    }

    #[test]
    fn iat_and_nbf_in_the_future_are_refused_and_in_the_past_accepted() {
        let c = codec("k");
        let now = now_secs();
        for claim in ["iat", "nbf"] {
            let past = sign("k", claims_with(serde_json::json!({claim: now - 5})));
            assert!(
                c.verify(&past, TokenKind::Access).is_ok(),
                "{claim} in the past"
            );
            let now_float = sign(
                "k",
                claims_with(serde_json::json!({claim: now as f64 + 0.9})),
            );
            assert!(
                c.verify(&now_float, TokenKind::Access).is_ok(),
                "{claim} now"
            );
            let future = sign("k", claims_with(serde_json::json!({claim: now + 30})));
            assert_eq!(
                c.verify(&future, TokenKind::Access),
                Err(TokenError::Invalid),
                "{claim} in the future"
            );
        }
    }

    #[test]
    fn non_numeric_time_claims_are_refused() {
        let c = codec("k");
        for claims in [
            serde_json::json!({"iat": "yesterday"}),
            serde_json::json!({"iat": true}),
            serde_json::json!({"iat": null}),
            serde_json::json!({"nbf": [1]}),
            serde_json::json!({"exp": "2000000000"}),
        ] {
            let t = sign("k", claims_with(claims.clone()));
            assert_eq!(
                c.verify(&t, TokenKind::Access),
                Err(TokenError::Invalid),
                "{claims}"
            );
        }
        let mut no_exp = claims_with(serde_json::json!({}));
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            c.verify(&sign("k", no_exp), TokenKind::Access),
            Err(TokenError::Invalid)
        );
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
