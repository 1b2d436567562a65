//! Django's `pbkdf2_sha256$<iterations>$<salt>$<base64>` password hashes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::Sha256;
use std::sync::atomic::{AtomicU32, Ordering};

use actix_web::error::BlockingError;
use actix_web::web;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// A stored hash asking for more work than this is refused rather than
/// letting one row of the database stall a blocking thread for minutes.
pub const MAX_ITERATIONS: u32 = 50_000_000;

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

/// A stored `pbkdf2_sha256` hash, split into its parts.
pub struct Stored<'a> {
    pub iterations: u32,
    pub salt: &'a str,
    pub expected: &'a str,
}

/// Other Django hashers, unusable passwords (`!...`) and hashes asking for
/// more than [`MAX_ITERATIONS`] are `None`: they never match.
pub fn parse(stored: &str) -> Option<Stored<'_>> {
    let mut parts = stored.splitn(4, '$');
    let (Some("pbkdf2_sha256"), Some(iterations), Some(salt), Some(expected)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let iterations = iterations.parse::<u32>().ok()?;
    (1..=MAX_ITERATIONS)
        .contains(&iterations)
        .then_some(Stored {
            iterations,
            salt,
            expected,
        })
}

/// Checks a password against a stored hash (`None`: no such user) and spends
/// at least `floor` iterations whatever the outcome, so the answer's timing
/// tells nothing about the account. Returns whether it matched and the
/// iterations spent.
fn check_counted(password: &str, stored: Option<&str>, floor: u32) -> (bool, u32) {
    let (matched, spent) = match stored.and_then(parse) {
        Some(hash) => (
            derive(password, hash.salt, hash.iterations)
                .as_bytes()
                .ct_eq(hash.expected.as_bytes())
                .into(),
            hash.iterations,
        ),
        None => (false, 0),
    };
    // Django's harden_runtime: a cheaper path (no user, an unusable or foreign
    // hash, a hash from an older work factor) makes up the difference.
    let rest = floor.saturating_sub(spent);
    if rest > 0 {
        let _ = derive(password, "hub-equal-work", rest);
    }
    (matched, spent + rest)
}

/// Password checks for logins: at most one per core at a time, so a burst of
/// logins leaves the blocking pool's other threads (every handshake's
/// database work) free, and every check spends the same work.
pub struct Hashing {
    permits: Semaphore,
    /// The highest iteration count of any stored hash checked so far: an
    /// unknown user must cost what a real account's check costs, and a
    /// database Django wrote may hold more iterations than the hub's setting.
    highest_stored: AtomicU32,
}

impl Hashing {
    pub fn new(concurrent: usize) -> Self {
        Self {
            permits: Semaphore::new(concurrent.max(1)),
            highest_stored: AtomicU32::new(0),
        }
    }

    /// One check at a time per core: hashing is pure CPU work.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// The work every check spends: the configured count, or more once a
    /// stored hash has been seen that costs more.
    fn floor(&self, configured: u32) -> u32 {
        configured.max(self.highest_stored.load(Ordering::Relaxed))
    }

    /// Waits for a hashing slot, then checks `password` against `stored`
    /// (`None` for an unknown user) on the blocking pool. `Err` only when the
    /// blocking task was lost.
    pub async fn check(
        &self,
        password: String,
        stored: Option<String>,
        configured: u32,
    ) -> Result<bool, BlockingError> {
        if let Some(hash) = stored.as_deref().and_then(parse) {
            self.highest_stored
                .fetch_max(hash.iterations, Ordering::Relaxed);
        }
        let floor = self.floor(configured);
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        web::block(move || check_counted(&password, stored.as_deref(), floor).0).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_made_by_django_verifies() {
        // python3: hashlib.pbkdf2_hmac('sha256', b'correct horse', b'Qw3rTyS4lt', 1000)
        let django = "pbkdf2_sha256$1000$Qw3rTyS4lt$tzUK+8ACebcxqBShRpGFIw4fOeaMho8NaTL8iAsFO0E=";
        assert_eq!(
            check_counted("correct horse", Some(django), 1000),
            (true, 1000)
        );
        assert_eq!(
            check_counted("wrong horse", Some(django), 1000),
            (false, 1000)
        );
    }

    #[test]
    fn made_hashes_round_trip_and_foreign_formats_fail() {
        let h = make("pw", 1000);
        assert!(h.starts_with("pbkdf2_sha256$1000$"));
        assert!(check_counted("pw", Some(&h), 1000).0);
        for foreign in [
            unusable(),
            "argon2$argon2id$v=19$m=102400,t=2,p=8$c2FsdA$aGFzaA".into(),
            "pbkdf2_sha256$999999999$s$x".into(),
        ] {
            assert!(!check_counted("pw", Some(&foreign), 1000).0, "{foreign}");
        }
    }

    #[test]
    fn an_unusable_password_is_djangos_marker_and_never_the_same_twice() {
        // Django's make_password(None): "!" and 40 random letters and digits,
        // which Django's admin shows as "no password set".
        let (a, b) = (unusable(), unusable());
        for marker in [&a, &b] {
            let tail = marker.strip_prefix('!').expect("starts with !");
            assert_eq!(tail.len(), 40, "{marker}");
            assert!(tail.bytes().all(|c| c.is_ascii_alphanumeric()), "{marker}");
        }
        assert_ne!(a, b);
    }

    #[test]
    fn every_path_spends_at_least_the_floor_and_no_less_than_its_stored_count() {
        let floor = 2000;
        let made = |n| make("pw", n);
        for (what, stored, spent) in [
            ("unknown user", None, floor),
            ("unusable password", Some(unusable()), floor),
            ("foreign hasher", Some("argon2$x$y$z".to_owned()), floor),
            (
                "too many iterations",
                Some("pbkdf2_sha256$999999999$s$x".into()),
                floor,
            ),
            ("fewer iterations", Some(made(1000)), floor),
            ("the floor's count", Some(made(floor)), floor),
            ("more iterations", Some(made(3000)), 3000),
        ] {
            assert_eq!(
                check_counted("wrong", stored.as_deref(), floor),
                (false, spent),
                "{what}"
            );
        }
    }

    #[actix_web::test]
    async fn an_unknown_user_costs_as_much_as_the_costliest_stored_hash_seen() {
        let hashing = Hashing::new(1);
        assert_eq!(hashing.floor(1000), 1000);
        let stored = make("pw", 3000);
        assert!(
            hashing
                .check("pw".into(), Some(stored), 1000)
                .await
                .unwrap()
        );
        assert_eq!(hashing.floor(1000), 3000);
        assert_eq!(hashing.floor(5000), 5000);
        assert!(!hashing.check("pw".into(), None, 1000).await.unwrap());
    }
}
