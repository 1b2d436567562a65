//! DNS panels: zones and records through `/ws/dns/`, the rules a record
//! must follow, optimistic versions and serials, and live pushes to exactly
//! the panels that may see a zone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use domain::base::name::ToLabelIter;
use domain::rdata::ZoneRecordData;
use domain::zonefile::inplace::{Entry, ScannedRecord, Zonefile};
use serde_json::{Value, json};

use crate::helpers::{Backend, Client, TestApp};
use crate::on_both_backends;

on_both_backends!(
    both_tabs_of_the_owner_get_each_change_and_another_users_panel_gets_nothing,
    a_zone_another_user_owns_answers_exactly_as_a_missing_one,
    staff_see_and_change_every_zone_and_get_every_push,
    only_staff_create_a_zone_for_another_user,
    a_stale_version_gets_a_conflict_with_the_current_record,
    every_change_bumps_the_serial_and_a_stale_serial_cannot_delete_the_zone,
    records_that_break_a_rule_are_refused_with_the_field_and_nothing_is_stored,
    cnames_stand_alone_targets_are_not_aliases_and_duplicates_are_refused,
    names_are_kept_in_ascii_and_answered_relative_with_their_fqdn,
    a_panel_whose_user_loses_or_gains_staff_stays_open_and_is_told_to_list_its_zones_again,
    a_batch_applies_every_change_with_one_serial_bump,
    a_batch_with_bad_changes_applies_nothing_and_lists_every_failure_by_index,
    a_batch_naming_an_old_serial_gets_a_conflict,
    unknown_types_and_malformed_requests_are_answered_with_error_frames,
    the_history_pages_back_from_the_newest_change_with_who_and_what,
    an_export_is_a_master_file_with_the_current_serial_and_every_record,
    an_import_makes_the_zone_hold_the_file_with_one_serial_bump,
    an_import_with_bad_lines_applies_nothing_and_lists_every_failure_by_line,
    changes_racing_on_one_zone_each_get_a_serial_of_their_own,
    an_export_read_by_an_independent_parser_holds_exactly_the_listed_records,
    two_tabs_updating_one_record_at_once_see_exactly_one_win_and_one_conflict_every_time,
    a_hundred_and_twenty_changes_in_one_day_get_strictly_increasing_serials_past_nn_99,
);

const QUIET: Duration = Duration::from_millis(300);

pub(crate) async fn panel(app: &TestApp, user_id: i32) -> Client {
    app.connect(&format!("/ws/dns/?token={}", app.token(user_id)))
        .await
}

/// A hub whose per-connection rate limit lets a test send a long run of
/// writes without being told to slow down.
async fn spawn_unthrottled(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        &[("HUB_RATE_PER_SEC", "1000"), ("HUB_RATE_BURST", "1000")],
    )
    .await
}

/// Sends a request with a fresh `ref`, which it returns.
async fn send_request(client: &mut Client, mut request: Value) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let reference = format!("r{}", NEXT.fetch_add(1, Ordering::Relaxed));
    request["ref"] = json!(reference);
    client.send(request).await;
    reference
}

/// Sends a request with a fresh `ref` and returns the frame answering it;
/// pushes that arrive first are kept for the next reads.
/// Waits until `client` has the push of the change that left `zone` at
/// `serial`. The broadcaster hands a change to every open panel at once, so
/// a panel opened after this gets no push of it; before, it may (a push may
/// trail the reply to the change).
pub(crate) async fn pushed(client: &mut Client, zone: &str, serial: i64) {
    loop {
        let push = client.recv_type("dns.changed").await;
        if push["zone"] == zone && push["serial"] == serial {
            return;
        }
    }
}

pub(crate) async fn ask(client: &mut Client, request: Value) -> Value {
    let reference = send_request(client, request).await;
    client.reply_to(&reference).await
}

/// A request that must succeed; its `dns.result`.
pub(crate) async fn ok(client: &mut Client, request: Value) -> Value {
    let reply = ask(client, request).await;
    assert_eq!(reply["type"], "dns.result", "{reply}");
    reply
}

/// A request that must be refused with `code`; its error frame.
pub(crate) async fn refused(client: &mut Client, request: Value, code: &str) -> Value {
    let reply = ask(client, request).await;
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str()),
        (Some("error"), Some(code)),
        "{reply}"
    );
    reply
}

pub(crate) async fn create_zone(client: &mut Client, name: &str) -> Value {
    ok(client, json!({"type": "dns.zone.create", "name": name})).await["zone"].clone()
}

pub(crate) async fn create(client: &mut Client, zone: &str, record: Value) -> Value {
    ok(
        client,
        json!({"type": "dns.create", "zone": zone, "record": record}),
    )
    .await
}

pub(crate) async fn records(client: &mut Client, zone: &str) -> Vec<Value> {
    ok(client, json!({"type": "dns.list", "zone": zone})).await["records"]
        .as_array()
        .unwrap()
        .clone()
}

async fn both_tabs_of_the_owner_get_each_change_and_another_users_panel_gets_nothing(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let bob = app.create_user("bob", false);
    let mut tab1 = panel(&app, alice).await;
    let mut tab2 = panel(&app, alice).await;
    let mut bobs = panel(&app, bob).await;

    let zone = create_zone(&mut tab1, "example.com").await;
    assert_eq!(zone["owner"], json!({"id": alice, "username": "alice"}));
    for tab in [&mut tab1, &mut tab2] {
        let pushed = tab.recv_type("dns.zone.created").await;
        assert_eq!(pushed["zone"]["name"], "example.com");
    }

    let reply = create(
        &mut tab1,
        "example.com",
        json!({"name": "www", "type": "A", "content": "192.0.2.1", "ttl": 300}),
    )
    .await;
    let record = &reply["record"];
    assert_eq!(record["name"], "www");
    assert_eq!(record["fqdn"], "www.example.com.");
    assert_eq!(record["version"], 1);
    assert!(reply["serial"].as_i64().unwrap() > zone["serial"].as_i64().unwrap());
    for tab in [&mut tab1, &mut tab2] {
        let pushed = tab.recv_type("dns.changed").await;
        assert_eq!(pushed["zone"], "example.com");
        assert_eq!(pushed["serial"], reply["serial"]);
        assert_eq!(pushed["by"], json!({"id": alice, "username": "alice"}));
        assert_eq!(pushed["changes"][0]["action"], "created");
        assert_eq!(pushed["changes"][0]["record"], *record);
    }
    bobs.silent_for(QUIET).await;
}

