//! DNS rules that a hostile or careless panel tested from outside: an
//! import of nothing but bad lines, CNAME chains and loops, a batch that
//! names one record twice, updates that change nothing, a zone made again
//! after its deletion, unbalanced parentheses, IDN labels IDNA2008
//! refuses, the SRV "no service here" target, and replies larger than a
//! socket's send queue.

use std::time::Duration;

use serde_json::{Value, json};

use crate::dns::{ask, create, create_zone, ok, panel, pushed, records, refused};
use crate::helpers::{Backend, Client, TestApp};
use crate::on_both_backends;

on_both_backends!(
    an_import_of_only_bad_lines_is_answered_with_the_first_errors_and_their_count,
    no_reply_is_larger_than_the_send_queue,
    cname_chains_and_loops_are_refused_in_every_kind_of_change,
    a_batch_that_names_one_record_twice_is_refused_and_applies_nothing,
    an_update_that_changes_nothing_bumps_nothing_and_pushes_nothing,
    a_zone_deleted_and_made_again_never_goes_back_in_serial,
    an_import_with_unbalanced_parentheses_is_refused_at_the_line,
    labels_that_idna2008_refuses_are_refused,
    an_srv_record_may_say_no_service_with_the_target_dot,
);

const QUIET: Duration = Duration::from_millis(300);
const ZONE: &str = "example.com";

async fn serial_of(client: &mut Client, zone: &str) -> i64 {
    ok(client, json!({"type": "dns.list", "zone": zone})).await["zone"]["serial"]
        .as_i64()
        .unwrap()
}

async fn history_len(client: &mut Client, zone: &str) -> usize {
    ok(
        client,
        json!({"type": "dns.history", "zone": zone, "limit": 500}),
    )
    .await["changes"]
        .as_array()
        .unwrap()
        .len()
}

/// Alice's hub with a zone of hers, and a panel of hers.
async fn alices_zone(backend: Backend, settings: &[(&str, &str)]) -> (TestApp, i32, Client) {
    let app = TestApp::spawn_with(backend, settings).await;
    let alice = app.create_user("alice", false);
    let mut alices = panel(&app, alice).await;
    create_zone(&mut alices, ZONE).await;
    (app, alice, alices)
}

async fn an_import_of_only_bad_lines_is_answered_with_the_first_errors_and_their_count(
    backend: Backend,
) {
    let (_app, _, mut alices) = alices_zone(backend, &[]).await;
    let serial = serial_of(&mut alices, ZONE).await;
    // 256 KiB of lines that are each wrong: one error per line.
    let text = "-\n".repeat(128 * 1024);
    let lines = 128 * 1024;
    let reply = refused(
        &mut alices,
        json!({"type": "dns.import", "zone": ZONE, "serial": serial, "text": text}),
        "validation",
    )
    .await;
    let listed = reply["errors"].as_array().unwrap();
    assert_eq!(listed.len(), 100, "{}", reply["detail"]);
    assert_eq!(listed[0]["line"], 1);
    assert_eq!(listed[99]["line"], 100);
    assert_eq!(reply["error_count"], lines);
    assert!(
        reply.to_string().len() < 16 * 1024,
        "a reply of {} bytes",
        reply.to_string().len()
    );
    assert!(
        reply["detail"].as_str().unwrap().contains("the first 100"),
        "{}",
        reply["detail"]
    );
}

