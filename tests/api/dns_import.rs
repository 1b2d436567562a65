//! What the DNS panel's import box and edit form rely on: an import that
//! merges by default on the page and replaces only when asked, a dry run
//! that shows the changes without making them, and `null` clearing a
//! field in `dns.update`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::dns::{create, create_zone, ok, panel, pushed, records, refused};
use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    a_merge_import_adds_and_updates_and_deletes_nothing,
    a_replace_import_deletes_what_the_file_does_not_hold_and_is_the_default,
    a_dry_run_lists_the_changes_and_applies_nothing,
    a_dry_run_is_refused_for_exactly_what_the_import_would_be,
    null_clears_an_optional_field_and_is_refused_where_the_type_needs_it,
);

const QUIET: Duration = Duration::from_millis(300);

/// A zone of `n` A records `h0` … `h{n-1}`, made in one batch; its serial.
async fn zone_of(client: &mut crate::helpers::Client, n: usize) -> i64 {
    let zone = create_zone(client, "example.com").await;
    let changes: Vec<Value> = (0..n)
        .map(|i| {
            json!({"op": "create", "record": {"name": format!("h{i}"), "type": "A",
                "content": format!("192.0.2.{}", i % 250 + 1), "ttl": 300}})
        })
        .collect();
    let reply = ok(
        client,
        json!({"type": "dns.batch", "zone": "example.com", "serial": zone["serial"], "changes": changes}),
    )
    .await;
    reply["serial"].as_i64().unwrap()
}

fn import(serial: i64, text: &str, mode: Option<&str>, dry_run: bool) -> Value {
    let mut request =
        json!({"type": "dns.import", "zone": "example.com", "serial": serial, "text": text});
    if let Some(mode) = mode {
        request["mode"] = json!(mode);
    }
    if dry_run {
        request["dry_run"] = json!(true);
    }
    request
}

async fn a_merge_import_adds_and_updates_and_deletes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    let serial = zone_of(&mut tab, 300).await;

    // One pasted line: the zone keeps its 300 records and gains one.
    let reply = ok(
        &mut tab,
        import(serial, "new IN A 192.0.2.200", Some("merge"), false),
    )
    .await;
    assert_eq!(reply["count"], 1, "{reply}");
    assert_eq!(reply["serial"], serial + 1);
    assert_eq!(records(&mut tab, "example.com").await.len(), 301);

    // A line for a record already there with another TTL updates it in
    // place (same id, next version); an identical one changes nothing.
    let before = records(&mut tab, "example.com").await;
    let h1 = before.iter().find(|r| r["name"] == "h1").unwrap();
    let text = "h1 900 IN A 192.0.2.2\nh2 300 IN A 192.0.2.3";
    let reply = ok(&mut tab, import(serial + 1, text, Some("merge"), false)).await;
    assert_eq!(reply["count"], 1, "{reply}");
    let updated = &reply["records"][0];
    assert_eq!(
        (&updated["id"], &updated["ttl"], updated["version"].as_i64()),
        (
            &h1["id"],
            &json!(900),
            Some(h1["version"].as_i64().unwrap() + 1)
        )
    );
    assert_eq!(records(&mut tab, "example.com").await.len(), 301);
}

async fn a_replace_import_deletes_what_the_file_does_not_hold_and_is_the_default(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    let serial = zone_of(&mut tab, 5).await;

    let reply = ok(
        &mut tab,
        import(serial, "new IN A 192.0.2.200", Some("replace"), false),
    )
    .await;
    assert_eq!(reply["count"], 6, "5 deleted and 1 created: {reply}");
    assert_eq!(records(&mut tab, "example.com").await.len(), 1);

    // Without a mode an import replaces, as it always has.
    let reply = ok(
        &mut tab,
        import(serial + 1, "other IN A 192.0.2.9", None, false),
    )
    .await;
    assert_eq!(reply["count"], 2, "{reply}");
    let names: Vec<Value> = records(&mut tab, "example.com")
        .await
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, [json!("other")]);

    refused(
        &mut tab,
        import(serial + 2, "x IN A 192.0.2.9", Some("append"), false),
        "validation",
    )
    .await;
}