async fn a_zone_another_user_owns_answers_exactly_as_a_missing_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let bob = app.create_user("bob", false);
    let mut alices = panel(&app, alice).await;
    let mut bobs = panel(&app, bob).await;
    create_zone(&mut alices, "example.com").await;
    let id = create(
        &mut alices,
        "example.com",
        json!({"name": "www", "type": "A", "content": "192.0.2.1"}),
    )
    .await["record"]["id"]
        .clone();
    // Neither the zone's creation nor its first record reached bob.
    bobs.silent_for(QUIET).await;

    let mut answers = Vec::new();
    for zone in ["example.com", "missing.example"] {
        let requests = [
            json!({"type": "dns.list", "zone": zone}),
            json!({"type": "dns.create", "zone": zone,
                   "record": {"name": "x", "type": "A", "content": "192.0.2.9"}}),
            json!({"type": "dns.zone.delete", "zone": zone, "serial": 1}),
            json!({"type": "dns.batch", "zone": zone, "serial": 1,
                   "changes": [{"op": "delete", "id": 1}]}),
            json!({"type": "dns.history", "zone": zone}),
            json!({"type": "dns.export", "zone": zone}),
            json!({"type": "dns.import", "zone": zone, "serial": 1,
                   "text": "x A 192.0.2.9"}),
        ];
        let mut replies = Vec::new();
        for request in requests {
            let mut reply = refused(&mut bobs, request, "not_found").await;
            assert!(reply.get("serial").is_none(), "{reply}");
            reply.as_object_mut().unwrap().remove("ref");
            replies.push(reply);
        }
        answers.push(replies);
    }
    assert_eq!(answers[0], answers[1], "no answer tells the zone exists");
    for request in [
        json!({"type": "dns.update", "id": id, "record": {"content": "192.0.2.2"}}),
        json!({"type": "dns.delete", "id": id}),
        json!({"type": "dns.delete", "id": 999_999}),
    ] {
        refused(&mut bobs, request, "not_found").await;
    }
    let zones = ok(&mut bobs, json!({"type": "dns.zones"})).await;
    assert_eq!(zones["zones"], json!([]));
    assert_eq!(records(&mut alices, "example.com").await.len(), 1);
    // Nothing bob tried changed the zone, and alice's next change is
    // pushed to her panel only.
    let serial = create(
        &mut alices,
        "example.com",
        json!({"name": "ftp", "type": "A", "content": "192.0.2.2"}),
    )
    .await["serial"]
        .clone();
    while alices.recv_type("dns.changed").await["serial"] != serial {}
    bobs.silent_for(QUIET).await;
}

async fn staff_see_and_change_every_zone_and_get_every_push(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let sam = app.create_user("sam", true);
    let mut alices = panel(&app, alice).await;
    let mut sams = panel(&app, sam).await;

    create_zone(&mut alices, "example.com").await;
    assert_eq!(
        sams.recv_type("dns.zone.created").await["zone"]["owner"]["username"],
        "alice"
    );
    let zones = ok(&mut sams, json!({"type": "dns.zones"})).await;
    assert_eq!(zones["zones"][0]["name"], "example.com");
    assert_eq!(zones["zones"][0]["owner"]["id"], alice);

    create(
        &mut sams,
        "example.com",
        json!({"name": "@", "type": "MX", "content": "mail", "priority": 10}),
    )
    .await;
    let pushed = alices.recv_type("dns.changed").await;
    assert_eq!(pushed["by"]["username"], "sam");
    assert_eq!(
        pushed["changes"][0]["record"]["content"],
        "mail.example.com."
    );
    assert_eq!(
        sams.recv_type("dns.changed").await["serial"],
        pushed["serial"]
    );
}

async fn only_staff_create_a_zone_for_another_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let bob = app.create_user("bob", false);
    let sam = app.create_user("sam", true);
    let mut alices = panel(&app, alice).await;
    let mut bobs = panel(&app, bob).await;
    let mut sams = panel(&app, sam).await;

    refused(
        &mut alices,
        json!({"type": "dns.zone.create", "name": "bob.example", "owner": bob}),
        "forbidden",
    )
    .await;
    let zone = ok(
        &mut sams,
        json!({"type": "dns.zone.create", "name": "bob.example", "owner": bob}),
    )
    .await["zone"]
        .clone();
    assert_eq!(zone["owner"], json!({"id": bob, "username": "bob"}));
    assert_eq!(
        bobs.recv_type("dns.zone.created").await["zone"]["name"],
        "bob.example"
    );
    alices.silent_for(QUIET).await;
    let unknown = refused(
        &mut sams,
        json!({"type": "dns.zone.create", "name": "nobody.example", "owner": 999_999}),
        "validation",
    )
    .await;
    assert_eq!(unknown["field"], "owner");
    // The same zone twice, or one inside another's, is taken.
    for name in ["bob.example", "www.bob.example", "BOB.example."] {
        refused(
            &mut alices,
            json!({"type": "dns.zone.create", "name": name}),
            "conflict",
        )
        .await;
    }
}

async fn a_stale_version_gets_a_conflict_with_the_current_record(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mut tab1 = panel(&app, alice).await;
    let mut tab2 = panel(&app, alice).await;
    create_zone(&mut tab1, "example.com").await;
    let record = create(
        &mut tab1,
        "example.com",
        json!({"name": "www", "type": "A", "content": "192.0.2.1", "comment": "web"}),
    )
    .await["record"]
        .clone();
    let id = record["id"].clone();
    assert_eq!(
        tab2.recv_type("dns.changed").await["changes"][0]["action"],
        "created"
    );

    let updated = ok(
        &mut tab1,
        json!({"type": "dns.update", "id": id, "version": 1, "record": {"content": "192.0.2.2"}}),
    )
    .await;
    assert_eq!(updated["record"]["version"], 2);
    assert_eq!(updated["record"]["content"], "192.0.2.2");
    assert_eq!(
        updated["record"]["comment"], "web",
        "fields not sent are kept"
    );
    let pushed = tab2.recv_type("dns.changed").await;
    assert_eq!(pushed["changes"][0]["action"], "updated");

    // The second tab still holds version 1.
    let conflict = refused(
        &mut tab2,
        json!({"type": "dns.update", "id": id, "version": 1, "record": {"content": "192.0.2.3"}}),
        "conflict",
    )
    .await;
    assert_eq!(conflict["record"], updated["record"]);
    let conflict = refused(
        &mut tab2,
        json!({"type": "dns.delete", "id": id, "version": 1}),
        "conflict",
    )
    .await;
    assert_eq!(conflict["record"]["version"], 2);

    let deleted = ok(
        &mut tab2,
        json!({"type": "dns.delete", "id": id, "version": 2}),
    )
    .await;
    assert_eq!(deleted["id"], id);
    assert!(deleted["serial"].as_i64() > updated["serial"].as_i64());
    // The other tab hears of it (after its own changes, not yet read).
    while tab1.recv_type("dns.changed").await["changes"][0]["action"] != "deleted" {}
    assert!(records(&mut tab1, "example.com").await.is_empty());
}

