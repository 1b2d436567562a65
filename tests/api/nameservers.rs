//! Real secondaries follow the hub: BIND 9 and Knot, each started on a
//! port of its own as a secondary of the hub's zone, transfer it, and
//! after a change in the panel answer the new record within seconds: by
//! NOTIFY, since the SOA's refresh is an hour. Then again with every
//! transfer and NOTIFY signed (TSIG), over a zone that takes several
//! messages.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use domain::base::iana::Rtype;
use serde_json::{Value, json};

use crate::dns::{create, create_zone, ok, panel, records};
use crate::dns_primary::{TSIG_SECRET, answered, over_tcp, query, transferred};
use crate::helpers::{Backend, Client, HubProcess, TestApp, open_at};

/// How long a secondary may take to load or follow the zone, on a busy
/// machine: NOTIFY is sent at once and answered in milliseconds; a
/// secondary that missed it would wait an hour (the SOA's refresh).
const FOLLOWS_WITHIN: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    // UDP and TCP on the same port: taken from TCP, checked on UDP.
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A nameserver process, stopped with the test.
struct Nameserver {
    name: &'static str,
    child: Child,
    port: u16,
    /// Where its log goes, to be shown when a test fails.
    log: std::path::PathBuf,
}

impl Nameserver {
    /// Runs `command` in the foreground, its log written to `log`.
    fn start(
        name: &'static str,
        command: &mut Command,
        port: u16,
        log: std::path::PathBuf,
    ) -> Self {
        let file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        Self {
            name,
            child,
            port,
            log,
        }
    }

    /// The end of its log.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Nameserver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The key both sides sign with, when the test signs.
const KEY: &str = "hub-key";

/// The catalog zone the hub serves, when the test follows one.
const CATALOG: &str = "catalog.hub.invalid";

/// How a test sets its secondaries up.
#[derive(Clone, Copy)]
struct Setup {
    /// Every transfer and NOTIFY signed with [`KEY`].
    signed: bool,
    /// Configured with the catalog alone, not with `example.com`.
    catalog: bool,
}

fn bind9(dir: &std::path::Path, port: u16, primary: SocketAddr, setup: Setup) -> Nameserver {
    let signed = setup.signed;
    let conf = dir.join("named.conf");
    let (key, with_key) = if signed {
        (
            format!("key \"{KEY}\" {{ algorithm hmac-sha256; secret \"{TSIG_SECRET}\"; }};\n"),
            format!(" key \"{KEY}\""),
        )
    } else {
        (String::new(), String::new())
    };
    let ip = primary.ip();
    let primary_port = primary.port();
    let (zone, catalog_zones) = if setup.catalog {
        (
            CATALOG,
            format!(
                "    catalog-zones {{ zone \"{CATALOG}\" default-primaries {{ {ip} port {primary_port}{with_key}; }} \
                 in-memory yes min-update-interval 1; }};\n"
            ),
        )
    } else {
        ("example.com", String::new())
    };
    std::fs::write(
        &conf,
        format!(
            r#"options {{
    directory "{dir}";
    pid-file none;
    session-keyfile none;
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-transfer {{ 127.0.0.1; }};
{catalog_zones}}};
controls {{ }};
{key}zone "{zone}" {{
    type secondary;
    file "{zone}.db";
    primaries {{ {ip} port {primary_port}{with_key}; }};
}};
"#,
            dir = dir.display(),
        ),
    )
    .unwrap();
    Nameserver::start(
        "BIND",
        Command::new("named")
            .args(["-g", "-n", "1", "-c"])
            .arg(&conf),
        port,
        dir.join("named.log"),
    )
}

