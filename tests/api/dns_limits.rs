//! The DNS panel's limits, set small: changes per connection, records per
//! zone, zones per owner and the size of an import. Each is answered with
//! its error frame naming the setting, and nothing is ever half-applied.

use serde_json::{Value, json};

use crate::dns::{ask, create, create_zone, ok, panel, records, refused};
use crate::helpers::{Backend, Ending, TestApp, WAIT};
use crate::on_both_backends;

on_both_backends!(
    changes_over_the_rate_of_one_connection_are_refused_with_their_ref_and_not_applied,
    a_zone_never_grows_past_the_record_limit_and_a_refused_batch_or_import_applies_nothing,
    an_owner_has_at_most_the_zone_limit_and_zones_staff_create_for_them_count,
    an_import_of_the_largest_allowed_text_fits_one_frame_and_a_larger_one_is_too_large,
);

fn a_record(name: &str) -> Value {
    json!({"name": name, "type": "A", "content": "192.0.2.1"})
}

fn create_request(name: &str) -> Value {
    json!({"type": "dns.create", "zone": "example.com", "record": a_record(name)})
}

fn names(records: &[Value]) -> Vec<&str> {
    let mut names: Vec<&str> = records.iter().filter_map(|r| r["name"].as_str()).collect();
    names.sort_unstable();
    names
}

async fn changes_over_the_rate_of_one_connection_are_refused_with_their_ref_and_not_applied(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, &[("HUB_DNS_WRITES_PER_SEC", "1")]).await;
    let alice = app.create_user("alice", false);
    // Staff make her zone, so that her own budget is whole.
    let staff = app.create_user("sam", true);
    let mut setup = panel(&app, staff).await;
    let mut first = panel(&app, alice).await;
    let mut second = panel(&app, alice).await;
    ok(
        &mut setup,
        json!({"type": "dns.zone.create", "name": "example.com", "owner": alice}),
    )
    .await;

    // Sent back to back, so the bucket (1 a second, burst 1) has no time
    // to refill: the first passes, the second is refused with its own ref.
    for (reference, name) in [("c1", "a1"), ("c2", "a2")] {
        let mut request = create_request(name);
        request["ref"] = json!(reference);
        second.send(request).await;
    }
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let frame = second.recv().await;
        if frame["ref"].is_string() {
            answers.push(frame);
        }
    }
    answers.sort_by_key(|f| f["ref"].as_str().map(str::to_owned));
    assert_eq!(answers[0]["type"], "dns.result", "{}", answers[0]);
    assert_eq!(answers[1]["code"], "rate_limited", "{}", answers[1]);
    let detail = answers[1]["detail"].as_str().unwrap();
    assert!(detail.contains("HUB_DNS_WRITES_PER_SEC"), "{detail}");

    // Reads are not changes. Another tab of the same user has a whole
    // budget of its own, but shares the user's (the same rate, over all
    // their connections): its change goes through once the user's has
    // refilled. Tried once a second (the rate), so that each try finds a
    // token in its own connection's budget.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut request = create_request("b1");
        request["ref"] = json!("b1");
        first.send(request).await;
        let answer = first.reply_to("b1").await;
        if answer["type"] == "dns.result" {
            break;
        }
        assert_eq!(answer["code"], "rate_limited", "{answer}");
        assert!(
            answer["detail"].as_str().unwrap().contains("per user"),
            "{answer}"
        );
        assert!(tokio::time::Instant::now() < deadline, "never refilled");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert_eq!(
        names(&records(&mut second, "example.com").await),
        ["a1", "b1"]
    );

    // A connection that keeps on after being told (more refusals than its
    // burst, within the second) is closed. The reads above may have taken
    // longer than a second on a busy machine, refilling the bucket: then
    // the first of these passes, and the rest still add up to the close.
    for i in 0..10 {
        second.send(create_request(&format!("x{i}"))).await;
    }
    assert_eq!(second.ending(WAIT).await, Ending::Closed(1008));
    let kept = records(&mut first, "example.com").await;
    let mut kept = names(&kept);
    kept.retain(|n| *n != "x0");
    assert_eq!(kept, ["a1", "b1"]);
}

