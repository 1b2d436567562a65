//! A `redis-server` of the test's own: on a free loopback port, with
//! nothing persisted, killed with SIGKILL and started again on the same port
//! when a test plays an outage. Missing `redis-server` is a skip on a
//! developer's machine and a failure in CI, as PostgreSQL is.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis::aio::MultiplexedConnection;

const PROGRAM: &str = "redis-server";

/// Whether `redis-server` can run here; `false` (with a printed note) means
/// skip, and in CI its absence fails the test instead.
fn available() -> bool {
    let found = Command::new(PROGRAM)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found && crate::helpers::in_ci() {
        panic!("in CI {PROGRAM} must be installed: the cluster tests must run");
    }
    if !found {
        eprintln!("skipping a cluster test: install {PROGRAM} (.ci/run does) to run it");
    }
    found
}

pub struct RedisServer {
    pub port: u16,
    /// A cluster node's bus port (`--cluster-port`); 0 for a lone server.
    bus_port: u16,
    child: Option<Child>,
    /// Its working directory, so nothing it might write lands in the tree.
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server on a free port, or `None` (after a note) where there
    /// is no `redis-server` outside CI.
    pub async fn start() -> Option<Self> {
        Self::start_as(false).await
    }

    /// `start`, as a node of a Redis Cluster still to be made
    /// (`--cluster-enabled`), or a lone server.
    pub async fn start_as(cluster_node: bool) -> Option<Self> {
        if !available() {
            return None;
        }
        let mut server = Self {
            port: 0,
            bus_port: 0,
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        // A port found free can be taken before the server binds it: try
        // another then.
        for _ in 0..5 {
            server.port = free_port();
            if cluster_node {
                server.bus_port = free_port();
            }
            if server.launch().await {
                return Some(server);
            }
        }
        panic!("{PROGRAM} did not start on any of five free ports");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server with SIGKILL, as a crash would, and reaps it: every
    /// connection to it drops and its data (it persists nothing) is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, as after a restart.
    pub async fn restart(&mut self) {
        self.kill();
        // The old socket may linger a moment after the kill.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.launch().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{PROGRAM} did not start again on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs the server on `self.port` and waits until it answers PING;
    /// `false` if it exited first (the port was taken).
    async fn launch(&mut self) -> bool {
        let mut command = Command::new(PROGRAM);
        command
            .args(["--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path());
        if self.bus_port != 0 {
            // The node's view of the cluster (its `nodes.conf`) survives a
            // restart in its directory, as in production; its data does not.
            command
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-port", &self.bus_port.to_string()])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--logfile", "redis.log"])
                // A dead master is replaced by its replica within seconds.
                .args(["--cluster-node-timeout", "2000"])
                // A replica synchronises at once, not after the default 5 s
                // wait for others: until it has, it may not take over.
                .args(["--repl-diskless-sync-delay", "0"]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut con) = self.try_connect().await {
                let pong: Result<String, _> = redis::cmd("PING").query_async(&mut con).await;
                if pong.is_ok() {
                    return true;
                }
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok())
                .flatten()
                .is_some();
            if exited {
                self.child = None;
                return false;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{PROGRAM} on port {} did not answer PING",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of a cluster node's log, to show when a test fails.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
        // A replica retrying its dead master says so every second.
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.is_empty() && !l.contains("SYNC") && !l.contains("MASTER"))
            .collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }

    /// Whether the server runs (it was not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    async fn try_connect(&self) -> redis::RedisResult<MultiplexedConnection> {
        let client = redis::Client::open(self.url())?;
        tokio::time::timeout(
            Duration::from_secs(2),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    }

    /// A connection to the running server.
    pub async fn client(&self) -> MultiplexedConnection {
        self.try_connect().await.expect("redis-server answers")
    }

    /// How many times the server ran `command` since it started, from
    /// `INFO commandstats` (0 for a command it never ran).
    pub async fn command_calls(&self, command: &str) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.client().await)
            .await
            .expect("INFO commandstats");
        let prefix = format!("cmdstat_{}:calls=", command.to_ascii_lowercase());
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map_or(0, |rest| {
                rest.split(',').next().unwrap().parse().expect("a count")
            })
    }

    /// `PUBSUB NUMSUB channel`: how many connections (one per node) listen;
    /// on a cluster node, to the sharded channel (`SHARDNUMSUB`).
    pub async fn numsub(&self, channel: &str) -> i64 {
        let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg(if self.bus_port == 0 {
                "NUMSUB"
            } else {
                "SHARDNUMSUB"
            })
            .arg(channel)
            .query_async(&mut self.client().await)
            .await
            .expect("PUBSUB NUMSUB");
        counts.first().map_or(0, |(_, n)| *n)
    }

    /// `PUBSUB CHANNELS pattern`, sorted; on a cluster node, the sharded
    /// channels it serves (`SHARDCHANNELS`).
    pub async fn channels(&self, pattern: &str) -> Vec<String> {
        let mut names: Vec<String> = redis::cmd("PUBSUB")
            .arg(if self.bus_port == 0 {
                "CHANNELS"
            } else {
                "SHARDCHANNELS"
            })
            .arg(pattern)
            .query_async(&mut self.client().await)
            .await
            .expect("PUBSUB CHANNELS");
        names.sort();
        names
    }

    /// `KEYS pattern`, sorted (a test's server holds few keys).
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut names: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut self.client().await)
            .await
            .expect("KEYS");
        names.sort();
        names
    }

    /// Every `hub:presence*` key with what it holds (members, fields and
    /// values, scores), whatever its type, so a test can look for an entry
    /// without knowing the layout.
    pub async fn presence_entries(&self) -> Vec<(String, Vec<String>)> {
        let mut con = self.client().await;
        let mut entries = Vec::new();
        for key in self.keys("hub:presence*").await {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut con)
                .await
                .expect("TYPE");
            let read = match kind.as_str() {
                "string" => redis::cmd("GET").arg(&key).clone(),
                "hash" => redis::cmd("HGETALL").arg(&key).clone(),
                "set" => redis::cmd("SMEMBERS").arg(&key).clone(),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .clone(),
                "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).clone(),
                // Gone between KEYS and TYPE.
                _ => continue,
            };
            let held: Vec<String> = match kind.as_str() {
                "string" => vec![read.query_async(&mut con).await.expect("GET")],
                _ => read.query_async(&mut con).await.expect("read a key"),
            };
            entries.push((key, held));
        }
        entries
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The fixture itself: the server answers, dies with SIGKILL, and comes
/// back on the same port empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_cluster_tests, ignore = "redis-server is missing (README, Test)")]
async fn the_test_redis_server_can_be_killed_and_started_again_on_its_port() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let port = redis.port;
    let _: () = redis::cmd("SET")
        .arg("hub:fixture")
        .arg("1")
        .query_async(&mut redis.client().await)
        .await
        .unwrap();
    assert_eq!(redis.keys("hub:*").await, ["hub:fixture"]);

    redis.kill();
    assert!(
        redis.try_connect().await.is_err(),
        "a killed server answers"
    );

    redis.restart().await;
    assert_eq!(redis.port, port);
    assert!(
        redis.keys("hub:*").await.is_empty(),
        "a restarted server kept data it was told not to persist"
    );
}
