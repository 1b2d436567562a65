//! A Redis Cluster of the test's own: three masters, each with a replica,
//! six `redis-server --cluster-enabled yes` processes on free loopback
//! ports, joined by `redis-cli --cluster create`. A test can fail a master
//! over to its replica (`CLUSTER FAILOVER`), kill a master with SIGKILL (its
//! replica takes over within the node timeout, 2 s), or kill and restart
//! them all. [`Redis`] is either this or one `redis-server`, so a test of
//! the hub's nodes runs unchanged over both.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::redis_server::RedisServer;

const SERVERS: usize = 6;
/// How long a cluster may take to agree on its state again.
const SETTLE: Duration = Duration::from_secs(30);

pub struct RedisCluster {
    pub servers: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts six servers and makes them a cluster of three masters with a
    /// replica each, or `None` (after a note) where there is no
    /// `redis-server` outside CI.
    pub async fn start() -> Option<Self> {
        let mut servers = Vec::with_capacity(SERVERS);
        for _ in 0..SERVERS {
            servers.push(RedisServer::start_as(true).await?);
        }
        let made = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(servers.iter().map(|s| format!("127.0.0.1:{}", s.port)))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs (it comes with redis-server)");
        assert!(
            made.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&made.stdout)
        );
        let cluster = Self { servers };
        cluster.until_settled().await;
        Some(cluster)
    }

    /// The seed nodes, as `REDIS_URL` takes them with `HUB_REDIS_CLUSTER`.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.servers.iter().map(RedisServer::url).collect();
        seeds.join(",")
    }

    fn running(&self) -> impl Iterator<Item = &RedisServer> {
        self.servers.iter().filter(|s| s.is_running())
    }

    /// Waits until every running server says the cluster is ok, three of
    /// them are masters that together serve every slot, and every replica
    /// has synchronised with its master (until then it may not take over).
    pub async fn until_settled(&self) {
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let mut states = Vec::new();
            for server in self.running() {
                let mut con = server.client().await;
                let info: Result<String, _> = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut con)
                    .await;
                let replication: Result<String, _> = redis::cmd("INFO")
                    .arg("replication")
                    .query_async(&mut con)
                    .await;
                let synced = replication.is_ok_and(|r| {
                    r.contains("role:master") || r.contains("master_link_status:up")
                });
                let ok = info.is_ok_and(|i| i.contains("cluster_state:ok")) && synced;
                states.push((server.port, ok));
            }
            let masters = self.masters().await;
            if states.iter().all(|(_, ok)| *ok) && masters.len() == 3 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the Redis Cluster did not settle: {states:?}, masters {masters:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The indexes of the running servers that are masters.
    pub async fn masters(&self) -> Vec<usize> {
        let mut masters = Vec::new();
        for (i, server) in self.servers.iter().enumerate() {
            if server.is_running() && self.role(i).await.as_deref() == Some("master") {
                masters.push(i);
            }
        }
        masters
    }

    async fn role(&self, i: usize) -> Option<String> {
        let role: Vec<redis::Value> = redis::cmd("ROLE")
            .query_async(&mut self.servers[i].client().await)
            .await
            .ok()?;
        match role.first() {
            Some(redis::Value::BulkString(name)) => Some(String::from_utf8_lossy(name).into()),
            Some(redis::Value::SimpleString(name)) => Some(name.clone()),
            _ => None,
        }
    }

    /// The running server that serves `key`'s slot as master.
    pub async fn master_of(&self, key: &str) -> usize {
        for i in self.masters().await {
            let mut con = self.servers[i].client().await;
            // A master answers a key it does not own with MOVED.
            let owned: Result<i64, _> = redis::cmd("EXISTS").arg(key).query_async(&mut con).await;
            if owned.is_ok() {
                return i;
            }
        }
        panic!("no master serves {key}");
    }

    /// The running replica of master `i`.
    pub async fn replica_of(&self, i: usize) -> usize {
        let id: String = redis::cmd("CLUSTER")
            .arg("MYID")
            .query_async(&mut self.servers[i].client().await)
            .await
            .expect("CLUSTER MYID");
        for (j, server) in self.servers.iter().enumerate() {
            if !server.is_running() || j == i {
                continue;
            }
            let replicas: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async(&mut server.client().await)
                .await
                .expect("CLUSTER NODES");
            let own = replicas
                .lines()
                .find(|l| l.split(' ').nth(2).is_some_and(|f| f.contains("myself")));
            if own.is_some_and(|l| l.split(' ').nth(3) == Some(id.as_str())) {
                return j;
            }
        }
        panic!("master {i} has no running replica");
    }

    /// Starts failing master `i` over to its replica, as an operator does
    /// before maintenance (`CLUSTER FAILOVER` on the replica). Returns the
    /// replica, master once the handover is done (`until_master`).
    pub async fn begin_failover(&self, i: usize) -> usize {
        let replica = self.replica_of(i).await;
        let _: () = redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .query_async(&mut self.servers[replica].client().await)
            .await
            .expect("CLUSTER FAILOVER");
        replica
    }

    /// Waits until server `i` is a master and the cluster agrees on it.
    pub async fn until_master(&self, i: usize) {
        let deadline = tokio::time::Instant::now() + SETTLE;
        while self.role(i).await.as_deref() != Some("master") {
            if tokio::time::Instant::now() >= deadline {
                let nodes: Result<String, _> = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut self.servers[i].client().await)
                    .await;
                panic!(
                    "server {i} did not take over as master: {nodes:?}\n{}",
                    self.servers[i].log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.until_settled().await;
    }

    pub fn kill(&mut self) {
        for server in &mut self.servers {
            server.kill();
        }
    }

    /// Starts every server again on its port, empty, each keeping its view
    /// of the cluster, and waits until the cluster agrees again.
    pub async fn restart(&mut self) {
        for server in &mut self.servers {
            server.restart().await;
        }
        self.until_settled().await;
    }

    pub async fn channels(&self, pattern: &str) -> Vec<String> {
        let mut all = BTreeSet::new();
        for server in self.running() {
            all.extend(server.channels(pattern).await);
        }
        all.into_iter().collect()
    }

    pub async fn numsub(&self, channel: &str) -> i64 {
        let mut n = 0;
        for server in self.running() {
            n += server.numsub(channel).await;
        }
        n
    }

    pub async fn presence_entries(&self) -> Vec<(String, Vec<String>)> {
        let mut all = Vec::new();
        for i in self.masters().await {
            all.extend(self.servers[i].presence_entries().await);
        }
        all.sort();
        all
    }

    pub async fn command_calls(&self, command: &str) -> u64 {
        let mut n = 0;
        for i in self.masters().await {
            n += self.servers[i].command_calls(command).await;
        }
        n
    }
}

/// What a test of several hub nodes runs them over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    One,
    Cluster,
}

pub enum Redis {
    One(RedisServer),
    Cluster(RedisCluster),
}

/// Calls the same method on either.
macro_rules! either {
    ($self:ident, $server:ident => $call:expr) => {
        match $self {
            Redis::One($server) => $call,
            Redis::Cluster($server) => $call,
        }
    };
}

impl Redis {
    pub async fn start(kind: Kind) -> Option<Self> {
        match kind {
            Kind::One => RedisServer::start().await.map(Self::One),
            Kind::Cluster => RedisCluster::start().await.map(Self::Cluster),
        }
    }

    /// The settings that point a hub at it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::One(one) => vec![("REDIS_URL", one.url())],
            Self::Cluster(cluster) => vec![
                ("REDIS_URL", cluster.url()),
                ("HUB_REDIS_CLUSTER", "true".to_owned()),
            ],
        }
    }

    /// How many probe channels each hub node listens on: one, or one per
    /// shard.
    pub fn probes_per_node(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Cluster(_) => 3,
        }
    }

    pub async fn channels(&self, pattern: &str) -> Vec<String> {
        either!(self, r => r.channels(pattern).await)
    }

    pub async fn numsub(&self, channel: &str) -> i64 {
        either!(self, r => r.numsub(channel).await)
    }

    pub async fn presence_entries(&self) -> Vec<(String, Vec<String>)> {
        either!(self, r => r.presence_entries().await)
    }

    pub async fn command_calls(&self, command: &str) -> u64 {
        either!(self, r => r.command_calls(command).await)
    }

    pub fn kill(&mut self) {
        either!(self, r => r.kill())
    }

    pub async fn restart(&mut self) {
        either!(self, r => r.restart().await)
    }

    /// A connection to the server that holds `key`.
    pub async fn client_for(&self, key: &str) -> MultiplexedConnection {
        match self {
            Self::One(one) => one.client().await,
            Self::Cluster(cluster) => {
                let master = cluster.master_of(key).await;
                cluster.servers[master].client().await
            }
        }
    }

    /// Drops every subscriber connection (`CLIENT KILL TYPE pubsub`), on
    /// every server: each node's link breaks and is made again.
    pub async fn kill_subscribers(&self) {
        let servers: Vec<&RedisServer> = match self {
            Self::One(one) => vec![one],
            Self::Cluster(cluster) => cluster.servers.iter().filter(|s| s.is_running()).collect(),
        };
        for server in servers {
            let _: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("pubsub")
                .query_async(&mut server.client().await)
                .await
                .expect("CLIENT KILL TYPE pubsub");
        }
    }

    /// The command that subscribes a node to a channel.
    pub fn subscribe_command(&self) -> &'static str {
        match self {
            Self::One(_) => "subscribe",
            Self::Cluster(_) => "ssubscribe",
        }
    }

    pub fn cluster(&mut self) -> &mut RedisCluster {
        match self {
            Self::Cluster(cluster) => cluster,
            Self::One(_) => panic!("this test runs on a Redis Cluster"),
        }
    }
}
