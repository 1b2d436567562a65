//! Several hubs as one: three real `hub serve` processes on one PostgreSQL
//! database and one Redis of the test's own, or a Redis Cluster of three
//! masters with a replica each, each test talking to all three hubs over
//! real sockets, as clients behind a load balancer would. Most tests run
//! over both (`on_both!`). Every wait is for a state (a frame, a
//! subscription count, an HTTP answer) with a generous bound; nothing here
//! measures speed.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::analytics::watching_totals_at;
use crate::dns;
use crate::dns_primary::{Secondary, notified_zone};
use crate::dns_races::read_until;
use crate::helpers::{
    Backend, Client, Ending, HubProcess, KEY, TestApp, connect_at, flood_until_a_member_is_dropped,
    join_at, leave_by, open_at, postgres_admin_url,
};
use crate::redis_cluster::{Kind, Redis};

const NODES: usize = 3;
const INGEST_KEY: &str = "cluster-test-ingest-key";
/// The bound on waiting for a state to spread over the cluster: far above
/// what it takes, so that only a missing behaviour (not a loaded machine)
/// fails a test.
const PATIENCE: Duration = Duration::from_secs(20);

/// Runs a test over one Redis and over a Redis Cluster: `on_both!(name)`
/// before `async fn name(kind: Kind)` makes the tests
/// `name::on_one_redis` and `name::on_redis_cluster`.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            use super::Kind;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(
                any(skip_cluster_tests, skip_postgres_tests),
                ignore = "redis-server or HUB_TEST_POSTGRES_URL is missing (README, Test)"
            )]
            async fn on_one_redis() {
                super::$name(Kind::One).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(
                any(skip_cluster_tests, skip_postgres_tests),
                ignore = "redis-server or HUB_TEST_POSTGRES_URL is missing (README, Test)"
            )]
            async fn on_redis_cluster() {
                super::$name(Kind::Cluster).await;
            }
        }
    };
}

/// One node: its process (gone once killed) and the tail of its log, kept
/// to be shown when a test fails.
struct Node {
    hub: Option<HubProcess>,
    port: u16,
    log: Arc<Mutex<VecDeque<String>>>,
}

/// Reads a node's log to its end in a thread of its own, so the node never
/// blocks on a full pipe, and keeps its last lines other than the access log.
fn drain(
    mut stderr: std::io::BufReader<std::process::ChildStderr>,
) -> Arc<Mutex<VecDeque<String>>> {
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let kept = tail.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        while stderr.read_line(&mut line).is_ok_and(|n| n > 0) {
            // The access log would push out what the node said of itself.
            if line.contains("actix_web::middleware::logger") {
                line.clear();
                continue;
            }
            let mut kept = kept.lock().unwrap();
            if kept.len() == 40 {
                kept.pop_front();
            }
            kept.push_back(std::mem::take(&mut line));
        }
    });
    tail
}

/// Three nodes on one fresh PostgreSQL database and one Redis or Redis
/// Cluster. Fields drop in order: the nodes stop before Redis and the
/// database go.
struct Cluster {
    nodes: Vec<Node>,
    redis: Redis,
    /// The database (created, migrated, dropped with it), its users and
    /// tokens. Its own in-process hub has no `REDIS_URL`, so it serves alone
    /// and is no member of the cluster; the tests never talk to it.
    app: TestApp,
    settings: Vec<(String, String)>,
}

impl Cluster {
    /// Starts the cluster with these settings over the tests' defaults, or
    /// `None` (after a note) where PostgreSQL or Redis is not there outside CI.
    async fn start(kind: Kind, overrides: &[(&str, &str)]) -> Option<Self> {
        Self::start_nodes(kind, NODES, overrides).await
    }

    /// `start` with `count` nodes.
    async fn start_nodes(kind: Kind, count: usize, overrides: &[(&str, &str)]) -> Option<Self> {
        postgres_admin_url()?;
        let redis = Redis::start(kind).await?;
        let app = TestApp::spawn(Backend::Postgres).await;
        let redis_env = redis.env();
        let mut settings: HashMap<&str, &str> = [
            ("HUB_INGEST_KEY", INGEST_KEY),
            ("HUB_ANALYTICS_INTERVAL_MS", "200"),
            ("HUB_DB_POOL_SIZE", "4"),
            ("HUB_WORKERS", "2"),
            // Tests send far faster than people do.
            ("HUB_RATE_PER_SEC", "100000"),
            ("HUB_RATE_BURST", "100000"),
            ("HUB_DNS_WRITES_PER_SEC", "1000"),
        ]
        .into_iter()
        .collect();
        settings.extend(redis_env.iter().map(|(k, v)| (*k, v.as_str())));
        settings.extend(overrides.iter().copied());
        let settings: Vec<(String, String)> = settings
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let mut cluster = Self {
            nodes: Vec::new(),
            redis,
            app,
            settings,
        };
        for _ in 0..count {
            let env: Vec<(&str, &str)> = cluster
                .settings
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut hub = HubProcess::serve(&cluster.app.database_url, &env);
            let log = drain(hub.take_stderr());
            cluster.nodes.push(Node {
                port: hub.port,
                hub: Some(hub),
                log,
            });
        }
        // Each node listens on its own probe channel (one per shard of a
        // cluster), and says it is on the bus once its probes came back:
        // before that it delivers locally only.
        let probes = count * cluster.redis.probes_per_node();
        cluster
            .until("every node subscribes its probe channels", || async {
                let now = cluster.redis.channels("hub:probe:*").await;
                (now.len() == probes).then_some(()).ok_or(now)
            })
            .await;
        cluster.until_metric_everywhere("hub_bus_up 1").await;
        Some(cluster)
    }

    fn port(&self, node: usize) -> u16 {
        self.nodes[node].port
    }

    fn user(&self, name: &str) -> i32 {
        self.app.create_user(name, false)
    }

    fn staff(&self, name: &str) -> i32 {
        self.app.create_user(name, true)
    }

    /// A chat member of `room` on `node`, its join frames (history, presence) read.
    async fn join(&self, node: usize, room: &str, user: i32) -> (Client, Value, Value) {
        let token = self.app.token(user);
        join_at(self.port(node), &format!("/ws/chat/{room}/?token={token}")).await
    }

    /// Waits until `probe` answers `Ok`, within `PATIENCE`; a failure shows
    /// the last state it answered.
    async fn until<T, E: std::fmt::Debug, F: Future<Output = Result<T, E>>>(
        &self,
        what: &str,
        probe: impl FnMut() -> F,
    ) -> T {
        until_within(what, PATIENCE, probe).await
    }

    /// Waits until exactly `n` connections (one per node) listen on `channel`.
    async fn until_subscribed(&self, channel: &str, n: i64) {
        self.until(&format!("{n} subscribers of {channel}"), || async {
            let now = self.redis.numsub(channel).await;
            (now == n).then_some(()).ok_or(now)
        })
        .await;
    }

    /// Waits until someone listens on `channel`, for a channel the promise
    /// says nothing more about (which nodes hold it while others need it).
    async fn until_heard(&self, channel: &str) {
        self.until(&format!("a subscriber of {channel}"), || async {
            let now = self.redis.numsub(channel).await;
            (now > 0).then_some(()).ok_or(now)
        })
        .await;
    }

