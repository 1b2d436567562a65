//! A record as the DNS panel sends it, checked against its zone.
#![no_main]

use std::sync::LazyLock;

use hub::dns::validate::{self, Origin};
use libfuzzer_sys::fuzz_target;

static ORIGIN: LazyLock<Origin> =
    LazyLock::new(|| Origin::parse("zone", "example.com").expect("a zone name"));

fuzz_target!(|data: &[u8]| {
    if let Ok(sent) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = validate::record(&ORIGIN, &sent);
    }
});