async fn no_reply_is_larger_than_the_send_queue(backend: Backend) {
    let (_app, _, mut alices) = alices_zone(
        backend,
        &[
            ("HUB_SEND_QUEUE_BYTES", "65536"),
            ("HUB_DNS_WRITES_PER_SEC", "1000"),
        ],
    )
    .await;
    let serial = serial_of(&mut alices, ZONE).await;
    // 100 TXT records of 1,000 bytes: about 110 KB to list.
    let changes: Vec<Value> = (0..100)
        .map(|i| json!({"op": "create", "record": {"name": format!("t{i}"), "type": "TXT", "content": "x".repeat(1000)}}))
        .collect();
    let reply = ok(
        &mut alices,
        json!({"type": "dns.batch", "zone": ZONE, "serial": serial, "changes": changes}),
    )
    .await;
    // Applied, and told without its records, which would not fit.
    assert!(reply.to_string().len() <= 65536);
    assert_eq!(
        (
            &reply["records_omitted"],
            &reply["count"],
            &reply["records"]
        ),
        (&json!(true), &json!(100), &Value::Null),
        "{reply}"
    );
    assert_eq!(reply["serial"], serial + 1);
    // The push would not fit either: the panel is told to list again.
    let pushed = alices.recv_type("dns.resync").await;
    assert_eq!(pushed["zones"][0]["serial"], serial + 1, "{pushed}");
    for request in [
        json!({"type": "dns.list", "zone": ZONE}),
        json!({"type": "dns.export", "zone": ZONE}),
    ] {
        let reply = ask(&mut alices, request).await;
        assert!(reply.to_string().len() <= 65536);
        assert_eq!(reply["code"], "too_large", "{reply}");
        assert!(
            reply["detail"]
                .as_str()
                .unwrap()
                .contains("HUB_SEND_QUEUE_BYTES"),
            "{reply}"
        );
    }
    // The socket is still open and answers what fits.
    ok(&mut alices, json!({"type": "dns.zones"})).await;
}

async fn cname_chains_and_loops_are_refused_in_every_kind_of_change(backend: Backend) {
    let (_app, _, mut alices) = alices_zone(backend, &[]).await;
    create(
        &mut alices,
        ZONE,
        json!({"name": "c1", "type": "CNAME", "content": "elsewhere.example.net."}),
    )
    .await;
    let c3 = create(
        &mut alices,
        ZONE,
        json!({"name": "c3", "type": "CNAME", "content": "elsewhere.example.net."}),
    )
    .await["record"]["id"]
        .clone();
    // A chain, and a loop onto itself, through dns.create.
    for record in [
        json!({"name": "c2", "type": "CNAME", "content": "c1"}),
        json!({"name": "loop", "type": "CNAME", "content": "loop"}),
        json!({"name": "abs", "type": "CNAME", "content": "c1.example.com."}),
    ] {
        let reply = refused(
            &mut alices,
            json!({"type": "dns.create", "zone": ZONE, "record": record}),
            "validation",
        )
        .await;
        assert_eq!(reply["field"], "content", "{record}: {reply}");
    }
    // An update that points a CNAME at another.
    refused(
        &mut alices,
        json!({"type": "dns.update", "id": c3, "record": {"content": "c1"}}),
        "validation",
    )
    .await;
    // A batch holding a loop of two.
    let serial = serial_of(&mut alices, ZONE).await;
    let reply = refused(
        &mut alices,
        json!({"type": "dns.batch", "zone": ZONE, "serial": serial, "changes": [
            {"op": "create", "record": {"name": "p", "type": "CNAME", "content": "q"}},
            {"op": "create", "record": {"name": "q", "type": "CNAME", "content": "p"}},
        ]}),
        "validation",
    )
    .await;
    assert_eq!(reply["error_count"], 2, "{reply}");
    // An import of a loop of two.
    refused(
        &mut alices,
        json!({"type": "dns.import", "zone": ZONE, "serial": serial,
               "text": "a CNAME b\nb CNAME a\n"}),
        "validation",
    )
    .await;
    assert_eq!(records(&mut alices, ZONE).await.len(), 2);
    assert_eq!(serial_of(&mut alices, ZONE).await, serial);
}