    async fn readyz(&self, node: usize) -> (u16, Value) {
        let resp = reqwest::get(format!("http://127.0.0.1:{}/readyz", self.port(node)))
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn metrics(&self, node: usize) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port(node)))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until every node's `/metrics` holds this line.
    async fn until_metric_everywhere(&self, line: &str) {
        for node in 0..self.nodes.len() {
            self.until(&format!("node {node}: {line}"), || async {
                let metrics = self.metrics(node).await;
                metrics
                    .lines()
                    .any(|l| l == line)
                    .then_some(())
                    .ok_or(metrics)
            })
            .await;
        }
    }

    /// Waits until every node's `/readyz` answers `status`; the bodies.
    async fn until_ready_is(&self, status: u16) -> Vec<Value> {
        let mut bodies = Vec::new();
        for node in 0..self.nodes.len() {
            bodies.push(
                self.until(&format!("node {node}: /readyz {status}"), || async {
                    let (now, body) = self.readyz(node).await;
                    if now == status {
                        Ok(body)
                    } else {
                        Err((now, body))
                    }
                })
                .await,
            );
        }
        bodies
    }

    /// Kills a node with SIGKILL (no goodbye to Redis or its clients) and reaps it.
    fn kill(&mut self, node: usize) {
        let mut hub = self.nodes[node].hub.take().expect("a running node");
        hub.child().kill().unwrap();
        hub.child().wait().unwrap();
    }

    /// Stops a node with SIGTERM, as a deploy does, and waits for it to
    /// exit; whether it exited cleanly.
    async fn stop(&mut self, node: usize) -> std::process::ExitStatus {
        let mut hub = self.nodes[node].hub.take().expect("a running node");
        // SAFETY: kill only sends a signal to the child this test started.
        assert_eq!(unsafe { libc::kill(hub.pid() as i32, libc::SIGTERM) }, 0);
        until_within("the stopped node to exit", PATIENCE, || {
            let status = hub.child().try_wait().unwrap();
            async move { status.ok_or(()) }
        })
        .await
    }

    /// The ids of the nodes that listen on their probe channels
    /// (`hub:probe:<id>`, on a cluster `hub:probe:<id>:<n>`): the live ones.
    async fn probing(&self) -> BTreeSet<String> {
        let probes = self.redis.channels("hub:probe:*").await;
        probes
            .iter()
            .filter_map(|p| p.strip_prefix("hub:probe:")?.split(':').next())
            .map(str::to_owned)
            .collect()
    }

    /// The id of the one node that stopped probing since `before` was read.
    async fn gone_node(&self, before: &BTreeSet<String>) -> String {
        let after = self
            .until("the gone node's probe channels to go", || async {
                let now = self.probing().await;
                (now.len() == NODES - 1).then_some(now.clone()).ok_or(now)
            })
            .await;
        before.difference(&after).next().unwrap().clone()
    }

    /// Runs the `hub` command line as an operator would on a node's machine:
    /// with that node's database and Redis; it must succeed.
    fn cli(&self, args: &[&str]) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hub"))
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &self.app.database_url)
            .env("JWT_SIGNING_KEY", KEY)
            .envs(self.redis.env())
            .env("RUST_LOG", "warn")
            .output()
            .expect("run hub");
        assert!(
            out.status.success(),
            "hub {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (i, node) in self.nodes.iter().enumerate() {
                let log = node
                    .log
                    .lock()
                    .map(|l| l.iter().cloned().collect::<String>());
                eprintln!(
                    "--- node {i} (port {}), last log lines:\n{}",
                    node.port,
                    log.unwrap_or_default()
                );
            }
        }
    }
}