async fn every_change_bumps_the_serial_and_a_stale_serial_cannot_delete_the_zone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mut alices = panel(&app, alice).await;
    let zone = create_zone(&mut alices, "example.com").await;
    let first = zone["serial"].as_i64().unwrap();
    let today: i64 = chrono::Utc::now()
        .format("%Y%m%d")
        .to_string()
        .parse()
        .unwrap();
    assert!(first >= today * 100, "{first} is YYYYMMDDnn");

    let mut serial = first;
    for i in 0..3 {
        let reply = create(
            &mut alices,
            "example.com",
            json!({"name": format!("h{i}"), "type": "A", "content": "192.0.2.1"}),
        )
        .await;
        let next = reply["serial"].as_i64().unwrap();
        assert_eq!(next, serial + 1);
        serial = next;
    }
    let listed = ok(
        &mut alices,
        json!({"type": "dns.list", "zone": "example.com"}),
    )
    .await;
    assert_eq!(listed["zone"]["serial"], serial);

    let conflict = refused(
        &mut alices,
        json!({"type": "dns.zone.delete", "zone": "example.com", "serial": first}),
        "conflict",
    )
    .await;
    assert_eq!(conflict["serial"], serial);
    ok(
        &mut alices,
        json!({"type": "dns.zone.delete", "zone": "example.com", "serial": serial}),
    )
    .await;
    assert_eq!(
        alices.recv_type("dns.zone.deleted").await["zone"]["name"],
        "example.com"
    );
    refused(
        &mut alices,
        json!({"type": "dns.list", "zone": "example.com"}),
        "not_found",
    )
    .await;
}