async fn a_batch_that_names_one_record_twice_is_refused_and_applies_nothing(backend: Backend) {
    let (_app, _, mut alices) = alices_zone(backend, &[]).await;
    let id = create(
        &mut alices,
        ZONE,
        json!({"name": "www", "type": "A", "content": "192.0.2.1"}),
    )
    .await["record"]["id"]
        .clone();
    let serial = serial_of(&mut alices, ZONE).await;
    let before = history_len(&mut alices, ZONE).await;
    for changes in [
        json!([{"op": "delete", "id": id}, {"op": "delete", "id": id}]),
        json!([{"op": "update", "id": id, "record": {"ttl": 600}}, {"op": "delete", "id": id}]),
        json!([{"op": "update", "id": id, "record": {"ttl": 600}},
               {"op": "update", "id": id, "record": {"ttl": 900}}]),
        json!([{"op": "update", "id": id, "record": {"type": "CNAME", "content": "a.example.net."}},
               {"op": "update", "id": id, "record": {"content": "b.example.net."}}]),
    ] {
        let reply = refused(
            &mut alices,
            json!({"type": "dns.batch", "zone": ZONE, "serial": serial, "changes": changes}),
            "validation",
        )
        .await;
        let errors = reply["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{reply}");
        assert_eq!(
            (&errors[0]["index"], &errors[0]["field"]),
            (&json!(1), &json!("id")),
            "{reply}"
        );
    }
    assert_eq!(serial_of(&mut alices, ZONE).await, serial);
    assert_eq!(history_len(&mut alices, ZONE).await, before);
    let kept = records(&mut alices, ZONE).await;
    assert_eq!((kept.len(), &kept[0]["version"]), (1, &json!(1)));
}

async fn an_update_that_changes_nothing_bumps_nothing_and_pushes_nothing(backend: Backend) {
    let (app, alice, mut alices) = alices_zone(backend, &[]).await;
    let created = create(
        &mut alices,
        ZONE,
        json!({"name": "www", "type": "A", "content": "192.0.2.1", "ttl": 300}),
    )
    .await;
    let record = created["record"].clone();
    let id = record["id"].clone();
    let serial = created["serial"].as_i64().unwrap();
    // Opened once the creation's push is out, so it hears only what
    // follows.
    pushed(&mut alices, ZONE, serial).await;
    let mut other_tab = panel(&app, alice).await;
    for sent in [
        json!({}),
        json!({"name": "www", "type": "A", "content": "192.0.2.1", "ttl": 300}),
        json!({"comment": null}),
        json!({"comment": "  "}),
        json!({"name": "WWW.example.com."}),
    ] {
        let reply = ok(
            &mut alices,
            json!({"type": "dns.update", "id": id, "record": sent, "version": 1}),
        )
        .await;
        assert_eq!(reply["record"], record, "{sent}");
        assert_eq!(reply["serial"], serial, "{sent}");
    }
    // In a batch too, where it is listed as it is.
    let reply = ok(
        &mut alices,
        json!({"type": "dns.batch", "zone": ZONE, "serial": serial,
               "changes": [{"op": "update", "id": id, "record": {"ttl": 300}}]}),
    )
    .await;
    assert_eq!(reply["records"], json!([record]));
    assert_eq!(reply["serial"], serial);
    other_tab.silent_for(QUIET).await;
    assert_eq!(history_len(&mut alices, ZONE).await, 1);
    // A stale version is still a conflict, changed or not.
    refused(
        &mut alices,
        json!({"type": "dns.update", "id": id, "record": {}, "version": 7}),
        "conflict",
    )
    .await;
}

async fn a_zone_deleted_and_made_again_never_goes_back_in_serial(backend: Backend) {
    let (_app, _, mut alices) = alices_zone(backend, &[("HUB_DNS_WRITES_PER_SEC", "100")]).await;
    for i in 0..6 {
        create(
            &mut alices,
            ZONE,
            json!({"name": format!("h{i}"), "type": "A", "content": "192.0.2.1"}),
        )
        .await;
    }
    let reached = serial_of(&mut alices, ZONE).await;
    ok(
        &mut alices,
        json!({"type": "dns.zone.delete", "zone": ZONE, "serial": reached}),
    )
    .await;
    let again = create_zone(&mut alices, ZONE).await["serial"]
        .as_i64()
        .unwrap();
    assert!(again > reached, "made again at {again}, after {reached}");
    // Deleted and made again once more: still forward.
    ok(
        &mut alices,
        json!({"type": "dns.zone.delete", "zone": ZONE, "serial": again}),
    )
    .await;
    let third = create_zone(&mut alices, ZONE).await["serial"]
        .as_i64()
        .unwrap();
    assert!(third > again, "made again at {third}, after {again}");
}

