//! The text of a `dns.import`: a master file a customer pastes. What it
//! accepts, exported as `dns.export` writes it, must read back as the same
//! records: an export is the backup a customer imports later.
#![no_main]

use std::sync::LazyLock;

use hub::config::Soa;
use hub::db::dns::Record;
use hub::dns::master;
use hub::dns::validate::Origin;
use libfuzzer_sys::fuzz_target;

static ORIGIN: LazyLock<Origin> =
    LazyLock::new(|| Origin::parse("zone", "example.com").expect("a zone name"));

fuzz_target!(|text: &str| {
    let Ok(read) = master::read(&ORIGIN, text) else {
        return;
    };
    let stored: Vec<Record> = (1..)
        .zip(&read)
        .map(|(id, (_, data))| Record {
            id,
            zone_id: 1,
            data: data.clone(),
            version: 1,
        })
        .collect();
    let exported = master::write(&ORIGIN, &Soa::default(), 1, &stored);
    let again = master::read(&ORIGIN, &exported)
        .unwrap_or_else(|e| panic!("the export of {text:?} does not read back: {e:?}\n{exported}"));
    let records = |r: &[(usize, _)]| r.iter().map(|(_, d)| d).cloned().collect::<Vec<_>>();
    assert_eq!(records(&read), records(&again), "{exported}");
});