async fn records_that_break_a_rule_are_refused_with_the_field_and_nothing_is_stored(
    backend: Backend,
) {
    let app = spawn_unthrottled(backend).await;
    let alice = app.create_user("alice", false);
    let mut alices = panel(&app, alice).await;
    create_zone(&mut alices, "example.com").await;
    let long_name = vec!["a".repeat(60); 5].join(".");
    let cases = [
        // hickory-proto takes these; the hub does not.
        (
            json!({"name": "*foo", "type": "A", "content": "192.0.2.1"}),
            "name",
        ),
        (
            json!({"name": "foo-", "type": "A", "content": "192.0.2.1"}),
            "name",
        ),
        (
            json!({"name": "@", "type": "MX", "content": "1.2.3.4", "priority": 10}),
            "content",
        ),
        (
            json!({"name": "@", "type": "NS", "content": "1.2.3.4"}),
            "content",
        ),
        (
            json!({"name": "@", "type": "CAA", "content": "0 tagx \"ca.example\""}),
            "content",
        ),
        (
            json!({"name": "@", "type": "CAA", "content": "1 issue \"ca.example\""}),
            "content",
        ),
        // Labels and names.
        (
            json!({"name": "-foo", "type": "A", "content": "192.0.2.1"}),
            "name",
        ),
        (
            json!({"name": "a.*.b", "type": "A", "content": "192.0.2.1"}),
            "name",
        ),
        (
            json!({"name": "foo_bar", "type": "A", "content": "192.0.2.1"}),
            "name",
        ),
        (
            json!({"name": "_sip._tcp", "type": "A", "content": "192.0.2.1"}),
            "name",
        ),
        (
            json!({"name": "a".repeat(64), "type": "A", "content": "192.0.2.1"}),
            "name",
        ),
        (
            json!({"name": long_name, "type": "A", "content": "192.0.2.1"}),
            "name",
        ),
        (
            json!({"name": "www.badexample.com.", "type": "A", "content": "192.0.2.1"}),
            "name",
        ),
        (
            json!({"name": "a\u{7}b", "type": "A", "content": "192.0.2.1"}),
            "name",
        ),
        // Data by type.
        (
            json!({"name": "a", "type": "A", "content": "192.0.2"}),
            "content",
        ),
        (
            json!({"name": "a", "type": "A", "content": "2001:db8::1"}),
            "content",
        ),
        (
            json!({"name": "a", "type": "AAAA", "content": "192.0.2.1"}),
            "content",
        ),
        (
            json!({"name": "@", "type": "CNAME", "content": "other.example."}),
            "name",
        ),
        (
            json!({"name": "@", "type": "MX", "content": "mail", "priority": 70_000}),
            "priority",
        ),
        (
            json!({"name": "@", "type": "MX", "content": "mail"}),
            "priority",
        ),
        (
            json!({"name": "@", "type": "MX", "content": ".", "priority": 10}),
            "content",
        ),
        (
            json!({"name": "@", "type": "MX", "content": "mail..example.", "priority": 10}),
            "content",
        ),
        (
            json!({"name": "sip", "type": "SRV", "content": "sip", "priority": 1, "weight": 1, "port": 5060}),
            "name",
        ),
        (
            json!({"name": "_sip._tcp", "type": "SRV", "content": "sip", "priority": 1, "weight": 1, "port": 70_000}),
            "port",
        ),
        (
            json!({"name": "_sip._tcp", "type": "SRV", "content": "192.0.2.1", "priority": 1, "weight": 1, "port": 5060}),
            "content",
        ),
        (
            json!({"name": "a", "type": "A", "content": "192.0.2.1", "priority": 1}),
            "priority",
        ),
        (
            json!({"name": "a", "type": "A", "content": "192.0.2.1", "ttl": 59}),
            "ttl",
        ),
        (
            json!({"name": "a", "type": "A", "content": "192.0.2.1", "ttl": 86_401}),
            "ttl",
        ),
        (
            json!({"name": "a", "type": "A", "content": "192.0.2.1", "comment": "bad\u{1b}[2J"}),
            "comment",
        ),
        (
            json!({"name": "a", "type": "TXT", "content": "x".repeat(4001)}),
            "content",
        ),
        (
            json!({"name": "a", "type": "PTR", "content": "host.example."}),
            "type",
        ),
    ];
    for (record, field) in cases {
        let reply = refused(
            &mut alices,
            json!({"type": "dns.create", "zone": "example.com", "record": record}),
            "validation",
        )
        .await;
        assert_eq!(reply["field"], field, "{record} -> {reply}");
        assert!(reply["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    assert!(records(&mut alices, "example.com").await.is_empty());

    // What hickory-proto alone would also refuse or take, and the hub takes.
    for record in [
        json!({"name": "@", "type": "MX", "content": ".", "priority": 0}),
        json!({"name": "*", "type": "A", "content": "192.0.2.1"}),
        json!({"name": "*.dev", "type": "AAAA", "content": "2001:DB8::1"}),
        json!({"name": "_dmarc", "type": "TXT", "content": "v=DMARC1; p=none"}),
        json!({"name": "t", "type": "TXT", "content": "y".repeat(300)}),
        json!({"name": "@", "type": "CAA", "content": "128 issue \"ca.example\""}),
        json!({"name": "@", "type": "CAA", "content": "0 iodef \"mailto:sec@example.com\""}),
    ] {
        create(&mut alices, "example.com", record).await;
    }
    let stored = records(&mut alices, "example.com").await;
    let aaaa = stored.iter().find(|r| r["type"] == "AAAA").unwrap();
    assert_eq!(aaaa["content"], "2001:db8::1");
    assert_eq!(aaaa["fqdn"], "*.dev.example.com.");
}

async fn cnames_stand_alone_targets_are_not_aliases_and_duplicates_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mut alices = panel(&app, alice).await;
    create_zone(&mut alices, "example.com").await;
    create(
        &mut alices,
        "example.com",
        json!({"name": "www", "type": "A", "content": "192.0.2.1"}),
    )
    .await;
    create(
        &mut alices,
        "example.com",
        json!({"name": "alias", "type": "CNAME", "content": "www"}),
    )
    .await;
    let zone = "example.com";
    for (record, field) in [
        // A CNAME beside an A, and an A beside a CNAME.
        (
            json!({"name": "www", "type": "CNAME", "content": "other.example."}),
            "name",
        ),
        (
            json!({"name": "alias", "type": "TXT", "content": "hi"}),
            "name",
        ),
        // Targets that hold a CNAME.
        (
            json!({"name": "@", "type": "MX", "content": "alias", "priority": 10}),
            "content",
        ),
        (
            json!({"name": "@", "type": "NS", "content": "alias.example.com."}),
            "content",
        ),
        // The same record twice, names compared case-insensitively.
        (
            json!({"name": "WWW", "type": "A", "content": "192.0.2.1"}),
            "content",
        ),
    ] {
        let reply = refused(
            &mut alices,
            json!({"type": "dns.create", "zone": zone, "record": record}),
            "validation",
        )
        .await;
        assert_eq!(reply["field"], field, "{record} -> {reply}");
    }
    // An MX at a name, then a CNAME where it points: the CNAME is refused.
    create(
        &mut alices,
        zone,
        json!({"name": "@", "type": "MX", "content": "mx", "priority": 5}),
    )
    .await;
    let reply = refused(
        &mut alices,
        json!({"type": "dns.create", "zone": zone,
               "record": {"name": "mx", "type": "CNAME", "content": "www"}}),
        "validation",
    )
    .await;
    assert_eq!(reply["field"], "name");
    assert_eq!(records(&mut alices, zone).await.len(), 3);
}

async fn names_are_kept_in_ascii_and_answered_relative_with_their_fqdn(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mut alices = panel(&app, alice).await;
    let zone = create_zone(&mut alices, "Bücher.Example.").await;
    assert_eq!(zone["name"], "xn--bcher-kva.example");
    let zone = "bücher.example";
    let cases = [
        (
            json!({"name": "Straße", "type": "A", "content": "192.0.2.1"}),
            "xn--strae-oqa",
        ),
        (
            json!({"name": "FTP.xn--bcher-kva.example.", "type": "A", "content": "192.0.2.1"}),
            "ftp",
        ),
        (
            json!({"name": "@", "type": "NS", "content": "ns1.Provider.NET."}),
            "@",
        ),
        (
            json!({"name": "_sip._tcp", "type": "SRV", "content": "sip",
                "priority": 10, "weight": 5, "port": 5060}),
            "_sip._tcp",
        ),
        (
            json!({"name": "café", "type": "A", "content": "192.0.2.1"}),
            "xn--caf-dma",
        ),
    ];
    for (record, name) in cases {
        let stored = create(&mut alices, zone, record).await["record"].clone();
        assert_eq!(stored["name"], name, "{stored}");
        let fqdn = if name == "@" {
            "xn--bcher-kva.example.".to_owned()
        } else {
            format!("{name}.xn--bcher-kva.example.")
        };
        assert_eq!(stored["fqdn"], fqdn.as_str());
    }
    let stored = records(&mut alices, zone).await;
    let ns = stored.iter().find(|r| r["type"] == "NS").unwrap();
    assert_eq!(ns["content"], "ns1.provider.net.");
    let srv = stored.iter().find(|r| r["type"] == "SRV").unwrap();
    assert_eq!(
        (
            &srv["content"],
            &srv["priority"],
            &srv["weight"],
            &srv["port"]
        ),
        (
            &json!("sip.xn--bcher-kva.example."),
            &json!(10),
            &json!(5),
            &json!(5060)
        )
    );
}

async fn a_panel_whose_user_loses_or_gains_staff_stays_open_and_is_told_to_list_its_zones_again(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, &[("HUB_USER_RECHECK_SECS", "1")]).await;
    let alice = app.create_user("alice", false);
    let sam = app.create_user("sam", true);
    let mut alices = panel(&app, alice).await;
    let mut sams = panel(&app, sam).await;
    create_zone(&mut alices, "alice.example").await;
    create_zone(&mut sams, "sam.example").await;
    sams.recv_type("dns.zone.created").await;

    app.cli(&["user", "set-staff", "sam", "false"]);
    let resync = sams.recv_type("dns.resync").await;
    let names: Vec<&str> = resync["zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sam.example"]);

    // Still open, and no longer told about alice's zone.
    create(
        &mut alices,
        "alice.example",
        json!({"name": "www", "type": "A", "content": "192.0.2.1"}),
    )
    .await;
    alices.recv_type("dns.changed").await;
    sams.silent_for(QUIET).await;
    refused(
        &mut sams,
        json!({"type": "dns.list", "zone": "alice.example"}),
        "not_found",
    )
    .await;
    ok(
        &mut sams,
        json!({"type": "dns.list", "zone": "sam.example"}),
    )
    .await;

    // Made staff again: every zone, and every push, once more.
    app.cli(&["user", "set-staff", "sam", "true"]);
    let resync = sams.recv_type("dns.resync").await;
    assert_eq!(resync["zones"].as_array().unwrap().len(), 2, "{resync}");
    create(
        &mut alices,
        "alice.example",
        json!({"name": "ftp", "type": "A", "content": "192.0.2.2"}),
    )
    .await;
    let pushed = sams.recv_type("dns.changed").await;
    assert_eq!(pushed["zone"], "alice.example");
}

