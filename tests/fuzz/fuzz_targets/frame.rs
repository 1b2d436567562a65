//! A socket's frame as a client sends it: the envelope every endpoint reads
//! first, and a body read as JSON the way endpoints read theirs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = hub::ws::frames::parse_envelope(text);
    let _ = hub::ws::frames::parse_body::<serde_json::Value>(text);
});
