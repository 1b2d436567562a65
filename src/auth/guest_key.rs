//! A guest's key: the hub's signed word that a guest chats under a name, so
//! that the guest's tab gets the same name back when it reconnects. It is a
//! JWT signed like the hub's tokens, but of `token_type` `guest` and without
//! `user_id`: no check of an access or refresh token, the hub's or Django's,
//! takes it, and it names no user.

use serde::{Deserialize, Serialize};

use super::jwt::{TokenCodec, now_secs};

/// How long a key is good for after the join that gave it: long enough for
/// a tab to come back after a restart or a night's sleep, and each join
/// gives a new one.
pub const LIFETIME_SECS: i64 = 24 * 60 * 60;

const TOKEN_TYPE: &str = "guest";

/// A guest: its id (what makes its sockets one person) and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestIdentity {
    pub id: String,
    pub name: String,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    token_type: String,
    guest_id: String,
    name: String,
    iat: i64,
    exp: i64,
}

/// `guest-` and six lower-case hex digits, as the hub draws them.
pub fn is_guest_name(name: &str) -> bool {
    name.strip_prefix("guest-")
        .is_some_and(|hex| hex.len() == 6 && is_lower_hex(hex))
}

/// Sixteen lower-case hex digits, as the hub draws them.
pub fn is_guest_id(id: &str) -> bool {
    id.len() == 16 && is_lower_hex(id)
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A key for this guest, good for [`LIFETIME_SECS`] from now.
pub fn mint(codec: &TokenCodec, guest: &GuestIdentity) -> String {
    let iat = now_secs();
    codec.sign(&Claims {
        token_type: TOKEN_TYPE.to_owned(),
        guest_id: guest.id.clone(),
        name: guest.name.clone(),
        iat,
        exp: iat.saturating_add(LIFETIME_SECS),
    })
}

/// The guest a key names, if the hub signed it and it has not expired;
/// anything else (forged, expired, another kind of token) names no one.
pub fn read(codec: &TokenCodec, key: &str) -> Option<GuestIdentity> {
    let claims = codec.signed_claims::<Claims>(key)?;
    let now = now_secs();
    let valid = claims.token_type == TOKEN_TYPE
        && claims.iat <= now
        && now < claims.exp
        && is_guest_id(&claims.guest_id)
        && is_guest_name(&claims.name);
    valid.then_some(GuestIdentity {
        id: claims.guest_id,
        name: claims.name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::tests::codec;
    use crate::auth::jwt::{TokenError, TokenKind};

    fn guest() -> GuestIdentity {
        GuestIdentity {
            id: "0123456789abcdef".into(),
            name: "guest-3f9a0c".into(),
        }
    }

    #[test]
    fn a_key_names_its_guest_again() {
        let c = codec("k");
        assert_eq!(read(&c, &mint(&c, &guest())), Some(guest()));
    }

    #[test]
    fn a_forged_expired_or_foreign_key_names_no_one() {
        let c = codec("k");
        assert_eq!(read(&codec("other"), &mint(&c, &guest())), None);
        assert_eq!(read(&c, "not.a.key"), None);
        assert_eq!(read(&c, &c.mint(1, TokenKind::Access)), None);
        let now = now_secs();
        let claims = |token_type: &str, exp: i64, name: &str| Claims {
            token_type: token_type.into(),
            guest_id: guest().id,
            name: name.into(),
            iat: now - 10,
            exp,
        };
        assert_eq!(
            read(&c, &c.sign(&claims("guest", now, "guest-3f9a0c"))),
            None
        );
        assert_eq!(
            read(&c, &c.sign(&claims("access", now + 60, "guest-3f9a0c"))),
            None
        );
        assert_eq!(
            read(&c, &c.sign(&claims("guest", now + 60, "<b>x</b>"))),
            None
        );
        assert!(read(&c, &c.sign(&claims("guest", now + 60, "guest-3f9a0c"))).is_some());
    }

    #[test]
    fn a_key_is_good_for_the_24_hours_the_protocol_promises() {
        let c = codec("k");
        let claims: Claims = c.signed_claims(&mint(&c, &guest())).unwrap();
        assert_eq!(claims.exp - claims.iat, 24 * 60 * 60);
        assert!((claims.iat - now_secs()).abs() <= 1);
    }

    #[test]
    fn a_key_is_never_an_access_or_refresh_token() {
        let c = codec("k");
        let key = mint(&c, &guest());
        for kind in [TokenKind::Access, TokenKind::Refresh] {
            assert_eq!(c.verify(&key, kind), Err(TokenError::Invalid), "{kind:?}");
        }
    }

    #[test]
    fn names_and_ids_are_the_hubs_shapes() {
        assert!(is_guest_name("guest-00ff9a"));
        for bad in ["guest-00FF9A", "guest-00ff9", "guest-00ff9a0", "alice", ""] {
            assert!(!is_guest_name(bad), "{bad}");
        }
        assert!(is_guest_id("0123456789abcdef"));
        assert!(!is_guest_id("0123456789abcde"));
    }
}