async fn an_import_with_unbalanced_parentheses_is_refused_at_the_line(backend: Backend) {
    let (_app, _, mut alices) = alices_zone(backend, &[]).await;
    let serial = serial_of(&mut alices, ZONE).await;
    for (text, line) in [
        ("www 300 IN MX ( 10\n", 1),
        ("ok A 192.0.2.1\nwww 300 IN MX ( 10\nmail\n", 2),
        ("ok A 192.0.2.1\nwww 300 IN A 192.0.2.2 )\n", 2),
        ("www 300 IN MX ( 10 ( mail )\n", 1),
    ] {
        let reply = refused(
            &mut alices,
            json!({"type": "dns.import", "zone": ZONE, "serial": serial, "text": text}),
            "validation",
        )
        .await;
        let errors = reply["errors"].as_array().unwrap();
        assert_eq!(errors[0]["line"], line, "{text:?}: {reply}");
        assert_eq!(errors[0]["field"], "text", "{text:?}: {reply}");
    }
    // Balanced, over lines, and inside quotes: read as before.
    ok(
        &mut alices,
        json!({"type": "dns.import", "zone": ZONE, "serial": serial,
               "text": "@ 300 IN MX ( 10\n mail )\nt TXT \"(x\"\n"}),
    )
    .await;
    assert_eq!(records(&mut alices, ZONE).await.len(), 2);
}

async fn labels_that_idna2008_refuses_are_refused(backend: Backend) {
    let (_app, _, mut alices) = alices_zone(backend, &[]).await;
    for name in ["xn--zz.test", "💩.test", "xn--ls8h.test", "xn--a.test"] {
        let reply = refused(
            &mut alices,
            json!({"type": "dns.zone.create", "name": name}),
            "validation",
        )
        .await;
        assert_eq!(reply["field"], "name", "{name}: {reply}");
    }
    for (record, field) in [
        (
            json!({"name": "xn--zz", "type": "A", "content": "192.0.2.1"}),
            "name",
        ),
        (
            json!({"name": "☃", "type": "A", "content": "192.0.2.1"}),
            "name",
        ),
        (
            json!({"name": "www", "type": "CNAME", "content": "xn--zz.example.net."}),
            "content",
        ),
    ] {
        let reply = refused(
            &mut alices,
            json!({"type": "dns.create", "zone": ZONE, "record": record}),
            "validation",
        )
        .await;
        assert_eq!(reply["field"], field, "{record}: {reply}");
    }
    // Valid A-labels and U-labels still pass, kept as A-labels.
    let zone = create_zone(&mut alices, "xn--bcher-kva.test").await;
    assert_eq!(zone["name"], "xn--bcher-kva.test");
    let made = create(
        &mut alices,
        ZONE,
        json!({"name": "bücher", "type": "A", "content": "192.0.2.1"}),
    )
    .await;
    assert_eq!(made["record"]["name"], "xn--bcher-kva");
}

async fn an_srv_record_may_say_no_service_with_the_target_dot(backend: Backend) {
    let (_app, _, mut alices) = alices_zone(backend, &[]).await;
    let made = create(
        &mut alices,
        ZONE,
        json!({"name": "_submission._tcp", "type": "SRV", "content": ".",
               "priority": 0, "weight": 0, "port": 0}),
    )
    .await;
    assert_eq!(made["record"]["content"], ".");
    // Exported and imported back unchanged.
    let text = ok(&mut alices, json!({"type": "dns.export", "zone": ZONE})).await["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.contains("_submission._tcp\t3600\tIN\tSRV\t0 0 0 .\n"),
        "{text}"
    );
    let serial = serial_of(&mut alices, ZONE).await;
    let reply = ok(
        &mut alices,
        json!({"type": "dns.import", "zone": ZONE, "serial": serial, "text": text}),
    )
    .await;
    assert_eq!(reply["records"], json!([]));
    assert_eq!(reply["serial"], serial);
}