async fn until_within<T, E: std::fmt::Debug, F: Future<Output = Result<T, E>>>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(done) => return done,
            Err(state) => assert!(
                Instant::now() < deadline,
                "not within {within:?}: {what}; last seen: {state:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The next frame of this type, skipping others, within `within`.
async fn next_of(client: &mut Client, kind: &str, within: Duration) -> Value {
    try_next_of(client, kind, within)
        .await
        .unwrap_or_else(|| panic!("no {kind} within {within:?}"))
}

/// The next frame of this type, skipping others, or `None` after `within`.
async fn try_next_of(client: &mut Client, kind: &str, within: Duration) -> Option<Value> {
    tokio::time::timeout(within, async {
        loop {
            let frame = client.recv_within(PATIENCE + within).await;
            if frame["type"] == kind {
                return frame;
            }
        }
    })
    .await
    .ok()
}

/// Reads `kind` presence events until each of `names` has come, in
/// whatever order the nodes' events arrive; every name read, sorted, so
/// that one announced twice shows.
/// The `hub:presence*` keys (as `RedisServer::presence_entries` reads
/// them) whose name or content names node `id`.
fn naming(entries: &[(String, Vec<String>)], id: &str) -> Vec<(String, Vec<String>)> {
    entries
        .iter()
        .filter(|(k, v)| k.contains(id) || v.iter().any(|x| x.contains(id)))
        .cloned()
        .collect()
}

async fn announced(
    client: &mut Client,
    kind: &str,
    names: &[&str],
    within: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen: Vec<String> = Vec::new();
    while !names.iter().all(|n| seen.iter().any(|s| s == n)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(frame) = try_next_of(client, kind, left).await else {
            panic!("{kind} for {names:?} not within {within:?}; had {seen:?}");
        };
        seen.push(frame["user"]["username"].as_str().unwrap().to_owned());
    }
    seen.sort();
    seen
}

/// The usernames a `presence` frame lists, sorted.
fn listed(presence: &Value) -> Vec<String> {
    let mut names: Vec<String> = presence["members"]
        .as_array()
        .unwrap_or_else(|| panic!("a member list: {presence}"))
        .iter()
        .map(|m| m["username"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// The texts of a `chat.history` frame, oldest first.
fn history_texts(history: &Value) -> Vec<String> {
    history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap().to_owned())
        .collect()
}

/// Reads chat messages until `done` says the texts counted so far are
/// enough; every text is counted, so a duplicate shows.
async fn count_until(
    client: &mut Client,
    counts: &mut HashMap<String, usize>,
    within: Duration,
    done: impl Fn(&HashMap<String, usize>) -> bool,
) {
    let deadline = Instant::now() + within;
    while !done(counts) {
        let frame = next_of(
            client,
            "chat.message",
            deadline.saturating_duration_since(Instant::now()),
        )
        .await;
        *counts
            .entry(frame["message"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
}

on_both!(every_member_on_every_node_gets_all_1800_messages_once_in_each_senders_order);
async fn every_member_on_every_node_gets_all_1800_messages_once_in_each_senders_order(kind: Kind) {
    const PER_SENDER: usize = 300;
    let Some(cluster) = Cluster::start(kind, &[]).await else {
        return;
    };
    let room = "crowd";
    // Two senders and one listener on each node.
    let mut members = Vec::new();
    for node in 0..NODES {
        for k in 0..3 {
            let id = cluster.user(&format!("n{node}m{k}"));
            let (client, _, _) = cluster.join(node, room, id).await;
            members.push((client, id, k < 2));
        }
    }
    cluster
        .until_subscribed(&format!("hub:room:{room}"), 3)
        .await;
    let senders: BTreeSet<i64> = members
        .iter()
        .filter(|m| m.2)
        .map(|m| i64::from(m.1))
        .collect();
    let total = senders.len() * PER_SENDER;
    assert_eq!(total, 1800);

    let tasks: Vec<_> = members
        .into_iter()
        .map(|(mut client, id, sender)| {
            tokio::spawn(async move {
                if sender {
                    for seq in 0..PER_SENDER {
                        client.say(&format!("{id}:{seq}")).await;
                    }
                }
                let mut frames: Vec<Value> = Vec::with_capacity(total);
                while frames.len() < total {
                    let Some(frame) = try_next_of(&mut client, "chat.message", PATIENCE).await
                    else {
                        let mut got: HashMap<i64, Vec<&str>> = HashMap::new();
                        for f in &frames {
                            got.entry(f["user"]["id"].as_i64().unwrap())
                                .or_default()
                                .push(f["message"].as_str().unwrap());
                        }
                        // Which of each sender's were missed, not just how many.
                        let got: HashMap<i64, Vec<usize>> = got
                            .into_iter()
                            .map(|(from, texts)| {
                                let heard: HashSet<String> =
                                    texts.iter().map(|t| (*t).to_owned()).collect();
                                let missed = (0..PER_SENDER)
                                    .filter(|seq| !heard.contains(&format!("{from}:{seq}")))
                                    .collect();
                                (from, missed)
                            })
                            .collect();
                        panic!(
                            "member {id} got {} of {total}; missed, by sender: {got:?}",
                            frames.len()
                        );
                    };
                    frames.push(frame);
                }
                (client, id, frames)
            })
        })
        .collect();
    let mut clients = Vec::new();
    for task in tasks {
        let (client, id, frames) = task.await.unwrap();
        let ids: HashSet<i64> = frames.iter().map(|f| f["id"].as_i64().unwrap()).collect();
        assert_eq!(ids.len(), total, "member {id} got a message twice");
        let mut by_sender: HashMap<i64, Vec<usize>> = HashMap::new();
        for frame in &frames {
            let (from, seq) = frame["message"].as_str().unwrap().split_once(':').unwrap();
            assert_eq!(frame["user"]["id"].as_i64().unwrap().to_string(), from);
            by_sender
                .entry(from.parse().unwrap())
                .or_default()
                .push(seq.parse().unwrap());
        }
        assert_eq!(by_sender.keys().copied().collect::<BTreeSet<_>>(), senders);
        for (from, seqs) in &by_sender {
            assert!(
                seqs.iter().copied().eq(0..PER_SENDER),
                "member {id} got sender {from}'s messages out of order or not all: first \
                 differences (position, got) {:?}",
                seqs.iter()
                    .enumerate()
                    .filter(|(i, s)| i != *s)
                    .take(5)
                    .collect::<Vec<_>>()
            );
        }
        clients.push(client);
    }
    // Nothing more was on its way: the next message anyone gets is a last one.
    clients[0].say("the end").await;
    for client in &mut clients {
        assert_eq!(
            next_of(client, "chat.message", PATIENCE).await["message"],
            "the end"
        );
    }
}

/// The ids one reader saw, in the order it saw them: each of the room's
/// `total` messages once, rising by one from the room's first.
fn assert_every_id_once_in_order(reader: &str, ids: &[i64], total: usize) {
    let expected: Vec<i64> = (1..=i64::try_from(total).unwrap()).collect();
    if let Some(at) = (0..expected.len().max(ids.len())).find(|&i| ids.get(i) != expected.get(i)) {
        let around = at.saturating_sub(3)..(at + 4).min(ids.len());
        panic!(
            "{reader} got {} ids, not 1..={total} in order: at position {at}, {:?}",
            ids.len(),
            &ids[around]
        );
    }
}

/// What goes wrong with Redis while messages flow.
#[derive(Clone, Copy, Debug)]
enum Trouble {
    /// Every Redis process is killed, and started again empty later.
    Outage,
    /// The master that serves the room's channel hands over to its replica
    /// (`CLUSTER FAILOVER`), as before maintenance.
    Failover,
    /// That master is killed with SIGKILL: its replica takes over once the
    /// others see it gone.
    MasterKilled,
}

/// Senders on every node, a listener on every node and a reader that keeps
/// leaving and coming back with `?since=` of the last id it saw, each time
/// to the next node; first with Redis up, then through `trouble`.
async fn ids_rise_in_one_order_everywhere_and_resuming_from_any_of_them_misses_none(
    kind: Kind,
    nodes: usize,
    trouble: Trouble,
) {
    const ROUNDS: usize = 40;
    /// Rounds said in trouble, one every `TROUBLE_PACE`: long enough to
    /// span a failover (the node timeout is 2 s) on a busy machine.
    const ROUNDS_IN_TROUBLE: usize = 20;
    const TROUBLE_PACE: Duration = Duration::from_millis(300);
    /// Messages the reader reads on one socket before it resumes on the next.
    const READ_BEFORE_RESUME: usize = 4;
    let Some(mut cluster) = Cluster::start_nodes(kind, nodes, &[("HUB_HISTORY_LEN", "1000")]).await
    else {
        return;
    };
    let room = "order";
    let mut senders = Vec::new();
    let mut listeners = Vec::new();
    for node in 0..nodes {
        for k in 0..2 {
            let id = cluster.user(&format!("s{node}{k}"));
            senders.push(cluster.join(node, room, id).await.0);
        }
        let id = cluster.user(&format!("l{node}"));
        listeners.push(cluster.join(node, room, id).await.0);
    }
    cluster
        .until_subscribed(&format!("hub:room:{room}"), i64::try_from(nodes).unwrap())
        .await;
    let total = senders.len() * (ROUNDS + ROUNDS_IN_TROUBLE);

    let listening: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(node, mut client)| {
            tokio::spawn(async move {
                let mut ids = Vec::new();
                while ids.len() < total {
                    let Some(frame) = try_next_of(&mut client, "chat.message", PATIENCE).await
                    else {
                        panic!(
                            "the listener on node {node} stopped at {} of {total}",
                            ids.len()
                        );
                    };
                    ids.push(frame["id"].as_i64().unwrap());
                }
                ids
            })
        })
        .collect();
    let ports: Vec<u16> = (0..nodes).map(|n| cluster.port(n)).collect();
    let token = cluster.app.token(cluster.user("reader"));
    let reading = tokio::spawn(async move {
        let mut ids: Vec<i64> = Vec::new();
        let mut resumes = 0;
        while ids.len() < total {
            let since = ids
                .last()
                .map(|id| format!("&since={id}"))
                .unwrap_or_default();
            let path = format!("/ws/chat/{room}/?token={token}{since}");
            let (mut client, history, _) = join_at(ports[resumes % ports.len()], &path).await;
            assert_eq!(history["truncated"], false, "{history}");
            let kept = history["messages"].as_array().unwrap();
            ids.extend(kept.iter().map(|m| m["id"].as_i64().unwrap()));
            let until = (ids.len() + READ_BEFORE_RESUME).min(total);
            while ids.len() < until {
                let Some(frame) = try_next_of(&mut client, "chat.message", PATIENCE).await else {
                    panic!("the reader stopped at {} of {total}: {ids:?}", ids.len());
                };
                ids.push(frame["id"].as_i64().unwrap());
            }
            resumes += 1;
        }
        (ids, resumes)
    });

    // Every sender says one message per round, all at once: the nodes
    // store and publish them at the same moment.
    let channel = format!("hub:room:{room}");
    let mut new_master = None;
    for round in 0..ROUNDS + ROUNDS_IN_TROUBLE {
        if round == ROUNDS {
            match trouble {
                Trouble::Outage => {
                    cluster.redis.kill();
                    cluster.until_ready_is(503).await;
                }
                Trouble::Failover => {
                    let redis = cluster.redis.cluster();
                    let master = redis.master_of(&channel).await;
                    new_master = Some(redis.begin_failover(master).await);
                }
                Trouble::MasterKilled => {
                    let redis = cluster.redis.cluster();
                    let master = redis.master_of(&channel).await;
                    new_master = Some(redis.replica_of(master).await);
                    redis.servers[master].kill();
                }
            }
        }
        let said = senders
            .iter_mut()
            .enumerate()
            .map(|(k, client)| async move { client.say(&format!("{k}:{round}")).await });
        futures_util::future::join_all(said).await;
        let pace = if round < ROUNDS {
            Duration::from_millis(50)
        } else {
            TROUBLE_PACE
        };
        tokio::time::sleep(pace).await;
    }
    match new_master {
        None => cluster.redis.restart().await,
        Some(replica) => cluster.redis.cluster().until_master(replica).await,
    }
    cluster.until_ready_is(200).await;

    for (node, listening) in listening.into_iter().enumerate() {
        let ids = listening.await.unwrap();
        assert_every_id_once_in_order(&format!("the listener on node {node}"), &ids, total);
    }
    let (ids, resumes) = reading.await.unwrap();
    assert_every_id_once_in_order("the reader", &ids, total);
    assert!(resumes >= 20, "the reader resumed only {resumes} times");
}

on_both!(on_two_nodes_ids_rise_in_one_order_everywhere_and_a_resume_misses_none);
async fn on_two_nodes_ids_rise_in_one_order_everywhere_and_a_resume_misses_none(kind: Kind) {
    ids_rise_in_one_order_everywhere_and_resuming_from_any_of_them_misses_none(
        kind,
        2,
        Trouble::Outage,
    )
    .await;
}

on_both!(on_three_nodes_ids_rise_in_one_order_everywhere_and_a_resume_misses_none);
async fn on_three_nodes_ids_rise_in_one_order_everywhere_and_a_resume_misses_none(kind: Kind) {
    ids_rise_in_one_order_everywhere_and_resuming_from_any_of_them_misses_none(
        kind,
        3,
        Trouble::Outage,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(skip_cluster_tests, skip_postgres_tests),
    ignore = "redis-server or HUB_TEST_POSTGRES_URL is missing (README, Test)"
)]
async fn on_a_redis_cluster_a_master_failed_over_during_traffic_loses_and_repeats_nothing() {
    ids_rise_in_one_order_everywhere_and_resuming_from_any_of_them_misses_none(
        Kind::Cluster,
        3,
        Trouble::Failover,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(skip_cluster_tests, skip_postgres_tests),
    ignore = "redis-server or HUB_TEST_POSTGRES_URL is missing (README, Test)"
)]
async fn on_a_redis_cluster_a_master_killed_during_traffic_loses_and_repeats_nothing() {
    ids_rise_in_one_order_everywhere_and_resuming_from_any_of_them_misses_none(
        Kind::Cluster,
        3,
        Trouble::MasterKilled,
    )
    .await;
}

on_both!(a_joiner_on_a_node_whose_room_is_open_gets_another_nodes_messages_in_its_history);
async fn a_joiner_on_a_node_whose_room_is_open_gets_another_nodes_messages_in_its_history(
    kind: Kind,
) {
    let Some(cluster) = Cluster::start(kind, &[]).await else {
        return;
    };
    let room = "annals";
    let (alice, bob, carol, dave) = (
        cluster.user("alice"),
        cluster.user("bob"),
        cluster.user("carol"),
        cluster.user("dave"),
    );
    // The room is open on B (bob is in it) before anything is said on A.
    let (mut on_b, _, _) = cluster.join(1, room, bob).await;
    let (mut on_a, _, _) = cluster.join(0, room, alice).await;
    cluster
        .until_subscribed(&format!("hub:room:{room}"), 2)
        .await;
    let said = ["one from A", "two from A", "three from A"];
    for text in said {
        on_a.echo(text).await;
    }
    // B's open room has had them live...
    for text in said {
        assert_eq!(
            next_of(&mut on_b, "chat.message", PATIENCE).await["message"],
            text
        );
    }
    // ...and a newcomer there, or on a node where the room was closed, gets
    // them as history.
    let (_, history_b, _) = cluster.join(1, room, carol).await;
    assert_eq!(history_texts(&history_b), said);
    let (_, history_c, _) = cluster.join(2, room, dave).await;
    assert_eq!(history_texts(&history_c), said);
    assert_eq!(history_b["messages"], history_c["messages"]);
}

on_both!(presence_spans_the_nodes_and_a_user_with_tabs_on_two_nodes_is_listed_once);
async fn presence_spans_the_nodes_and_a_user_with_tabs_on_two_nodes_is_listed_once(kind: Kind) {
    let Some(cluster) = Cluster::start(kind, &[]).await else {
        return;
    };
    let room = "parlour";
    let (alice, bob, carol) = (
        cluster.user("alice"),
        cluster.user("bob"),
        cluster.user("carol"),
    );
    let (mut alice_a, _, presence) = cluster.join(0, room, alice).await;
    assert_eq!(listed(&presence), ["alice"]);
    // A hears the room once it listens on its channel.
    let channel = format!("hub:room:{room}");
    cluster.until_subscribed(&channel, 1).await;

    let (bob_tab_b, _, presence) = cluster.join(1, room, bob).await;
    assert_eq!(listed(&presence), ["alice", "bob"]);
    let joined = next_of(&mut alice_a, "presence.join", PATIENCE).await;
    assert_eq!(
        joined["user"],
        json!({"id": bob, "username": "bob", "is_staff": false})
    );

    // Bob's second tab, on a third node, is no second member.
    let (bob_tab_c, _, presence) = cluster.join(2, room, bob).await;
    assert_eq!(listed(&presence), ["alice", "bob"]);
    // (Joins on a node whose room has only just opened are the next test's.)
    cluster.until_subscribed(&channel, 3).await;
    // Carol joins on the same node after it: her join is the next presence
    // event Alice gets, so no second join of Bob's came before it.
    let (_carol_c, _, presence) = cluster.join(2, room, carol).await;
    assert_eq!(listed(&presence), ["alice", "bob", "carol"]);
    let next = next_of(&mut alice_a, "presence.join", PATIENCE).await;
    assert_eq!(next["user"]["username"], "carol");

    // Bob closes the tab on B: B has no chat socket left, yet Bob stays.
    drop(bob_tab_b);
    cluster
        .until("node B's socket to close", || async {
            let metrics = cluster.metrics(1).await;
            let line = "hub_connections{endpoint=\"chat\"} 0";
            metrics.lines().any(|l| l == line).then_some(()).ok_or(())
        })
        .await;
    alice_a.silent_for(Duration::from_secs(1)).await;
    let (_dave, _, presence) = cluster.join(0, room, cluster.user("dave")).await;
    assert_eq!(listed(&presence), ["alice", "bob", "carol", "dave"]);

    // The last tab closes: one leave, everywhere.
    drop(bob_tab_c);
    let left = next_of(&mut alice_a, "presence.leave", PATIENCE).await;
    assert_eq!(left["user"]["username"], "bob");
    alice_a.silent_for(Duration::from_secs(1)).await;

    // The presence scripts ran by their hash, never sent as text.
    assert!(cluster.redis.command_calls("evalsha").await > 0);
    assert_eq!(cluster.redis.command_calls("eval").await, 0);
}

on_both!(a_join_on_a_node_whose_room_has_just_opened_is_announced_on_the_others);
async fn a_join_on_a_node_whose_room_has_just_opened_is_announced_on_the_others(kind: Kind) {
    let Some(cluster) = Cluster::start(kind, &[]).await else {
        return;
    };
    let room = "porch";
    let (alice, bob, carol) = (
        cluster.user("alice"),
        cluster.user("bob"),
        cluster.user("carol"),
    );
    let (mut alice_a, _, _) = cluster.join(0, room, alice).await;
    cluster
        .until_subscribed(&format!("hub:room:{room}"), 1)
        .await;
    // Each join opens the room on its node: the first thing that node says
    // about it is that someone arrived.
    let (_bob_b, _, _) = cluster.join(1, room, bob).await;
    let (_carol_c, _, _) = cluster.join(2, room, carol).await;
    let joined = announced(&mut alice_a, "presence.join", &["bob", "carol"], PATIENCE).await;
    assert_eq!(joined, ["bob", "carol"]);
}

on_both!(a_killed_nodes_members_leave_everyones_presence_within_the_ttl_and_its_keys_go);
async fn a_killed_nodes_members_leave_everyones_presence_within_the_ttl_and_its_keys_go(
    kind: Kind,
) {
    const TTL_SECS: u64 = 3;
    let ttl = TTL_SECS.to_string();
    let Some(mut cluster) = Cluster::start(kind, &[("HUB_PRESENCE_TTL_SECS", &ttl)]).await else {
        return;
    };
    let room = "lobby";
    let (alice, bob, carol, dave) = (
        cluster.user("alice"),
        cluster.user("bob"),
        cluster.user("carol"),
        cluster.user("dave"),
    );
    // Carol and Dave are on C (Carol also alone in a room only C serves);
    // Alice and Bob, on A and B, find them there.
    let (_carol_c, _, _) = cluster.join(2, room, carol).await;
    let (_hideout, _, _) = cluster.join(2, "hideout", carol).await;
    let (_dave_c, _, _) = cluster.join(2, room, dave).await;
    let (mut alice_a, _, presence) = cluster.join(0, room, alice).await;
    assert_eq!(listed(&presence), ["alice", "carol", "dave"]);
    let (mut bob_b, _, presence) = cluster.join(1, room, bob).await;
    assert!(
        ["carol", "dave"]
            .iter()
            .all(|n| listed(&presence).contains(&(*n).to_owned())),
        "{presence}"
    );
    cluster
        .until_subscribed(&format!("hub:room:{room}"), 3)
        .await;
    let shared_before = cluster.redis.presence_entries().await;
    let probes = cluster.probing().await;

    cluster.kill(2);
    let killed_at = Instant::now();
    // Each of the others sees each of C's members leave once, within the
    // TTL (plus room for a loaded machine to run the expiry).
    let within = Duration::from_secs(TTL_SECS) + PATIENCE;
    for member in [&mut alice_a, &mut bob_b] {
        let left = within.saturating_sub(killed_at.elapsed());
        let gone = announced(member, "presence.leave", &["carol", "dave"], left).await;
        assert_eq!(gone, ["carol", "dave"]);
    }
    for member in [&mut alice_a, &mut bob_b] {
        member.silent_for(Duration::from_secs(1)).await;
    }
    let (_erin, _, presence) = cluster.join(0, room, cluster.user("erin")).await;
    let now_listed = listed(&presence);
    assert!(
        !now_listed.iter().any(|n| n == "carol" || n == "dave"),
        "{presence}"
    );

    // C's probe channel went with its connection: the one missing is C's id.
    let c_id = cluster.gone_node(&probes).await;
    // Whatever the layout of the shared entries, C's named its node; none
    // of them is left.
    assert!(
        !naming(&shared_before, &c_id).is_empty(),
        "C's members left no hub:presence key naming node {c_id}: {shared_before:?}"
    );
    cluster
        .until("C's hub:presence keys to go", || async {
            let left = naming(&cluster.redis.presence_entries().await, &c_id);
            left.is_empty().then_some(()).ok_or(left)
        })
        .await;
}

on_both!(a_redis_outage_keeps_local_delivery_and_afterwards_every_node_gets_every_message_once);
async fn a_redis_outage_keeps_local_delivery_and_afterwards_every_node_gets_every_message_once(
    kind: Kind,
) {
    const OUTAGE: Duration = Duration::from_secs(17);
    let Some(mut cluster) = Cluster::start(kind, &[]).await else {
        return;
    };
    let room = "storm";
    let names = ["a1", "a2", "b1", "b2", "c1"];
    let mut members = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let id = cluster.user(name);
        let (client, _, _) = cluster.join(i / 2, room, id).await;
        members.push((*name, client, HashMap::new()));
    }
    let channel = format!("hub:room:{room}");
    cluster.until_subscribed(&channel, 3).await;
    members[0].1.say("before").await;
    for (_, client, counts) in &mut members {
        count_until(client, counts, PATIENCE, |c| c.contains_key("before")).await;
    }

    cluster.redis.kill();
    let killed_at = Instant::now();
    let bodies = cluster.until_ready_is(503).await;
    for body in bodies {
        assert_eq!(body["bus"], "down", "{body}");
    }
    cluster.until_metric_everywhere("hub_bus_up 0").await;

    // One sender on each node speaks while the bus is down.
    let mut during = Vec::new();
    for sender in [0, 2, 4] {
        for k in 0..3 {
            let text = format!("{} during the outage {k}", names[sender]);
            members[sender].1.say(&text).await;
            during.push(text);
        }
    }
    // Their neighbours on the same node hear them meanwhile.
    for (sender, neighbour) in [(0, 1), (2, 3), (4, 4)] {
        let expected: Vec<String> = during
            .iter()
            .filter(|t| t.starts_with(names[sender]))
            .cloned()
            .collect();
        let (_, client, counts) = &mut members[neighbour];
        count_until(client, counts, PATIENCE, |c| {
            expected.iter().all(|t| c.contains_key(t))
        })
        .await;
    }
    tokio::time::sleep_until(killed_at + OUTAGE).await;
    for node in 0..NODES {
        assert_eq!(
            cluster.readyz(node).await.0,
            503,
            "node {node} ready without its bus"
        );
    }

    cluster.redis.restart().await;
    cluster.until_ready_is(200).await;
    cluster.until_metric_everywhere("hub_bus_up 1").await;
    cluster.until_subscribed(&channel, 3).await;
    // Redis came back empty, without the presence scripts: the nodes load
    // them again and put back every member's entry.
    cluster
        .until("every member's presence entry back in Redis", || async {
            let entries = cluster.redis.presence_entries().await;
            let hash = entries
                .iter()
                .find(|(key, _)| key == &format!("hub:presence:{room}"))
                .map_or(0, |(_, held)| held.len() / 2);
            (hash == names.len()).then_some(()).ok_or(entries)
        })
        .await;
    assert_eq!(cluster.redis.command_calls("eval").await, 0);
    // Every member gets what was said anywhere during the outage...
    let tasks: Vec<_> = members
        .into_iter()
        .map(|(name, mut client, mut counts)| {
            let during = during.clone();
            tokio::spawn(async move {
                count_until(&mut client, &mut counts, PATIENCE, |c| {
                    during.iter().all(|t| c.contains_key(t))
                })
                .await;
                (name, client, counts)
            })
        })
        .collect();
    let mut members = Vec::new();
    for task in tasks {
        members.push(task.await.unwrap());
    }
    // ...and, by the time a message said after it arrives, nothing twice.
    members[4].1.say("after").await;
    for (name, client, counts) in &mut members {
        count_until(client, counts, PATIENCE, |c| c.contains_key("after")).await;
        for text in during.iter().map(String::as_str).chain(["before", "after"]) {
            assert_eq!(counts.get(text), Some(&1), "{name} got {text:?}");
        }
        assert_eq!(counts.len(), during.len() + 2, "{name}: {counts:?}");
    }
}

on_both!(analytics_ingested_on_one_node_reach_dashboards_on_the_others);
async fn analytics_ingested_on_one_node_reach_dashboards_on_the_others(kind: Kind) {
    let Some(cluster) = Cluster::start(kind, &[]).await else {
        return;
    };
    let olga = cluster.user("olga");
    let sam = cluster.staff("sam");
    let mut own = open_at(
        cluster.port(2),
        &format!("/ws/analytics/?token={}", cluster.app.token(olga)),
    )
    .await;
    assert_eq!(own.recv().await["type"], "analytics.snapshot");
    let (mut totals, _) = watching_totals_at(cluster.port(1), &cluster.app.token(sam)).await;
    cluster
        .until_subscribed(&format!("hub:analytics:user:{olga}"), 1)
        .await;
    cluster.until_heard("hub:analytics:global").await;
    let resp = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/api/analytics/events",
            cluster.port(0)
        ))
        .header("x-hub-ingest-key", INGEST_KEY)
        .json(&json!([{"user_id": olga, "metric": "visits", "value": 3, "op": "add"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    for (dashboard, scope) in [(&mut own, "own"), (&mut totals, "global")] {
        let update = next_of(dashboard, "analytics.update", PATIENCE).await;
        assert_eq!(
            (update["scope"].as_str(), &update["metrics"]),
            (Some(scope), &json!({"visits": 3.0}))
        );
    }
}

on_both!(a_dns_change_on_one_node_reaches_the_owners_and_staffs_panels_on_the_others);
async fn a_dns_change_on_one_node_reaches_the_owners_and_staffs_panels_on_the_others(kind: Kind) {
    let Some(cluster) = Cluster::start(kind, &[]).await else {
        return;
    };
    let dora = cluster.user("dora");
    let sam = cluster.staff("sam");
    let panel = |node: usize, user: i32| {
        let (port, token) = (cluster.port(node), cluster.app.token(user));
        async move { open_at(port, &format!("/ws/dns/?token={token}")).await }
    };
    let mut dora_a = panel(0, dora).await;
    let mut dora_b = panel(1, dora).await;
    let mut staff_c = panel(2, sam).await;
    // A panel sends nothing until asked: one request each shows it is open.
    for client in [&mut dora_a, &mut dora_b, &mut staff_c] {
        dns::ok(client, json!({"type": "dns.zones"})).await;
    }
    cluster
        .until_subscribed(&format!("hub:dns:user:{dora}"), 2)
        .await;
    cluster.until_heard("hub:dns:staff").await;

    let zone = dns::create_zone(&mut dora_b, "cluster.example").await;
    for client in [&mut dora_a, &mut staff_c] {
        let created = next_of(client, "dns.zone.created", PATIENCE).await;
        assert_eq!(created["zone"], zone);
    }
    let record = dns::create(
        &mut dora_b,
        "cluster.example",
        json!({"name": "www", "type": "A", "content": "192.0.2.1", "ttl": 300}),
    )
    .await;
    for client in [&mut dora_a, &mut staff_c] {
        let changed = next_of(client, "dns.changed", PATIENCE).await;
        assert_eq!(changed["zone"], "cluster.example");
        assert_eq!(changed["serial"], record["serial"]);
        assert_eq!(
            changed["changes"],
            json!([{"action": "created", "record": record["record"]}])
        );
    }
}

on_both!(a_change_is_notified_to_the_secondaries_by_the_node_that_made_it_only);
async fn a_change_is_notified_to_the_secondaries_by_the_node_that_made_it_only(kind: Kind) {
    let secondary = Secondary::listen().await;
    let Some(cluster) = Cluster::start(kind, &[("HUB_DNS_NOTIFY", &secondary.address())]).await
    else {
        return;
    };
    let dora = cluster.user("dora");
    let token = cluster.app.token(dora);
    let mut panel = open_at(cluster.port(1), &format!("/ws/dns/?token={token}")).await;
    dns::create_zone(&mut panel, "notified.example").await;
    dns::create(
        &mut panel,
        "notified.example",
        json!({"name": "www", "type": "A", "content": "192.0.2.1", "ttl": 300}),
    )
    .await;
    // Two changes, two NOTIFYs, each answered at once: a node that heard
    // of a change from another sends none.
    for _ in 0..2 {
        let (notify, from) = secondary.notify().await;
        assert_eq!(notified_zone(&notify), "notified.example");
        secondary.answer(&notify, from).await;
    }
    assert!(
        secondary
            .notify_within(Duration::from_secs(3))
            .await
            .is_none(),
        "a third NOTIFY"
    );
}

on_both!(dns_changes_written_on_two_nodes_at_once_reach_every_panel_in_serial_order);
async fn dns_changes_written_on_two_nodes_at_once_reach_every_panel_in_serial_order(kind: Kind) {
    const ROUNDS: usize = 20;
    const EACH: usize = 50;
    let Some(cluster) = Cluster::start(kind, &[]).await else {
        return;
    };
    let dora = cluster.user("dora");
    let sam = cluster.staff("sam");
    let panel = |node: usize, user: i32| {
        let (port, token) = (cluster.port(node), cluster.app.token(user));
        async move { open_at(port, &format!("/ws/dns/?token={token}")).await }
    };
    // Writers on two nodes; the owner's third tab and a staff panel watch
    // from the third.
    let mut panels = [
        panel(0, dora).await,
        panel(1, dora).await,
        panel(2, dora).await,
        panel(2, sam).await,
    ];
    for client in &mut panels {
        dns::ok(client, json!({"type": "dns.zones"})).await;
    }
    cluster
        .until_subscribed(&format!("hub:dns:user:{dora}"), 3)
        .await;
    cluster.until_heard("hub:dns:staff").await;
    for round in 0..ROUNDS {
        let zone = format!("r{round}.cluster.example");
        let first = dns::create_zone(&mut panels[0], &zone).await["serial"]
            .as_i64()
            .unwrap();
        for (w, writer) in panels[..2].iter_mut().enumerate() {
            for i in 0..EACH {
                writer
                    .send(json!({"type": "dns.create", "ref": format!("c{w}-{i}"), "zone": zone,
                                 "record": {"name": format!("h{w}-{i}"), "type": "A", "content": "192.0.2.1"}}))
                    .await;
            }
        }
        let mut pushed: [Vec<i64>; 4] = Default::default();
        for (writer, serials) in panels[..2].iter_mut().zip(&mut pushed) {
            read_until(writer, &zone, serials, |_, n| n == EACH).await;
        }
        let last = first + 2 * EACH as i64;
        for (client, serials) in panels.iter_mut().zip(&mut pushed) {
            read_until(client, &zone, serials, |s, _| s.last() == Some(&last)).await;
        }
        let expected: Vec<i64> = (first + 1..=last).collect();
        for (who, serials) in [
            "node A's writer",
            "node B's writer",
            "node C's owner tab",
            "node C's staff panel",
        ]
        .iter()
        .zip(&pushed)
        {
            assert_eq!(serials, &expected, "round {round}: {who}");
        }
    }
}

on_both!(deactivating_a_user_from_the_command_line_closes_their_sockets_on_every_node);
async fn deactivating_a_user_from_the_command_line_closes_their_sockets_on_every_node(kind: Kind) {
    // Far beyond the test: only the bus can bring the news in time.
    let Some(cluster) = Cluster::start(kind, &[("HUB_USER_RECHECK_SECS", "3600")]).await else {
        return;
    };
    let bob = cluster.user("bob");
    let (mut chat_c, _, _) = cluster.join(2, "lobby", bob).await;
    let mut dash_b = open_at(
        cluster.port(1),
        &format!("/ws/analytics/?token={}", cluster.app.token(bob)),
    )
    .await;
    dash_b.recv().await;
    // Users' news rides one channel that every node subscribes at start.
    cluster.until_subscribed("hub:users", NODES as i64).await;

    cluster.cli(&["user", "set-active", "bob", "false"]);
    assert_eq!(chat_c.ending(PATIENCE).await, Ending::Closed(4003));
    assert_eq!(dash_b.ending(PATIENCE).await, Ending::Closed(4003));
}

on_both!(a_thousand_joins_and_leaves_over_the_nodes_leave_only_the_probe_and_users_channels);
async fn a_thousand_joins_and_leaves_over_the_nodes_leave_only_the_probe_and_users_channels(
    kind: Kind,
) {
    const CYCLES: usize = 1000;
    const AT_ONCE: usize = 10;
    let Some(cluster) = Cluster::start(kind, &[]).await else {
        return;
    };
    let baseline = cluster.redis.channels("*").await;
    let mut expected = cluster.redis.channels("hub:probe:*").await;
    assert_eq!(expected.len(), NODES * cluster.redis.probes_per_node());
    expected.push("hub:users".to_owned());
    expected.sort();
    assert_eq!(
        baseline, expected,
        "idle nodes listen on their probes and the users' channel only"
    );

    let users: Vec<i32> = (0..AT_ONCE)
        .map(|i| cluster.user(&format!("churn{i}")))
        .collect();
    let ports: Vec<u16> = (0..NODES).map(|n| cluster.port(n)).collect();
    // Each worker joins and leaves in turn, over every node and many rooms;
    // every fourth cycle is a dashboard, for the per-user channels.
    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(w, &user)| {
            let (token, ports) = (cluster.app.token(user), ports.clone());
            tokio::spawn(async move {
                for cycle in (w..CYCLES).step_by(AT_ONCE) {
                    let port = ports[cycle % ports.len()];
                    if cycle % 4 == 3 {
                        let mut dash =
                            open_at(port, &format!("/ws/analytics/?token={token}")).await;
                        dash.recv().await;
                    } else {
                        let room = format!("churn-{}", cycle % 25);
                        join_at(port, &format!("/ws/chat/{room}/?token={token}")).await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Past the grace, every node has let go of every room and user.
    cluster
        .until(
            "PUBSUB CHANNELS to return to the probes and users",
            || async {
                let now = cluster.redis.channels("*").await;
                (now == baseline).then_some(()).ok_or(now)
            },
        )
        .await;
}

on_both!(a_failed_presence_read_after_the_link_returns_is_retried_not_taken_as_an_empty_room);
async fn a_failed_presence_read_after_the_link_returns_is_retried_not_taken_as_an_empty_room(
    kind: Kind,
) {
    let Some(cluster) = Cluster::start(kind, &[]).await else {
        return;
    };
    let room = "atrium";
    let (alice, bob, carol) = (
        cluster.user("alice"),
        cluster.user("bob"),
        cluster.user("carol"),
    );
    let (mut alice_a, _, _) = cluster.join(0, room, alice).await;
    let channel = format!("hub:room:{room}");
    cluster.until_subscribed(&channel, 1).await;
    let (mut bob_b, _, presence) = cluster.join(1, room, bob).await;
    assert_eq!(listed(&presence), ["alice", "bob"]);
    next_of(&mut alice_a, "presence.join", PATIENCE).await;
    let hash = format!("hub:presence:{room}");
    let mut redis = cluster.redis.client_for(&hash).await;
    let entries: Vec<(String, String)> = cluster
        .until("both entries shared", || async {
            let entries: Vec<(String, String)> = redis::cmd("HGETALL")
                .arg(&hash)
                .query_async(&mut cluster.redis.client_for(&hash).await)
                .await
                .unwrap();
            (entries.len() == 2)
                .then_some(entries.clone())
                .ok_or(entries)
        })
        .await;

    // The room's hash turns into a string: every read of it now fails
    // (WRONGTYPE), as a read that times out does, while Redis is up. Then
    // the link drops and comes back, and each room reads the presence again.
    redis::pipe()
        .atomic()
        .del(&hash)
        .set(&hash, "not a hash")
        .query_async::<()>(&mut redis)
        .await
        .unwrap();
    cluster.redis.kill_subscribers().await;
    for node in [0, 1] {
        cluster
            .until(&format!("node {node} to fail a presence read"), || async {
                let log = cluster.nodes[node].log.lock().unwrap();
                log.iter()
                    .any(|l| l.contains("reading presence failed"))
                    .then_some(())
                    .ok_or(())
            })
            .await;
    }

    // Nobody left: a joiner on each node sees both, and Bob's next message
    // is the next thing Alice hears (no presence.leave before it), and the
    // other way round.
    let (_carol_a, _, presence) = cluster.join(0, room, carol).await;
    assert_eq!(listed(&presence), ["alice", "bob", "carol"]);
    assert_eq!(
        next_of(&mut bob_b, "presence.join", PATIENCE).await["user"]["username"],
        "carol"
    );
    bob_b.say("still here").await;
    assert_eq!(bob_b.recv_within(PATIENCE).await["message"], "still here");
    let next = alice_a.recv_within(PATIENCE).await;
    let next = if next["type"] == "presence.join" {
        alice_a.recv_within(PATIENCE).await
    } else {
        next
    };
    assert_eq!(next["message"], "still here", "{next}");
    alice_a.say("me too").await;
    assert_eq!(alice_a.recv_within(PATIENCE).await["message"], "me too");
    let next = bob_b.recv_within(PATIENCE).await;
    assert_eq!(next["message"], "me too", "{next}");

    // Reads answer again: the retried read finds everyone still there.
    let mut restore = redis::pipe();
    restore.atomic().del(&hash);
    for (field, shown) in &entries {
        restore.hset(&hash, field, shown);
    }
    restore.query_async::<()>(&mut redis).await.unwrap();
    bob_b.say("after").await;
    let next = alice_a.recv_within(PATIENCE).await;
    assert_eq!(next["message"], "after", "{next}");
}

on_both!(a_member_dropped_as_too_slow_leaves_every_nodes_presence_within_the_close_timeout);
async fn a_member_dropped_as_too_slow_leaves_every_nodes_presence_within_the_close_timeout(
    kind: Kind,
) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    // The client timeout stays the default (45 s): only the close timeout
    // can let the member go in time.
    let Some(cluster) = Cluster::start(kind, &[("HUB_SEND_QUEUE_BYTES", "262144")]).await else {
        return;
    };
    let room = "stalls";
    let path = format!("/ws/chat/{room}/");
    let request = format!("ws://127.0.0.1:{}{path}", cluster.port(0))
        .into_client_request()
        .unwrap();
    let mut stuck = connect_at(cluster.port(0), request, Some(4096))
        .await
        .unwrap();
    stuck.recv_type("chat.history").await;
    let stuck_name = stuck.recv().await["members"][0]["username"].clone();
    cluster
        .until_subscribed(&format!("hub:room:{room}"), 1)
        .await;
    let (mut far, _, presence) = join_at(cluster.port(1), &path).await;
    assert_eq!(presence["members"].as_array().unwrap().len(), 2);
    let (mut sender, _, _) = join_at(cluster.port(0), &path).await;

    // The sender's node writes to the stuck member until its buffers and
    // queue are full, and drops it; the member on the other node keeps up.
    let (dropped_by, left) =
        flood_until_a_member_is_dropped(&mut sender, &mut far, PATIENCE, cluster.port(0)).await;
    // The margin is for a loaded machine and the way over Redis; it is
    // still far below the client timeout.
    let bound = hub::ws::session::CLOSE_TIMEOUT + Duration::from_secs(6);
    let (leave, at) = leave_by(&mut far, left, dropped_by + bound).await;
    assert_eq!(leave["user"]["username"], stuck_name);
    assert!(
        at.saturating_duration_since(dropped_by) <= bound,
        "presence.leave reached the other node {:?} after the drop",
        at.saturating_duration_since(dropped_by)
    );
    drop(stuck);
}

on_both!(what_redis_does_for_joins_and_presence_grows_with_the_nodes_not_the_sockets_or_rooms);
async fn what_redis_does_for_joins_and_presence_grows_with_the_nodes_not_the_sockets_or_rooms(
    kind: Kind,
) {
    const TTL_SECS: u64 = 3;
    const ROOMS: usize = 10;
    const USERS: usize = 30;
    let ttl = TTL_SECS.to_string();
    let Some(cluster) = Cluster::start(kind, &[("HUB_PRESENCE_TTL_SECS", &ttl)]).await else {
        return;
    };
    cluster.until_subscribed("hub:users", NODES as i64).await;
    let users: Vec<i32> = (0..USERS)
        .map(|i| cluster.user(&format!("user{i}")))
        .collect();
    let subscribe = cluster.redis.subscribe_command();
    let subscribes_before = cluster.redis.command_calls(subscribe).await;
    let mut members = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let room = format!("hall-{}", i % ROOMS);
        members.push(cluster.join(0, &room, *user).await.0);
    }
    for room in 0..ROOMS {
        cluster
            .until_subscribed(&format!("hub:room:hall-{room}"), 1)
            .await;
    }
    // A user's first socket on a node subscribes nothing: users share one
    // channel. What was subscribed is the rooms, at most one command each.
    let subscribes = cluster.redis.command_calls(subscribe).await - subscribes_before;
    assert!(
        subscribes <= ROOMS as u64,
        "{subscribes} SUBSCRIBE for {USERS} users joining {ROOMS} rooms"
    );
    cluster
        .until("every member's presence entry written", || async {
            let entries = cluster.redis.presence_entries().await;
            let fields: usize = entries
                .iter()
                .filter(|(key, _)| key.starts_with("hub:presence:hall-"))
                .map(|(_, held)| held.len() / 2)
                .sum();
            (fields == USERS).then_some(()).ok_or(entries)
        })
        .await;

    // Keeping the entries alive is a beat per node every third of the TTL,
    // one script call each, however many rooms and entries a node holds.
    let scripts = || async {
        cluster.redis.command_calls("evalsha").await + cluster.redis.command_calls("eval").await
    };
    let before = scripts().await;
    let watched_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(2 * TTL_SECS)).await;
    let calls = scripts().await - before;
    let beats_per_node = watched_from.elapsed().as_secs_f64() / (TTL_SECS as f64 / 3.0);
    let most = (NODES as f64 * (beats_per_node.ceil() + 1.0)) as u64;
    assert!(
        calls <= most,
        "{calls} script calls over {:?} with {ROOMS} rooms open (at most {most}: beats)",
        watched_from.elapsed()
    );
    drop(members);
}

on_both!(a_node_stopped_with_sigterm_leaves_presence_at_once_and_takes_its_redis_keys_with_it);
async fn a_node_stopped_with_sigterm_leaves_presence_at_once_and_takes_its_redis_keys_with_it(
    kind: Kind,
) {
    // A TTL far beyond the test's patience: only the stopped node's own
    // goodbye can explain a leave or a key gone in time, not reaping.
    let Some(mut cluster) = Cluster::start(kind, &[("HUB_PRESENCE_TTL_SECS", "600")]).await else {
        return;
    };
    let room = "lobby";
    let (alice, bob, carol) = (
        cluster.user("alice"),
        cluster.user("bob"),
        cluster.user("carol"),
    );
    let (mut carol_c, _, _) = cluster.join(2, room, carol).await;
    let (_hideout, _, _) = cluster.join(2, "hideout", carol).await;
    let (mut alice_a, _, presence) = cluster.join(0, room, alice).await;
    assert_eq!(listed(&presence), ["alice", "carol"]);
    let (mut bob_b, _, _) = cluster.join(1, room, bob).await;
    for member in [&mut alice_a, &mut carol_c] {
        next_of(member, "presence.join", PATIENCE).await;
    }
    let probes = cluster.probing().await;
    let entries = cluster.redis.presence_entries().await;
    assert!(
        entries
            .iter()
            .any(|(key, _)| key.starts_with("hub:presence-node:")),
        "{entries:?}"
    );

    let status = cluster.stop(2).await;
    assert!(status.success(), "{status}");
    assert_eq!(carol_c.ending(PATIENCE).await, Ending::Closed(1012));
    // Alice and Bob hear Carol leave, well before any reaping could.
    for member in [&mut alice_a, &mut bob_b] {
        let gone = announced(member, "presence.leave", &["carol"], PATIENCE).await;
        assert_eq!(gone, ["carol"]);
    }
    // Nothing in Redis names the stopped node any more: not its entries in
    // either room, not its set of rooms, not its beat.
    let c_id = cluster.gone_node(&probes).await;
    let left = naming(&cluster.redis.presence_entries().await, &c_id);
    assert!(left.is_empty(), "node {c_id} left {left:?}");
}