async fn a_batch_applies_every_change_with_one_serial_bump(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mut tab1 = panel(&app, alice).await;
    let mut tab2 = panel(&app, alice).await;
    let zone = create_zone(&mut tab1, "example.com").await;
    let serial = zone["serial"].as_i64().unwrap();
    let batch = ok(
        &mut tab1,
        json!({"type": "dns.batch", "zone": "example.com", "serial": serial, "changes": [
            {"op": "create", "record": {"name": "www", "type": "A", "content": "192.0.2.1"}},
            {"op": "create", "record": {"name": "@", "type": "MX", "content": "mail", "priority": 10}},
            {"op": "create", "record": {"name": "mail", "type": "A", "content": "192.0.2.2"}},
        ]}),
    )
    .await;
    assert_eq!(batch["serial"], serial + 1);
    let created = batch["records"].as_array().unwrap();
    assert_eq!(created.len(), 3);
    let pushed = tab2.recv_type("dns.changed").await;
    assert_eq!(pushed["changes"].as_array().unwrap().len(), 3);

    // Swap the address and drop the MX in one step: a CNAME may replace
    // the A at the same name only because the A goes in the same batch.
    let www = created[0]["id"].clone();
    let mx = created[1]["id"].clone();
    let batch = ok(
        &mut tab2,
        json!({"type": "dns.batch", "zone": "example.com", "serial": serial + 1, "changes": [
            {"op": "delete", "id": www},
            {"op": "delete", "id": mx},
            {"op": "create", "record": {"name": "www", "type": "CNAME", "content": "mail"}},
        ]}),
    )
    .await;
    assert_eq!(batch["serial"], serial + 2);
    let kinds: Vec<Value> = records(&mut tab1, "example.com")
        .await
        .iter()
        .map(|r| r["type"].clone())
        .collect();
    assert_eq!(kinds, [json!("A"), json!("CNAME")]);
}

async fn a_batch_with_bad_changes_applies_nothing_and_lists_every_failure_by_index(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mut alices = panel(&app, alice).await;
    let zone = create_zone(&mut alices, "example.com").await;
    alices.recv_type("dns.zone.created").await;
    let serial = zone["serial"].as_i64().unwrap();
    let reply = refused(
        &mut alices,
        json!({"type": "dns.batch", "zone": "example.com", "serial": serial, "changes": [
            {"op": "create", "record": {"name": "ok", "type": "A", "content": "192.0.2.1"}},
            {"op": "create", "record": {"name": "bad-", "type": "A", "content": "192.0.2.1"}},
            {"op": "create", "record": {"name": "x", "type": "A", "content": "192.0.2.1", "ttl": 5}},
            {"op": "delete", "id": 424_242},
            {"op": "create", "record": {"name": "dup", "type": "A", "content": "192.0.2.1"}},
            {"op": "create", "record": {"name": "dup", "type": "A", "content": "192.0.2.1"}},
        ]}),
        "validation",
    )
    .await;
    let errors: Vec<(i64, &str)> = reply["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_i64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(errors, [(1, "name"), (2, "ttl"), (3, "id")]);
    // Once each change passes alone, the set is checked: both duplicates.
    let reply = refused(
        &mut alices,
        json!({"type": "dns.batch", "zone": "example.com", "serial": serial, "changes": [
            {"op": "create", "record": {"name": "ok", "type": "A", "content": "192.0.2.1"}},
            {"op": "create", "record": {"name": "dup", "type": "A", "content": "192.0.2.1"}},
            {"op": "create", "record": {"name": "DUP", "type": "A", "content": "192.0.2.1"}},
        ]}),
        "validation",
    )
    .await;
    let indexes: Vec<i64> = reply["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_i64().unwrap())
        .collect();
    assert_eq!(indexes, [1, 2]);
    let listed = ok(
        &mut alices,
        json!({"type": "dns.list", "zone": "example.com"}),
    )
    .await;
    assert_eq!(listed["records"], json!([]));
    assert_eq!(listed["zone"]["serial"], serial);
    alices.silent_for(QUIET).await;
    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({"op": "delete", "id": 1}))
        .collect();
    let reply = refused(
        &mut alices,
        json!({"type": "dns.batch", "zone": "example.com", "serial": serial, "changes": too_many}),
        "validation",
    )
    .await;
    assert_eq!(reply["field"], "changes");
}

async fn a_batch_naming_an_old_serial_gets_a_conflict(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mut alices = panel(&app, alice).await;
    let zone = create_zone(&mut alices, "example.com").await;
    let old = zone["serial"].as_i64().unwrap();
    let now = create(
        &mut alices,
        "example.com",
        json!({"name": "www", "type": "A", "content": "192.0.2.1"}),
    )
    .await["serial"]
        .clone();
    let reply = refused(
        &mut alices,
        json!({"type": "dns.batch", "zone": "example.com", "serial": old, "changes": [
            {"op": "create", "record": {"name": "ftp", "type": "A", "content": "192.0.2.1"}},
        ]}),
        "conflict",
    )
    .await;
    assert_eq!(reply["serial"], now);
    assert_eq!(records(&mut alices, "example.com").await.len(), 1);
}

async fn unknown_types_and_malformed_requests_are_answered_with_error_frames(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mut alices = panel(&app, alice).await;
    refused(&mut alices, json!({"type": "dns.axfr"}), "unknown_type").await;
    let bad = refused(&mut alices, json!({"type": "dns.list"}), "validation").await;
    assert_eq!(bad["field"], "zone", "{bad}");
    let bad = refused(
        &mut alices,
        json!({"type": "dns.delete", "id": "seven"}),
        "validation",
    )
    .await;
    assert_eq!(bad["field"], "request", "{bad}");
    let bad = refused(
        &mut alices,
        json!({"type": "dns.batch", "zone": "example.com", "serial": 1,
               "changes": [{"op": "rename", "id": 1}]}),
        "validation",
    )
    .await;
    assert!(bad["detail"].as_str().unwrap().contains("rename"), "{bad}");
}

async fn the_history_pages_back_from_the_newest_change_with_who_and_what(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let bob = app.create_user("bob", false);
    let sam = app.create_user("sam", true);
    let mut alices = panel(&app, alice).await;
    let mut sams = panel(&app, sam).await;
    let mut bobs = panel(&app, bob).await;
    create_zone(&mut alices, "example.com").await;
    let id = create(
        &mut alices,
        "example.com",
        json!({"name": "www", "type": "A", "content": "192.0.2.1"}),
    )
    .await["record"]["id"]
        .clone();
    ok(
        &mut sams,
        json!({"type": "dns.update", "id": id, "record": {"ttl": 600}}),
    )
    .await;
    let last = ok(&mut alices, json!({"type": "dns.delete", "id": id})).await;

    let page = ok(
        &mut alices,
        json!({"type": "dns.history", "zone": "example.com", "limit": 2}),
    )
    .await;
    let changes = page["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(
        (
            &changes[0]["action"],
            &changes[0]["by"]["username"],
            &changes[0]["serial"]
        ),
        (&json!("deleted"), &json!("alice"), &last["serial"])
    );
    assert_eq!(changes[0]["old"]["ttl"], 600);
    assert_eq!(changes[0]["new"], Value::Null);
    assert_eq!(
        (&changes[1]["action"], &changes[1]["by"]["username"]),
        (&json!("updated"), &json!("sam"))
    );
    assert_eq!(
        (&changes[1]["old"]["ttl"], &changes[1]["new"]["ttl"]),
        (&json!(3600), &json!(600))
    );
    assert!(changes[0]["at"].as_str().unwrap().ends_with('Z'));

    let older = ok(
        &mut alices,
        json!({"type": "dns.history", "zone": "example.com", "before": changes[1]["id"]}),
    )
    .await;
    let older = older["changes"].as_array().unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0]["action"], "created");
    assert_eq!(older[0]["by"], json!({"id": alice, "username": "alice"}));
    assert_eq!(older[0]["old"], Value::Null);
    assert_eq!(older[0]["new"]["content"], "192.0.2.1");
    // Every entry names the record it changed.
    for entry in changes.iter().chain(older) {
        assert_eq!(entry["record_id"], id, "{entry}");
    }

    refused(
        &mut bobs,
        json!({"type": "dns.history", "zone": "example.com"}),
        "not_found",
    )
    .await;
    let bad = refused(
        &mut alices,
        json!({"type": "dns.history", "zone": "example.com", "limit": 0}),
        "validation",
    )
    .await;
    assert_eq!(bad["field"], "limit");
}