fn knot(dir: &std::path::Path, port: u16, primary: SocketAddr, setup: Setup) -> Nameserver {
    let (key, with_key) = if setup.signed {
        (
            format!(
                "key:\n  - id: {KEY}\n    algorithm: hmac-sha256\n    secret: {TSIG_SECRET}\n\n"
            ),
            format!("\n    key: {KEY}"),
        )
    } else {
        (String::new(), String::new())
    };
    for sub in ["run", "db", "zones"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let conf = dir.join("knot.conf");
    let zone = if setup.catalog {
        format!(
            "  - domain: {CATALOG}\n    master: hub\n    acl: notify_from_hub\n    \
             catalog-role: interpret\n    catalog-template: member\n"
        )
    } else {
        "  - domain: example.com\n    master: hub\n    acl: [notify_from_hub, transfer_to_the_test]\n"
            .to_owned()
    };
    std::fs::write(
        &conf,
        format!(
            r#"server:
    rundir: "{dir}/run"
    listen: 127.0.0.1@{port}

log:
  - target: stderr
    any: info

database:
    storage: "{dir}/db"

{key}remote:
  - id: hub
    address: {ip}@{primary_port}{with_key}

acl:
  - id: notify_from_hub
    address: {ip}
    action: notify{with_key}
  - id: transfer_to_the_test
    address: 127.0.0.1
    action: transfer

template:
  - id: default
    storage: "{dir}/zones"
  - id: member
    storage: "{dir}/zones"
    master: hub
    acl: notify_from_hub

zone:
{zone}"#,
            dir = dir.display(),
            ip = primary.ip(),
            primary_port = primary.port(),
        ),
    )
    .unwrap();
    Nameserver::start(
        "Knot",
        Command::new("knotd").arg("-c").arg(&conf),
        port,
        dir.join("knotd.log"),
    )
}

/// The addresses a nameserver answers for `name`, asked as an operator
/// would, with `dig`; `None` if it does not answer within a second.
async fn addresses(port: u16, name: &str) -> Option<Vec<String>> {
    let asked = tokio::process::Command::new("dig")
        .args([
            "+short",
            "+tries=1",
            "+time=1",
            "-p",
            &port.to_string(),
            "@127.0.0.1",
            name,
            "A",
        ])
        .output()
        .await
        .expect("dig runs (bind9-dnsutils)");
    asked.status.success().then(|| {
        String::from_utf8_lossy(&asked.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    })
}

/// Waits until what `server` answers for `name` satisfies `done`, which
/// `wanted` describes.
async fn until(
    server: &Nameserver,
    name: &str,
    wanted: &str,
    done: impl Fn(&Option<Vec<String>>) -> bool,
) {
    let deadline = Instant::now() + FOLLOWS_WITHIN;
    loop {
        let got = addresses(server.port, name).await;
        if done(&got) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} does not answer {name} {wanted} (it answers {got:?}); its log ends:\n{}",
            server.name,
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `server` answers `name` with `address`.
async fn until_answers(server: &Nameserver, name: &str, address: &str) {
    until(server, name, &format!("with {address}"), |got| {
        got.as_ref().is_some_and(|a| a.iter().any(|a| a == address))
    })
    .await;
}

/// Waits until `server` answers that it holds no address for `name` (it
/// answers, with no address: silence proves nothing).
async fn until_no_answer(server: &Nameserver, name: &str) {
    until(server, name, "with no address", |got| {
        got.as_ref().is_some_and(Vec::is_empty)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    skip_nameserver_tests,
    ignore = "named (bind9), knotd (knot) or dig (bind9-dnsutils) is missing (README, Test)"
)]
async fn bind_and_knot_transfer_the_zone_and_follow_each_change_by_notify() {
    follow(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    skip_nameserver_tests,
    ignore = "named (bind9), knotd (knot) or dig (bind9-dnsutils) is missing (README, Test)"
)]
async fn bind_and_knot_follow_a_zone_of_many_messages_with_every_transfer_and_notify_signed() {
    follow(true).await;
}

/// A hub that serves DNS, tells two secondaries of its changes, and holds
/// their key when `setup` signs; and the ports the two will listen on.
async fn hub(setup: Setup) -> (TestApp, [u16; 2]) {
    let ports = [free_port(), free_port()];
    let notify = format!("127.0.0.1:{}, 127.0.0.1:{}", ports[0], ports[1]);
    let keys = format!("hmac-sha256:{KEY}:{TSIG_SECRET}");
    let mut settings = vec![
        // The panel writes as fast as it is answered.
        ("HUB_RATE_PER_SEC", "1000"),
        ("HUB_RATE_BURST", "1000"),
        ("HUB_DNS_LISTEN", "127.0.0.1:0"),
        ("HUB_DNS_NOTIFY", notify.as_str()),
        ("HUB_DNS_MAX_RECORDS", "5000"),
        ("HUB_DNS_CATALOG", CATALOG),
    ];
    if setup.signed {
        settings.extend([
            ("HUB_DNS_TSIG_KEYS", keys.as_str()),
            ("HUB_DNS_NOTIFY_KEY", KEY),
        ]);
    }
    (TestApp::spawn_with(Backend::Sqlite, &settings).await, ports)
}

/// BIND and Knot, as secondaries of the hub at `primary`, on `ports`.
fn secondaries(
    primary: SocketAddr,
    ports: [u16; 2],
    setup: Setup,
    dir: &std::path::Path,
) -> [Nameserver; 2] {
    let (bind_dir, knot_dir) = (dir.join("bind"), dir.join("knot"));
    std::fs::create_dir_all(&bind_dir).unwrap();
    std::fs::create_dir_all(&knot_dir).unwrap();
    [
        bind9(&bind_dir, ports[0], primary, setup),
        knot(&knot_dir, ports[1], primary, setup),
    ]
}

/// The zone every test makes: a name server, `www`, and with `more`, 600
/// records of 100 bytes, which a transfer sends in several messages.
async fn make_zone(tab: &mut Client, more: bool) -> Value {
    let serial = create_zone(tab, "example.com").await["serial"].clone();
    let mut changes = vec![
        json!({"op": "create", "record": {"name": "@", "type": "NS", "content": "ns1.hoster.example.", "ttl": 3600}}),
        json!({"op": "create", "record": {"name": "www", "type": "A", "content": "192.0.2.1", "ttl": 300}}),
    ];
    if more {
        changes.extend((0..600).map(|i| {
            json!({"op": "create", "record": {"name": format!("host-{i}"), "type": "TXT",
                "content": format!("{i:0>100}"), "ttl": 300}})
        }));
    }
    ok(
        tab,
        json!({"type": "dns.batch", "zone": "example.com", "serial": serial, "changes": changes}),
    )
    .await["serial"]
        .clone()
}

/// The secondaries load the zone, then follow a record made, updated and
/// deleted; `signed`: with the
/// hub refusing any transfer not signed, Knot any NOTIFY not signed, and
/// a zone of 600 more records, so that a transfer is several messages.
async fn follow(signed: bool) {
    let setup = Setup {
        signed,
        catalog: false,
    };
    let (app, ports) = hub(setup).await;
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    make_zone(&mut tab, signed).await;
    let dir = tempfile::tempdir().unwrap();
    let servers = secondaries(app.dns.unwrap(), ports, setup, dir.path());
    for server in &servers {
        until_answers(server, "www.example.com", "192.0.2.1").await;
    }

    let made = create(
        &mut tab,
        "example.com",
        json!({"name": "new", "type": "A", "content": "192.0.2.7", "ttl": 300}),
    )
    .await;
    for server in &servers {
        until_answers(server, "new.example.com", "192.0.2.7").await;
    }
    // Updated, then deleted: each followed the same way.
    let id = made["record"]["id"].clone();
    ok(
        &mut tab,
        json!({"type": "dns.update", "id": id, "record": {"content": "192.0.2.8"}}),
    )
    .await;
    for server in &servers {
        until_answers(server, "new.example.com", "192.0.2.8").await;
    }
    ok(&mut tab, json!({"type": "dns.delete", "id": id})).await;
    for server in &servers {
        until_no_answer(server, "new.example.com").await;
    }
    if signed {
        let unsigned = app.metric(&answered("unsigned")).await;
        assert_eq!(unsigned, 0, "every transfer was signed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    skip_nameserver_tests,
    ignore = "named (bind9), knotd (knot) or dig (bind9-dnsutils) is missing (README, Test)"
)]
async fn bind_and_knot_configured_with_the_catalog_alone_serve_a_zone_made_in_the_panel_and_drop_it_deleted()
 {
    let setup = Setup {
        signed: true,
        catalog: true,
    };
    let (app, ports) = hub(setup).await;
    let dir = tempfile::tempdir().unwrap();
    let servers = secondaries(app.dns.unwrap(), ports, setup, dir.path());
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    let serial = make_zone(&mut tab, false).await;
    for server in &servers {
        until_answers(server, "www.example.com", "192.0.2.1").await;
    }
    ok(
        &mut tab,
        json!({"type": "dns.zone.delete", "zone": "example.com", "serial": serial}),
    )
    .await;
    for server in &servers {
        until_no_answer(server, "www.example.com").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    skip_nameserver_tests,
    ignore = "named (bind9), knotd (knot) or dig (bind9-dnsutils) is missing (README, Test)"
)]
async fn across_a_restart_of_the_hub_the_secondaries_keep_serving_and_then_follow_the_next_change()
{
    // The database and its user; this in-process hub serves no DNS and is
    // not talked to. The hub the secondaries follow runs as a process, on
    // ports that stay the same when it starts again.
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.token(app.create_user("alice", false));
    let ports = [free_port(), free_port()];
    let (http, dns) = (free_port(), free_port());
    let bind = format!("127.0.0.1:{http}");
    let listen = format!("127.0.0.1:{dns}");
    let notify = format!("127.0.0.1:{}, 127.0.0.1:{}", ports[0], ports[1]);
    let settings = [
        ("HUB_BIND", bind.as_str()),
        ("HUB_DNS_LISTEN", listen.as_str()),
        ("HUB_DNS_NOTIFY", notify.as_str()),
    ];
    let start = || {
        let mut hub = HubProcess::serve(&app.database_url, &settings);
        let mut log = hub.take_stderr();
        std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
        hub
    };
    let hub = start();
    let mut tab = open_at(http, &format!("/ws/dns/?token={token}")).await;
    make_zone(&mut tab, false).await;
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        signed: false,
        catalog: false,
    };
    let servers = secondaries(listen.parse().unwrap(), ports, setup, dir.path());
    for server in &servers {
        until_answers(server, "www.example.com", "192.0.2.1").await;
    }

    drop((tab, hub));
    for server in &servers {
        let still = addresses(server.port, "www.example.com").await;
        assert_eq!(
            still,
            Some(vec!["192.0.2.1".to_owned()]),
            "{} serves on while the hub is down",
            server.name
        );
    }

    let _hub = start();
    let mut tab = open_at(http, &format!("/ws/dns/?token={token}")).await;
    create(
        &mut tab,
        "example.com",
        json!({"name": "after", "type": "A", "content": "192.0.2.9", "ttl": 300}),
    )
    .await;
    for server in &servers {
        until_answers(server, "after.example.com", "192.0.2.9").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    skip_nameserver_tests,
    ignore = "named (bind9), knotd (knot) or dig (bind9-dnsutils) is missing (README, Test)"
)]
async fn after_200_changes_in_a_row_both_secondaries_hold_exactly_the_hub_s_zone() {
    let setup = Setup {
        signed: false,
        catalog: false,
    };
    let (app, ports) = hub(setup).await;
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    make_zone(&mut tab, true).await;
    let dir = tempfile::tempdir().unwrap();
    let servers = secondaries(app.dns.unwrap(), ports, setup, dir.path());
    for server in &servers {
        until_answers(server, "www.example.com", "192.0.2.1").await;
    }
    // Each its own change and serial, as fast as the panel is answered:
    // NOTIFYs and transfers overlap the changes. Of every four, two make
    // a record, one changes the address of one made, one deletes one.
    let (ixfrs, axfrs) = (
        app.metric(&answered("ixfr")).await,
        app.metric(&answered("axfr")).await,
    );
    let mut made = Vec::new();
    for i in 0..200 {
        match i % 4 {
            2 => {
                let id = &made[made.len() - 1];
                let update =
                    json!({"type": "dns.update", "id": id, "record": {"content": "198.51.100.1"}});
                ok(&mut tab, update).await;
            }
            3 => {
                let id = made.remove(made.len() - 2);
                ok(&mut tab, json!({"type": "dns.delete", "id": id})).await;
            }
            _ => {
                let record = json!({"name": format!("h{i}"), "type": "A", "content": format!("192.0.2.{}", i % 250 + 1), "ttl": 300});
                made.push(create(&mut tab, "example.com", record).await["record"]["id"].clone());
            }
        }
    }
    let whole = |port: u16| async move {
        let target = SocketAddr::from(([127, 0, 0, 1], port));
        let mut records = transferred(&over_tcp(target, &query("example.com", Rtype::AXFR)).await);
        records.sort();
        records
    };
    let zone = whole(app.dns.unwrap().port()).await;
    // The hub serves what the panel lists: the SOA twice, then each record.
    let listed: Vec<String> = records(&mut tab, "example.com")
        .await
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r["fqdn"].as_str().unwrap(),
                r["type"].as_str().unwrap(),
                r["content"].as_str().unwrap()
            )
        })
        .collect();
    let served: Vec<String> = zone
        .iter()
        .map(|r| {
            let fields: Vec<&str> = r.0.split_whitespace().collect();
            // The panel lists a TXT record's text unquoted.
            let content = fields[4..].join(" ");
            format!("{} {} {}", fields[0], fields[3], content.trim_matches('"'))
        })
        .filter(|r| !r.contains(" SOA "))
        .collect();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    assert!(
        served == listed_sorted,
        "the hub serves {} records, the panel lists {}; first difference: {:?}",
        served.len(),
        listed_sorted.len(),
        served.iter().zip(&listed_sorted).find(|(a, b)| a != b)
    );
    assert_eq!(
        listed.len(),
        602 + 50,
        "the NS, www, 600 more, and the 50 records of 100 made and 50 deleted"
    );
    for server in &servers {
        let deadline = Instant::now() + FOLLOWS_WITHIN;
        loop {
            let held = whole(server.port).await;
            if held == zone {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} holds {} records, not the hub's {}: {:?}; its log ends:\n{}",
                server.name,
                held.len(),
                zone.len(),
                held.first(),
                server.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // They caught up by differences: IXFRs answered with them, not one
    // whole zone sent but the test's own, and each secondary's log shows
    // it took them (Knot names the IXFR; BIND counts fewer records than
    // the 602 the zone held from the start).
    assert!(app.metric(&answered("ixfr")).await > ixfrs);
    assert_eq!(app.metric(&answered("axfr")).await, axfrs + 1);
    for server in &servers {
        let log = std::fs::read_to_string(&server.log).unwrap();
        let incremental = log.lines().any(|line| {
            line.contains("IXFR, incoming") && line.contains("finished")
                || line
                    .split("Transfer completed: ")
                    .nth(1)
                    .and_then(|rest| rest.split(' ').nth(2))
                    .and_then(|records| records.parse::<usize>().ok())
                    .is_some_and(|records| records < 602)
        });
        assert!(
            incremental,
            "{} took no IXFR; its log ends:\n{}",
            server.name,
            server.log_tail()
        );
    }
}
