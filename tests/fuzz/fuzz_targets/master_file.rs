//! The text of a `dns.import`: a master file a customer pastes.
#![no_main]

use std::sync::LazyLock;

use hub::dns::master;
use hub::dns::validate::Origin;
use libfuzzer_sys::fuzz_target;

static ORIGIN: LazyLock<Origin> =
    LazyLock::new(|| Origin::parse("zone", "example.com").expect("a zone name"));

fuzz_target!(|text: &str| {
    let _ = master::read(&ORIGIN, text);
});