async fn an_export_is_a_master_file_with_the_current_serial_and_every_record(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let bob = app.create_user("bob", false);
    let mut alices = panel(&app, alice).await;
    let mut bobs = panel(&app, bob).await;
    create_zone(&mut alices, "example.com").await;
    let txt = format!("{}\"quoted\" and \\ back", "x".repeat(250));
    for record in [
        json!({"name": "@", "type": "NS", "content": "ns1.provider.net."}),
        json!({"name": "www", "type": "A", "content": "192.0.2.1", "ttl": 300, "comment": "web; front"}),
        json!({"name": "@", "type": "MX", "content": "mail", "priority": 10}),
        json!({"name": "t", "type": "TXT", "content": txt}),
    ] {
        create(&mut alices, "example.com", record).await;
    }
    let reply = ok(
        &mut alices,
        json!({"type": "dns.export", "zone": "example.com"}),
    )
    .await;
    let serial = reply["zone"]["serial"].as_i64().unwrap();
    let text = reply["text"].as_str().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "$ORIGIN example.com.");
    assert_eq!(lines[1], "$TTL 3600");
    assert_eq!(
        lines[2],
        format!(
            "@\t3600\tIN\tSOA\tns1.provider.net. hostmaster.example.com. {serial} 3600 900 1209600 300"
        )
    );
    for line in [
        "@\t3600\tIN\tNS\tns1.provider.net.",
        "@\t3600\tIN\tMX\t10 mail.example.com.",
        "www\t300\tIN\tA\t192.0.2.1 ; web; front",
        &format!(
            // 255 bytes of text in the first string, escapes not counted.
            "t\t3600\tIN\tTXT\t\"{}\\\"quot\" \"ed\\\" and \\\\ back\"",
            "x".repeat(250)
        ),
    ] {
        assert!(lines.contains(&line), "{line:?} not in:\n{text}");
    }
    assert_eq!(lines.len(), 7);
    refused(
        &mut bobs,
        json!({"type": "dns.export", "zone": "example.com"}),
        "not_found",
    )
    .await;
}

async fn an_import_makes_the_zone_hold_the_file_with_one_serial_bump(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mut tab1 = panel(&app, alice).await;
    let mut tab2 = panel(&app, alice).await;
    create_zone(&mut tab1, "example.com").await;
    let www = create(
        &mut tab1,
        "example.com",
        json!({"name": "www", "type": "A", "content": "192.0.2.1"}),
    )
    .await["record"]
        .clone();
    create(
        &mut tab1,
        "example.com",
        json!({"name": "old", "type": "A", "content": "192.0.2.9"}),
    )
    .await;
    let exported = ok(
        &mut tab1,
        json!({"type": "dns.export", "zone": "example.com"}),
    )
    .await;
    let serial = exported["zone"]["serial"].as_i64().unwrap();
    let text = exported["text"]
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("old"))
        .chain(["mail 600 IN A 192.0.2.2 ; the mail host", "@ IN MX 10 mail"])
        .collect::<Vec<_>>()
        .join("\n");

    let reply = ok(
        &mut tab1,
        json!({"type": "dns.import", "zone": "example.com", "serial": serial, "text": text}),
    )
    .await;
    assert_eq!(reply["serial"], serial + 1);
    assert_eq!(reply["records"].as_array().unwrap().len(), 3);
    let mut actions: Vec<String> = loop {
        let pushed = tab2.recv_type("dns.changed").await;
        if pushed["serial"] == serial + 1 {
            break pushed["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["action"].as_str().unwrap().to_owned())
                .collect();
        }
    };
    actions.sort();
    assert_eq!(actions, ["created", "created", "deleted"]);
    let now = records(&mut tab1, "example.com").await;
    let names: Vec<&str> = now.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["@", "mail", "www"]);
    let kept = now.iter().find(|r| r["name"] == "www").unwrap();
    assert_eq!(
        kept, &www,
        "a record the file holds as it is stays untouched"
    );
    assert_eq!(now[1]["comment"], "the mail host");

    // The same file again changes nothing: no new serial, no push.
    let again = ok(
        &mut tab1,
        json!({"type": "dns.import", "zone": "example.com", "serial": serial + 1, "text": text}),
    )
    .await;
    assert_eq!(again["serial"], serial + 1);
    assert_eq!(again["records"], json!([]));
    tab2.silent_for(QUIET).await;
    let stale = refused(
        &mut tab1,
        json!({"type": "dns.import", "zone": "example.com", "serial": serial, "text": text}),
        "conflict",
    )
    .await;
    assert_eq!(stale["serial"], serial + 1);
}

