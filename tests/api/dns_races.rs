//! DNS under two writers at once: two users creating nested zones, many
//! sockets of one user against the zone quota, and two tabs writing one
//! zone while a third panel builds its view from the pushes alone. Each
//! runs for many rounds, since a race shows only in some of them.

use serde_json::{Value, json};

use crate::dns::{create_zone, ok, panel};
use crate::helpers::{Backend, Client, TestApp};
use crate::on_both_backends;

on_both_backends!(
    zones_made_at_once_one_inside_the_other_never_both_exist,
    the_zone_quota_holds_against_many_sockets_creating_at_once,
    every_change_of_two_tabs_writing_at_once_reaches_every_panel_in_serial_order,
);

const ROUNDS: usize = 20;

/// A hub that lets one connection write as fast as a test sends.
async fn spawn_fast_writers(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let mut settings = vec![
        ("HUB_RATE_PER_SEC", "10000"),
        ("HUB_RATE_BURST", "10000"),
        ("HUB_DNS_WRITES_PER_SEC", "10000"),
    ];
    settings.extend_from_slice(extra);
    TestApp::spawn_with(backend, &settings).await
}

async fn zones_made_at_once_one_inside_the_other_never_both_exist(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let bob = app.create_user("bob", false);
    let mut alices = panel(&app, alice).await;
    let mut bobs = panel(&app, bob).await;
    for round in 0..ROUNDS {
        let outer = format!("n{round}.test");
        let inner = format!("x.n{round}.test");
        // Both sent before either is answered.
        alices
            .send(json!({"type": "dns.zone.create", "ref": "outer", "name": outer}))
            .await;
        bobs.send(json!({"type": "dns.zone.create", "ref": "inner", "name": inner}))
            .await;
        let answers = [alices.reply_to("outer").await, bobs.reply_to("inner").await];
        let made: Vec<&Value> = answers
            .iter()
            .filter(|a| a["type"] == "dns.result")
            .collect();
        assert_eq!(made.len(), 1, "round {round}: {answers:?}");
        let refused = answers.iter().find(|a| a["type"] == "error").unwrap();
        assert_eq!(refused["code"], "conflict", "round {round}: {refused}");
    }
}

async fn the_zone_quota_holds_against_many_sockets_creating_at_once(backend: Backend) {
    const SOCKETS: usize = 8;
    let app = spawn_fast_writers(backend, &[("HUB_DNS_MAX_ZONES", "3")]).await;
    for round in 0..ROUNDS {
        let user = app.create_user(&format!("u{round}"), false);
        let mut tabs = Vec::new();
        for _ in 0..SOCKETS {
            tabs.push(panel(&app, user).await);
        }
        create_zone(&mut tabs[0], &format!("owned{round}.test")).await;
        for (i, tab) in tabs.iter_mut().enumerate() {
            tab.send(json!({"type": "dns.zone.create", "ref": "make", "name": format!("z{round}-{i}.test")}))
                .await;
        }
        let mut made = 0;
        for tab in &mut tabs {
            let answer = tab.reply_to("make").await;
            if answer["type"] == "dns.result" {
                made += 1;
            } else {
                assert_eq!(answer["code"], "validation", "{answer}");
                assert_eq!(answer["field"], "owner", "{answer}");
            }
        }
        let owned = ok(&mut tabs[0], json!({"type": "dns.zones"})).await["zones"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!((made, owned), (2, 3), "round {round}");
    }
}

/// Reads a panel's frames into `serials` (the `dns.changed` of `zone`)
/// until `done` says so, failing on a `dns.resync` (in one node nothing
/// is lost, so none is needed); returns the `dns.result` serials read.
pub(crate) async fn read_until(
    client: &mut Client,
    zone: &str,
    serials: &mut Vec<i64>,
    mut done: impl FnMut(&[i64], usize) -> bool,
) -> Vec<i64> {
    let mut results = Vec::new();
    while !done(serials, results.len()) {
        let frame = client.recv().await;
        assert_ne!(frame["type"], "dns.resync", "{frame}");
        assert_ne!(frame["type"], "error", "{frame}");
        if frame["type"] == "dns.result" {
            results.push(frame["serial"].as_i64().unwrap());
        } else if frame["type"] == "dns.changed" && frame["zone"] == zone {
            serials.push(frame["serial"].as_i64().unwrap());
        }
    }
    results
}

async fn every_change_of_two_tabs_writing_at_once_reaches_every_panel_in_serial_order(
    backend: Backend,
) {
    const EACH: usize = 50;
    let app = spawn_fast_writers(backend, &[]).await;
    let alice = app.create_user("alice", false);
    let mut tabs = [panel(&app, alice).await, panel(&app, alice).await];
    let mut watcher = panel(&app, alice).await;
    for round in 0..ROUNDS {
        let zone = format!("r{round}.test");
        let first = create_zone(&mut tabs[0], &zone).await["serial"]
            .as_i64()
            .unwrap();
        for (t, tab) in tabs.iter_mut().enumerate() {
            for i in 0..EACH {
                tab.send(json!({"type": "dns.create", "ref": format!("c{t}-{i}"), "zone": zone,
                                "record": {"name": format!("h{t}-{i}"), "type": "A", "content": "192.0.2.1"}}))
                    .await;
            }
        }
        // Every change has a serial of its own, so the last one is known
        // from the replies; each panel must then have had every push, in
        // that order.
        let mut pushed: [Vec<i64>; 3] = Default::default();
        let mut last = first;
        for (tab, serials) in tabs.iter_mut().zip(&mut pushed) {
            let results = read_until(tab, &zone, serials, |_, n| n == EACH).await;
            last = last.max(*results.iter().max().unwrap());
        }
        assert_eq!(last, first + 2 * EACH as i64, "round {round}");
        let [first_tab, second_tab] = &mut tabs;
        let clients = [first_tab, second_tab, &mut watcher];
        for (client, serials) in clients.into_iter().zip(&mut pushed) {
            read_until(client, &zone, serials, |s, _| s.last() == Some(&last)).await;
        }
        let expected: Vec<i64> = (first + 1..=last).collect();
        for (who, serials) in ["first tab", "second tab", "watching panel"]
            .iter()
            .zip(&pushed)
        {
            assert_eq!(serials, &expected, "round {round}: the {who}");
        }
    }
}