async fn a_dry_run_lists_the_changes_and_applies_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    let serial = zone_of(&mut tab, 3).await;
    // Another tab, open (answered once) after the zone was made and its
    // records' push reached the first.
    pushed(&mut tab, "example.com", serial).await;
    let mut other = panel(&app, alice).await;
    ok(&mut other, json!({"type": "dns.zones"})).await;
    let before = records(&mut tab, "example.com").await;
    let text = "h0 IN A 192.0.2.1\nh1 900 IN A 192.0.2.2\nnew IN A 192.0.2.200";

    let preview = ok(&mut tab, import(serial, text, Some("replace"), true)).await;
    assert_eq!(preview["dry_run"], true);
    assert_eq!(
        preview["serial"], serial,
        "the serial a confirmed import names"
    );
    assert_eq!(
        (
            &preview["created"],
            &preview["updated"],
            &preview["deleted"]
        ),
        (&json!(1), &json!(2), &json!(1)),
        "h0 takes the file's TTL of 3600, h1 900, h2 goes, new comes: {preview}"
    );
    let changes = preview["changes"].as_array().unwrap();
    let h1 = changes
        .iter()
        .find(|c| c["record"]["name"] == "h1")
        .unwrap();
    assert_eq!(
        (&h1["action"], &h1["old"]["ttl"], &h1["record"]["ttl"]),
        (&json!("updated"), &json!(300), &json!(900)),
        "an update shows what it replaces"
    );
    let new = changes.iter().find(|c| c["action"] == "created").unwrap();
    assert_eq!(new["record"]["name"], "new");
    assert!(
        new["record"].get("id").is_none(),
        "a record not yet made has no id"
    );
    assert_eq!(
        changes.iter().find(|c| c["action"] == "deleted").unwrap()["record"]["name"],
        "h2"
    );

    // Nothing happened: the records, the serial, no push to another tab.
    assert_eq!(records(&mut tab, "example.com").await, before);
    other.silent_for(QUIET).await;
    let merge = ok(&mut tab, import(serial, text, Some("merge"), true)).await;
    assert_eq!(merge["deleted"], 0, "{merge}");

    // The confirmed import names the previewed serial and does just that.
    let applied = ok(&mut tab, import(serial, text, Some("replace"), false)).await;
    assert_eq!(applied["count"], 4);
    assert_eq!(applied["serial"], serial + 1);
}

async fn a_dry_run_is_refused_for_exactly_what_the_import_would_be(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("HUB_DNS_MAX_RECORDS", "4")]).await;
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    let serial = zone_of(&mut tab, 3).await;

    let stale = refused(
        &mut tab,
        import(serial - 1, "x IN A 192.0.2.9", Some("merge"), true),
        "conflict",
    )
    .await;
    assert_eq!(stale["serial"], serial);
    let over = refused(
        &mut tab,
        import(
            serial,
            "x IN A 192.0.2.9\ny IN A 192.0.2.9",
            Some("merge"),
            true,
        ),
        "validation",
    )
    .await;
    assert_eq!(over["field"], "records", "{over}");
    let bad = refused(
        &mut tab,
        import(
            serial,
            "ok IN A 192.0.2.9\nbad IN A 300.1.1.1",
            Some("merge"),
            true,
        ),
        "validation",
    )
    .await;
    assert_eq!(bad["errors"][0]["line"], 2, "{bad}");
    assert_eq!(records(&mut tab, "example.com").await.len(), 3);
}

async fn null_clears_an_optional_field_and_is_refused_where_the_type_needs_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    create_zone(&mut tab, "example.com").await;
    let www = create(
        &mut tab,
        "example.com",
        json!({"name": "www", "type": "A", "content": "192.0.2.1", "ttl": 600, "comment": "the web"}),
    )
    .await["record"]
        .clone();

    let cleared = ok(
        &mut tab,
        json!({"type": "dns.update", "id": www["id"], "version": www["version"],
            "record": {"comment": null, "ttl": null}}),
    )
    .await["record"]
        .clone();
    assert!(cleared.get("comment").is_none(), "{cleared}");
    assert_eq!(cleared["ttl"], 3600, "a cleared TTL is the default one");
    assert_eq!(cleared["content"], "192.0.2.1", "fields not sent stay");

    let mx = create(
        &mut tab,
        "example.com",
        json!({"name": "@", "type": "MX", "content": "mail", "priority": 10}),
    )
    .await["record"]
        .clone();
    let refusal = refused(
        &mut tab,
        json!({"type": "dns.update", "id": mx["id"], "record": {"priority": null}}),
        "validation",
    )
    .await;
    assert_eq!(refusal["field"], "priority", "{refusal}");
}