async fn an_import_with_bad_lines_applies_nothing_and_lists_every_failure_by_line(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let bob = app.create_user("bob", false);
    let mut alices = panel(&app, alice).await;
    let mut bobs = panel(&app, bob).await;
    let zone = create_zone(&mut alices, "example.com").await;
    let serial = zone["serial"].as_i64().unwrap();
    let text = format!(
        "$ORIGIN example.com.\n$TTL 600\nok A 192.0.2.1\n*foo A 192.0.2.1\n@ MX 10 1.2.3.4\n\
         t TXT \"{}\"\n@ CAA 1 issue \"ca.example\"\nalias CNAME www\nalias A 192.0.2.1\n",
        "x".repeat(300)
    );
    let reply = refused(
        &mut alices,
        json!({"type": "dns.import", "zone": "example.com", "serial": serial, "text": text}),
        "validation",
    )
    .await;
    let lines: Vec<(i64, &str)> = reply["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_i64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        lines,
        [(4, "name"), (5, "content"), (6, "content"), (7, "content")]
    );
    // Each line alone is fine; together a CNAME would share its name.
    let clash = "alias CNAME www\nalias A 192.0.2.1\n";
    let reply = refused(
        &mut alices,
        json!({"type": "dns.import", "zone": "example.com", "serial": serial, "text": clash}),
        "validation",
    )
    .await;
    assert_eq!(reply["errors"].as_array().unwrap().len(), 2);
    assert!(records(&mut alices, "example.com").await.is_empty());
    let other = "$ORIGIN example.org.\nwww A 192.0.2.1\n";
    refused(
        &mut alices,
        json!({"type": "dns.import", "zone": "example.com", "serial": serial, "text": other}),
        "validation",
    )
    .await;
    refused(
        &mut bobs,
        json!({"type": "dns.import", "zone": "example.com", "serial": serial, "text": "www A 192.0.2.1"}),
        "not_found",
    )
    .await;
}

async fn changes_racing_on_one_zone_each_get_a_serial_of_their_own(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mut tabs = [panel(&app, alice).await, panel(&app, alice).await];
    let zone = create_zone(&mut tabs[0], "example.com").await;
    let first = zone["serial"].as_i64().unwrap();
    const EACH: usize = 8;
    // Every request is sent before any reply is read.
    for (t, tab) in tabs.iter_mut().enumerate() {
        for i in 0..EACH {
            tab.send(json!({"type": "dns.create", "ref": format!("c{t}-{i}"), "zone": "example.com",
                            "record": {"name": format!("h{t}-{i}"), "type": "A", "content": "192.0.2.1"}}))
                .await;
        }
    }
    let mut serials = Vec::new();
    for tab in &mut tabs {
        let mut replies = 0;
        while replies < EACH {
            let frame = tab.recv().await;
            if frame["type"] == "dns.result" {
                serials.push(frame["serial"].as_i64().unwrap());
                replies += 1;
            } else {
                assert_ne!(frame["type"], "error", "{frame}");
            }
        }
    }
    serials.sort_unstable();
    let expected: Vec<i64> = (1..=2 * EACH as i64).map(|n| first + n).collect();
    assert_eq!(serials, expected);
    assert_eq!(records(&mut tabs[0], "example.com").await.len(), 2 * EACH);
}

/// A name as the independent reader shows it, lower case and absolute.
fn absolute(name: &impl std::fmt::Display) -> String {
    let name = name.to_string().to_ascii_lowercase();
    if name.ends_with('.') {
        name
    } else {
        format!("{name}.")
    }
}

/// A record as `dns.list` shows it, in the form [`as_read`] gives: owner,
/// type, TTL, and the data with its numbers in presentation order.
fn as_listed(record: &Value) -> (String, String, u64, String) {
    let content = record["content"].as_str().unwrap();
    let kind = record["type"].as_str().unwrap();
    let data = match kind {
        // One address has many spellings; the parsed one is compared.
        "A" | "AAAA" => content.parse::<std::net::IpAddr>().unwrap().to_string(),
        "MX" => format!("{} {content}", record["priority"]),
        "SRV" => format!(
            "{} {} {} {content}",
            record["priority"], record["weight"], record["port"]
        ),
        _ => content.to_owned(),
    };
    (
        absolute(&record["fqdn"].as_str().unwrap()),
        kind.to_owned(),
        record["ttl"].as_u64().unwrap(),
        data,
    )
}

/// A record as the `domain` crate's zone-file reader yields it.
fn as_read(record: &ScannedRecord) -> (String, String, u64, String) {
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).expect("UTF-8 as written");
    let data = match record.data() {
        ZoneRecordData::A(a) => a.addr().to_string(),
        ZoneRecordData::Aaaa(aaaa) => aaaa.addr().to_string(),
        ZoneRecordData::Cname(cname) => absolute(cname.cname()),
        ZoneRecordData::Ns(ns) => absolute(ns.nsdname()),
        ZoneRecordData::Mx(mx) => format!("{} {}", mx.preference(), absolute(mx.exchange())),
        ZoneRecordData::Srv(srv) => format!(
            "{} {} {} {}",
            srv.priority(),
            srv.weight(),
            srv.port(),
            absolute(srv.target())
        ),
        // The strings the file split it into, joined again.
        ZoneRecordData::Txt(txt) => text(&txt.iter().flatten().copied().collect::<Vec<u8>>()),
        ZoneRecordData::Caa(caa) => format!(
            "{} {} \"{}\"",
            caa.flags().bits(),
            caa.tag(),
            text(caa.value())
        ),
        other => panic!("the hub wrote a record it does not keep: {other:?}"),
    };
    (
        absolute(record.owner()),
        record.rtype().to_string(),
        u64::from(record.ttl().as_secs()),
        data,
    )
}

