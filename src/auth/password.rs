//! Django's `pbkdf2_sha256$<iterations>$<salt>$<base64>` password hashes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// A stored hash asking for more work than this is refused rather than
/// letting one row of the database stall a blocking thread for minutes.
const MAX_ITERATIONS: u32 = 50_000_000;

fn derive(password: &str, salt: &str, iterations: u32) -> String {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut out);
    STANDARD.encode(out)
}

/// Hashes a new password the way Django's default hasher does.
pub fn make(password: &str, iterations: u32) -> String {
    let salt: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(22)
        .map(char::from)
        .collect();
    format!(
        "pbkdf2_sha256${iterations}${salt}${}",
        derive(password, &salt, iterations)
    )
}

/// Django's marker for an account that cannot log in with a password.
pub fn unusable() -> String {
    let tail: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    format!("!{tail}")
}

/// Checks a password against a stored hash in constant time. Hashes of other
/// Django hashers, and unusable passwords, never match.
pub fn verify(password: &str, stored: &str) -> bool {
    let mut parts = stored.splitn(4, '$');
    let (Some("pbkdf2_sha256"), Some(iterations), Some(salt), Some(expected)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(iterations) = iterations.parse::<u32>() else {
        return false;
    };
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return false;
    }
    derive(password, salt, iterations)
        .as_bytes()
        .ct_eq(expected.as_bytes())
        .into()
}

/// Spends the same time as a real check, for logins of unknown users, so the
/// response time does not tell which usernames exist.
pub fn waste_time(password: &str, iterations: u32) {
    let _ = derive(password, "hub-no-such-user", iterations);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_made_by_django_verifies() {
        // python3: hashlib.pbkdf2_hmac('sha256', b'correct horse', b'Qw3rTyS4lt', 1000)
        let django = "pbkdf2_sha256$1000$Qw3rTyS4lt$tzUK+8ACebcxqBShRpGFIw4fOeaMho8NaTL8iAsFO0E=";
        assert!(verify("correct horse", django));
        assert!(!verify("wrong horse", django));
    }

    #[test]
    fn made_hashes_round_trip_and_foreign_formats_fail() {
        let h = make("pw", 1000);
        assert!(h.starts_with("pbkdf2_sha256$1000$"));
        assert!(verify("pw", &h));
        assert!(!verify("pw", &unusable()));
        assert!(!verify(
            "pw",
            "argon2$argon2id$v=19$m=102400,t=2,p=8$c2FsdA$aGFzaA"
        ));
        assert!(!verify("pw", "pbkdf2_sha256$999999999$s$x"));
    }
}
