//! Real secondaries follow the hub: BIND 9 and Knot, each started on a
//! port of its own as a secondary of the hub's zone, transfer it, and
//! after a change in the panel answer the new record within seconds: by
//! NOTIFY, since the SOA's refresh is an hour.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use domain::base::iana::{Rcode, Rtype};
use domain::base::{Message, MessageBuilder, Name, ParsedName};
use domain::rdata::A;
use serde_json::json;

use crate::dns::{create, create_zone, panel};
use crate::helpers::{Backend, TestApp};

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
}

impl Nameserver {
    /// Runs `command` in the foreground, its output let go.
    fn start(name: &'static str, command: &mut Command, port: u16) -> Self {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        Self { name, child, port }
    }
}

impl Drop for Nameserver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bind9(dir: &std::path::Path, port: u16, primary: SocketAddr) -> Nameserver {
    let conf = dir.join("named.conf");
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
}};
controls {{ }};
zone "example.com" {{
    type secondary;
    file "example.com.db";
    primaries {{ {ip} port {primary_port}; }};
}};
"#,
            dir = dir.display(),
            ip = primary.ip(),
            primary_port = primary.port(),
        ),
    )
    .unwrap();
    Nameserver::start(
        "BIND",
        Command::new("named")
            .args(["-g", "-n", "1", "-c"])
            .arg(&conf),
        port,
    )
}

fn knot(dir: &std::path::Path, port: u16, primary: SocketAddr) -> Nameserver {
    for sub in ["run", "db", "zones"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let conf = dir.join("knot.conf");
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

remote:
  - id: hub
    address: {ip}@{primary_port}

acl:
  - id: notify_from_hub
    address: {ip}
    action: notify

template:
  - id: default
    storage: "{dir}/zones"

zone:
  - domain: example.com
    master: hub
    acl: notify_from_hub
"#,
            dir = dir.display(),
            ip = primary.ip(),
            primary_port = primary.port(),
        ),
    )
    .unwrap();
    Nameserver::start("Knot", Command::new("knotd").arg("-c").arg(&conf), port)
}

/// The A records a nameserver answers for `name`, if it answers.
async fn addresses(port: u16, name: &str) -> Option<Vec<String>> {
    let mut question = MessageBuilder::new_vec().question();
    question
        .push((name.parse::<Name<Vec<u8>>>().unwrap(), Rtype::A))
        .unwrap();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(&question.finish(), ("127.0.0.1", port))
        .await
        .ok()?;
    let mut buf = vec![0; 4096];
    let len = tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(len);
    let answer = Message::from_octets(buf).ok()?;
    if answer.header().rcode() != Rcode::NOERROR {
        return None;
    }
    Some(
        answer
            .answer()
            .ok()?
            .limit_to::<A>()
            .filter_map(Result::ok)
            .map(|r: domain::base::Record<ParsedName<_>, A>| r.data().addr().to_string())
            .collect(),
    )
}

/// Waits until `server` answers `name` with `address`.
async fn until_answers(server: &Nameserver, name: &str, address: &str) {
    let deadline = Instant::now() + FOLLOWS_WITHIN;
    loop {
        let got = addresses(server.port, name).await;
        if got.as_ref().is_some_and(|a| a.iter().any(|a| a == address)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} does not answer {name} with {address} (it answers {got:?})",
            server.name
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    skip_nameserver_tests,
    ignore = "named (bind9) or knotd (knot) is missing (README, Test)"
)]
async fn bind_and_knot_transfer_the_zone_and_follow_each_change_by_notify() {
    let (bind_port, knot_port) = (free_port(), free_port());
    let notify = format!("127.0.0.1:{bind_port}, 127.0.0.1:{knot_port}");
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("HUB_DNS_LISTEN", "127.0.0.1:0"),
            ("HUB_DNS_NOTIFY", notify.as_str()),
        ],
    )
    .await;
    let primary = app.dns.unwrap();
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    create_zone(&mut tab, "example.com").await;
    for record in [
        json!({"name": "@", "type": "NS", "content": "ns1.hoster.example.", "ttl": 3600}),
        json!({"name": "www", "type": "A", "content": "192.0.2.1", "ttl": 300}),
    ] {
        create(&mut tab, "example.com", record).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let (bind_dir, knot_dir) = (dir.path().join("bind"), dir.path().join("knot"));
    std::fs::create_dir_all(&bind_dir).unwrap();
    std::fs::create_dir_all(&knot_dir).unwrap();
    let servers = [
        bind9(&bind_dir, bind_port, primary),
        knot(&knot_dir, knot_port, primary),
    ];
    for server in &servers {
        until_answers(server, "www.example.com", "192.0.2.1").await;
    }

    create(
        &mut tab,
        "example.com",
        json!({"name": "new", "type": "A", "content": "192.0.2.7", "ttl": 300}),
    )
    .await;
    for server in &servers {
        until_answers(server, "new.example.com", "192.0.2.7").await;
    }
}