async fn an_export_read_by_an_independent_parser_holds_exactly_the_listed_records(
    backend: Backend,
) {
    let app = spawn_unthrottled(backend).await;
    let alice = app.create_user("alice", false);
    let mut alices = panel(&app, alice).await;
    create_zone(&mut alices, "example.com").await;
    // Over one 255-byte string, split between multi-byte characters, with
    // both characters a master file escapes.
    let long_txt = format!(
        "v=spf1 {} \"quoted\" back\\slash {} ; (not a comment)",
        "a".repeat(200),
        "é".repeat(60)
    );
    for record in [
        json!({"name": "@", "type": "NS", "content": "ns1.provider.net."}),
        json!({"name": "@", "type": "NS", "content": "ns2.provider.net."}),
        json!({"name": "www", "type": "A", "content": "192.0.2.1", "ttl": 300, "comment": "web; front"}),
        json!({"name": "www", "type": "AAAA", "content": "2001:DB8::1"}),
        json!({"name": "alias", "type": "CNAME", "content": "www"}),
        json!({"name": "@", "type": "MX", "content": "mail", "priority": 10}),
        json!({"name": "mail", "type": "A", "content": "192.0.2.25"}),
        // The null MX: this name takes no mail.
        json!({"name": "nomail", "type": "MX", "content": ".", "priority": 0}),
        json!({"name": "_sip._tcp", "type": "SRV", "content": "sip.provider.net.",
               "priority": 10, "weight": 5, "port": 5060}),
        json!({"name": "@", "type": "TXT", "content": long_txt}),
        json!({"name": "@", "type": "CAA", "content": "0 issue \"ca.example; account=1\""}),
        json!({"name": "@", "type": "CAA", "content": "128 iodef \"mailto:security@example.com\""}),
        json!({"name": "*.dev", "type": "A", "content": "192.0.2.7", "ttl": 60}),
        json!({"name": "straße", "type": "A", "content": "192.0.2.8"}),
    ] {
        create(&mut alices, "example.com", record).await;
    }
    let listed = ok(
        &mut alices,
        json!({"type": "dns.list", "zone": "example.com"}),
    )
    .await;
    let exported = ok(
        &mut alices,
        json!({"type": "dns.export", "zone": "example.com"}),
    )
    .await;
    let text = exported["text"].as_str().unwrap();

    let mut reader = Zonefile::new();
    reader.extend_from_slice(text.as_bytes());
    let mut serials = Vec::new();
    let mut read = Vec::new();
    for entry in reader {
        let entry = entry.unwrap_or_else(|e| panic!("{e:?} reading:\n{text}"));
        let Entry::Record(record) = entry else {
            panic!("the hub wrote an $INCLUDE:\n{text}");
        };
        // That reader once let `a..b` through: an empty label anywhere but
        // at the root is a name no server would load.
        let labels: Vec<_> = record.owner().iter_labels().collect();
        let (root, rest) = labels.split_last().expect("a name has its root");
        assert!(
            root.is_root() && rest.iter().all(|l| !l.is_root()),
            "{} has an empty label:\n{text}",
            record.owner()
        );
        // The SOA is the hub's own, not a stored record.
        if let ZoneRecordData::Soa(soa) = record.data() {
            serials.push(i64::from(soa.serial().into_int()));
        } else {
            read.push(as_read(&record));
        }
    }
    assert_eq!(serials, [listed["zone"]["serial"].as_i64().unwrap()]);
    let mut expected: Vec<_> = listed["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(as_listed)
        .collect();
    assert_eq!(expected.len(), 14);
    expected.sort();
    read.sort();
    assert_eq!(read, expected, "{text}");
    // The owners as written, not only as that reader takes them.
    for line in text.lines().filter(|l| !l.starts_with('$')) {
        let owner = line.split('\t').next().unwrap();
        assert!(
            !owner.is_empty() && !owner.starts_with('.') && !owner.contains(".."),
            "{line:?}"
        );
    }
}

async fn two_tabs_updating_one_record_at_once_see_exactly_one_win_and_one_conflict_every_time(
    backend: Backend,
) {
    let app = spawn_unthrottled(backend).await;
    let alice = app.create_user("alice", false);
    let mut tab0 = panel(&app, alice).await;
    let mut tab1 = panel(&app, alice).await;
    create_zone(&mut tab0, "example.com").await;
    let mut current = create(
        &mut tab0,
        "example.com",
        json!({"name": "www", "type": "A", "content": "192.0.2.1"}),
    )
    .await["record"]
        .clone();
    let id = current["id"].clone();
    for round in 0..20_u8 {
        let version = current["version"].as_i64().unwrap();
        let update = |tab: u8| {
            json!({"type": "dns.update", "id": id, "version": version,
                   "record": {"content": format!("198.51.100.{}", 2 * round + tab)}})
        };
        // Both are on the wire before either reply is read: only the
        // database can tell them apart.
        let (ref0, ref1) = tokio::join!(
            send_request(&mut tab0, update(0)),
            send_request(&mut tab1, update(1))
        );
        let replies = [tab0.reply_to(&ref0).await, tab1.reply_to(&ref1).await];
        let won: Vec<&Value> = replies
            .iter()
            .filter(|r| r["type"] == "dns.result")
            .collect();
        let lost: Vec<&Value> = replies.iter().filter(|r| r["code"] == "conflict").collect();
        assert_eq!(
            (won.len(), lost.len()),
            (1, 1),
            "round {round}: {replies:?}"
        );
        assert_eq!(won[0]["record"]["version"], version + 1);
        // The tab that lost is shown the record as the winner left it.
        assert_eq!(lost[0]["record"], won[0]["record"], "round {round}");
        current = won[0]["record"].clone();
    }
    assert_eq!(records(&mut tab1, "example.com").await, [current.clone()]);
    let history = ok(
        &mut tab1,
        json!({"type": "dns.history", "zone": "example.com", "limit": 500}),
    )
    .await;
    let updates = history["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "updated")
        .count();
    assert_eq!(
        updates, 20,
        "one update kept per round, none lost or doubled"
    );
}

async fn a_hundred_and_twenty_changes_in_one_day_get_strictly_increasing_serials_past_nn_99(
    backend: Backend,
) {
    let app = spawn_unthrottled(backend).await;
    let alice = app.create_user("alice", false);
    let mut alices = panel(&app, alice).await;
    let today = || -> i64 {
        chrono::Utc::now()
            .format("%Y%m%d")
            .to_string()
            .parse()
            .unwrap()
    };
    let day = today();
    let zone = create_zone(&mut alices, "example.com").await;
    let mut serials = vec![zone["serial"].as_i64().unwrap()];
    for i in 0..120 {
        let reply = create(
            &mut alices,
            "example.com",
            json!({"name": format!("h{i}"), "type": "A", "content": "192.0.2.1"}),
        )
        .await;
        serials.push(reply["serial"].as_i64().unwrap());
    }
    assert!(
        serials.windows(2).all(|w| w[1] > w[0]),
        "serials went back: {serials:?}"
    );
    // Across midnight the serial jumps to the new day; only a run within
    // one day shows the spill past nn = 99.
    if today() == day {
        assert_eq!(serials[0], day * 100, "a new zone starts at nn = 00");
        let expected: Vec<i64> = (day * 100..=day * 100 + 120).collect();
        assert_eq!(serials, expected, "nn = 99 is followed by 100, never 01");
    }
    let listed = ok(
        &mut alices,
        json!({"type": "dns.list", "zone": "example.com"}),
    )
    .await;
    assert_eq!(listed["zone"]["serial"], serials[120]);
}