async fn a_zone_never_grows_past_the_record_limit_and_a_refused_batch_or_import_applies_nothing(
    backend: Backend,
) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("HUB_DNS_MAX_RECORDS", "3"),
            ("HUB_DNS_WRITES_PER_SEC", "1000"),
        ],
    )
    .await;
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    create_zone(&mut tab, "example.com").await;
    create(&mut tab, "example.com", a_record("a1")).await;
    let serial = create(&mut tab, "example.com", a_record("a2")).await["serial"].clone();

    let over = |reply: &Value| {
        assert_eq!(reply["field"], "records", "{reply}");
        let detail = reply["detail"].as_str().unwrap();
        assert!(detail.contains("HUB_DNS_MAX_RECORDS"), "{detail}");
        assert!(detail.contains("at most 3"), "{detail}");
    };
    let batch = json!({"type": "dns.batch", "zone": "example.com", "serial": serial,
        "changes": [{"op": "create", "record": a_record("b1")},
                    {"op": "create", "record": a_record("b2")}]});
    over(&refused(&mut tab, batch, "validation").await);
    let text =
        "$ORIGIN example.com.\na1 A 192.0.2.1\na2 A 192.0.2.1\ni1 A 192.0.2.1\ni2 A 192.0.2.1\n";
    let import =
        json!({"type": "dns.import", "zone": "example.com", "serial": serial, "text": text});
    over(&refused(&mut tab, import, "validation").await);
    let listed = ok(&mut tab, json!({"type": "dns.list", "zone": "example.com"})).await;
    assert_eq!(listed["zone"]["serial"], serial, "nothing was applied");
    assert_eq!(names(listed["records"].as_array().unwrap()), ["a1", "a2"]);

    // Up to the limit a change passes; past it, refused.
    let third = create(&mut tab, "example.com", a_record("a3")).await["record"].clone();
    over(&refused(&mut tab, create_request("a4"), "validation").await);
    // A full zone can still be edited: an update does not grow it.
    let update = json!({"type": "dns.update", "id": third["id"], "record": {"ttl": 600}});
    ok(&mut tab, update).await;
    assert_eq!(
        names(&records(&mut tab, "example.com").await),
        ["a1", "a2", "a3"]
    );
}

async fn an_owner_has_at_most_the_zone_limit_and_zones_staff_create_for_them_count(
    backend: Backend,
) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("HUB_DNS_MAX_ZONES", "2"),
            ("HUB_DNS_WRITES_PER_SEC", "1000"),
        ],
    )
    .await;
    let alice = app.create_user("alice", false);
    let bob = app.create_user("bob", false);
    let staff = app.create_user("staff", true);
    let mut alices = panel(&app, alice).await;
    let mut staffs = panel(&app, staff).await;

    create_zone(&mut alices, "one.example").await;
    ok(
        &mut staffs,
        json!({"type": "dns.zone.create", "name": "two.example", "owner": alice}),
    )
    .await;
    let over = |reply: &Value| {
        assert_eq!(reply["field"], "owner", "{reply}");
        let detail = reply["detail"].as_str().unwrap();
        assert!(detail.contains("HUB_DNS_MAX_ZONES"), "{detail}");
    };
    let own = json!({"type": "dns.zone.create", "name": "three.example"});
    over(&refused(&mut alices, own.clone(), "validation").await);
    let for_alice = json!({"type": "dns.zone.create", "name": "three.example", "owner": alice});
    over(&refused(&mut staffs, for_alice, "validation").await);
    // Another owner has a count of its own.
    ok(
        &mut staffs,
        json!({"type": "dns.zone.create", "name": "three.example", "owner": bob}),
    )
    .await;

    // Deleting a zone makes room again.
    let zones = ok(&mut alices, json!({"type": "dns.zones"})).await["zones"].clone();
    assert_eq!(zones.as_array().unwrap().len(), 2, "{zones}");
    let first = &zones[0];
    ok(
        &mut alices,
        json!({"type": "dns.zone.delete", "zone": first["name"], "serial": first["serial"]}),
    )
    .await;
    ok(
        &mut alices,
        json!({"type": "dns.zone.create", "name": "four.example"}),
    )
    .await;
}

async fn an_import_of_the_largest_allowed_text_fits_one_frame_and_a_larger_one_is_too_large(
    backend: Backend,
) {
    // The default import limit, 256 KiB, is four times the default frame
    // limit: a DNS socket must take the frame all the same.
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    let serial = create_zone(&mut tab, "example.com").await["serial"].clone();

    // Comment lines of quotes and backslashes, which JSON doubles: the
    // frame is close to twice the text.
    let limit = 256 * 1024;
    let mut text = String::from("$ORIGIN example.com.\nwww\tA\t192.0.2.1\n");
    let filler = format!(";{}\n", "\"\\".repeat(60));
    while text.len() + filler.len() <= limit {
        text.push_str(&filler);
    }
    text.push_str(&";".repeat(limit - text.len()));
    assert_eq!(text.len(), limit);
    let request =
        json!({"type": "dns.import", "zone": "example.com", "serial": serial, "text": text});
    // Far over the general 64 KiB frame limit.
    assert!(request.to_string().len() > 448 * 1024);
    let imported = ok(&mut tab, request).await;
    let serial = imported["serial"].clone();
    assert_eq!(names(&records(&mut tab, "example.com").await), ["www"]);

    text.push('\n');
    let larger = json!({"type": "dns.import", "zone": "example.com", "serial": serial,
        "text": text.replace("www", "web")});
    let reply = ask(&mut tab, larger).await;
    assert_eq!(reply["code"], "too_large", "{reply}");
    assert_eq!(reply["field"], "text", "{reply}");
    let detail = reply["detail"].as_str().unwrap();
    assert!(detail.contains("HUB_DNS_MAX_IMPORT_BYTES"), "{detail}");
    let listed = ok(&mut tab, json!({"type": "dns.list", "zone": "example.com"})).await;
    assert_eq!(listed["zone"]["serial"], serial, "nothing was applied");
    assert_eq!(names(listed["records"].as_array().unwrap()), ["www"]);
}
