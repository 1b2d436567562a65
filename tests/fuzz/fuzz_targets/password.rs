//! A stored password hash as Django's `auth_user.password` may hold it:
//! any text, since the table is shared with Django and its admin. The parse
//! must take only `pbkdf2_sha256` within the iteration bound, and never
//! panic.
#![no_main]

use hub::auth::password::{self, MAX_ITERATIONS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|stored: &str| {
    if let Some(hash) = password::parse(stored) {
        assert!((1..=MAX_ITERATIONS).contains(&hash.iterations), "{stored:?}");
        assert!(!hash.salt.contains('$'), "{stored:?}");
        assert_eq!(
            stored,
            format!("pbkdf2_sha256${}${}${}", stored.split('$').nth(1).unwrap(), hash.salt, hash.expected),
            "the parts are the text's own, in order"
        );
    }
});
