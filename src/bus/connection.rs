//! A connection to where the nodes meet: one Redis, or a Redis Cluster.
//!
//! Both are [`ConnectionLike`], so a command or a script runs on either
//! unchanged (a cluster routes it to the shard of its first key). What
//! differs is said here once:
//! - a pipeline on a cluster must stay on one hash slot, so [`Batch`] sends
//!   one pipeline per slot, and keeps an order between its phases only;
//! - pub/sub on a cluster is sharded (`SPUBLISH`, `SSUBSCRIBE`), so a
//!   channel's traffic stays on the shard that owns its slot instead of
//!   being copied to every shard;
//! - a cluster connection cannot be made lazily by the redis crate, so it
//!   is made at its first use and again at each use until one succeeds: a
//!   node whose Redis is away serves alone until it is back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, PushInfo, RedisFuture, RedisResult, ToRedisArgs, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::RedisUrl;

/// A command that takes longer has failed (the link is down).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnect attempts back off up to this delay, without limit on tries.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(1);
/// Redis Cluster's number of hash slots.
const SLOTS: u16 = 16_384;

/// The hash slot of a key or channel, as Redis Cluster computes it: CRC16
/// of the key, or of its hash tag (the first non-empty `{...}`).
pub fn slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|b| *b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tagged) % SLOTS
}

#[derive(Clone)]
pub enum Connection {
    One(ConnectionManager),
    Cluster(Arc<Cluster>),
}

/// A cluster connection, made when first used.
pub struct Cluster {
    client: ClusterClient,
    connection: tokio::sync::OnceCell<ClusterConnection>,
}

impl Cluster {
    async fn get(&self) -> RedisResult<ClusterConnection> {
        self.connection
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
    }
}

impl Connection {
    /// A connection for commands; `pushes`, when given, receives what
    /// subscriptions bring (RESP3 pushes), and the connection subscribes
    /// again by itself after it reconnects.
    pub fn open(url: &RedisUrl, pushes: Option<UnboundedSender<PushInfo>>) -> RedisResult<Self> {
        if url.is_cluster() {
            let mut builder = cluster_client(url);
            if let Some(pushes) = pushes {
                builder = builder
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .push_sender(pushes);
            }
            return Ok(Self::Cluster(Arc::new(Cluster {
                client: builder.build()?,
                connection: tokio::sync::OnceCell::new(),
            })));
        }
        let client = redis::Client::open(resp3(url.first()))?;
        let mut config = ConnectionManagerConfig::new()
            .set_number_of_retries(usize::MAX)
            .set_max_delay(MAX_RETRY_DELAY)
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT));
        if let Some(pushes) = pushes {
            config = config
                .set_push_sender(pushes)
                .set_automatic_resubscription();
        }
        Ok(Self::One(ConnectionManager::new_lazy_with_config(
            client, config,
        )?))
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// The command that publishes `payload` on `channel` here.
    pub fn publish(&self, channel: &str, payload: impl ToRedisArgs) -> Cmd {
        publish(self.is_cluster(), channel, payload)
    }

    /// Subscribes to `channels` (at most a few thousand: they go in one
    /// command, on a cluster one per slot).
    pub async fn subscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        self.subscription(true, channels).await
    }

    pub async fn unsubscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        self.subscription(false, channels).await
    }

    async fn subscription(&mut self, on: bool, channels: &[String]) -> RedisResult<()> {
        match self {
            Self::One(one) if on => one.subscribe(channels).await,
            Self::One(one) => one.unsubscribe(channels).await,
            Self::Cluster(cluster) => {
                let connection = cluster.get().await?;
                per_slot(channels, |group| {
                    let mut connection = connection.clone();
                    async move {
                        if on {
                            connection.ssubscribe(group).await
                        } else {
                            connection.sunsubscribe(group).await
                        }
                    }
                })
                .await
            }
        }
    }
}

/// `PUBLISH`, or on a cluster `SPUBLISH`: sharded, so the message goes to
/// the shard that owns the channel's slot and no further.
fn publish(cluster: bool, channel: &str, payload: impl ToRedisArgs) -> Cmd {
    let mut cmd = redis::cmd(if cluster { "SPUBLISH" } else { "PUBLISH" });
    cmd.arg(channel).arg(payload);
    cmd
}

/// A cluster client's settings, as every connection to one takes them.
fn cluster_client(url: &RedisUrl) -> ClusterClientBuilder {
    ClusterClientBuilder::new(url.nodes().to_vec())
        .connection_timeout(COMMAND_TIMEOUT)
        .response_timeout(COMMAND_TIMEOUT)
}

/// Publishes one message from a process that is no node (the command
/// line), over a connection of its own, waiting until Redis has taken it.
pub fn publish_once(url: &RedisUrl, channel: &str, payload: &[u8]) -> RedisResult<()> {
    let publish = publish(url.is_cluster(), channel, payload);
    if url.is_cluster() {
        let mut connection = cluster_client(url).build()?.get_connection()?;
        publish.query::<i64>(&mut connection)?;
    } else {
        let client = redis::Client::open(url.first())?;
        let mut connection = client.get_connection_with_timeout(COMMAND_TIMEOUT)?;
        publish.query::<i64>(&mut connection)?;
    }
    Ok(())
}

/// Runs `each` on the channels of each slot, all slots at once.
async fn per_slot<F>(channels: &[String], each: impl Fn(Vec<String>) -> F) -> RedisResult<()>
where
    F: Future<Output = RedisResult<()>>,
{
    let mut groups: HashMap<u16, Vec<String>> = HashMap::new();
    for channel in channels {
        groups
            .entry(slot(channel.as_bytes()))
            .or_default()
            .push(channel.clone());
    }
    let done = futures_util::future::join_all(groups.into_values().map(each)).await;
    done.into_iter().collect()
}

/// A connection that subscribes must speak RESP3 to get pushes.
fn resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::One(one) => one.req_packed_command(cmd),
            Self::Cluster(cluster) => Box::pin(async move {
                let mut connection = cluster.get().await?;
                connection.req_packed_command(cmd).await
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::One(one) => one.req_packed_commands(pipeline, offset, count),
            Self::Cluster(cluster) => Box::pin(async move {
                let mut connection = cluster.get().await?;
                connection
                    .req_packed_commands(pipeline, offset, count)
                    .await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::One(one) => one.get_db(),
            Self::Cluster(_) => 0,
        }
    }
}

/// Commands sent together whose answers are not needed: to one Redis in
/// one pipeline, in order; to a cluster in one pipeline per slot, all
/// slots at once, phase after phase. Within a slot the order holds; across
/// slots only the phases order them. Each command's first argument is its
/// key (or channel), which decides its slot on a cluster, as Redis Cluster
/// itself routes them; on one Redis no slot is computed.
#[derive(Default)]
pub struct Batch {
    phases: Vec<Vec<Cmd>>,
}

/// The slot of a command whose first argument is its key.
fn slot_of(cmd: &Cmd) -> u16 {
    match cmd.args_iter().nth(1) {
        Some(redis::Arg::Simple(key)) => slot(key),
        _ => 0,
    }
}

impl Batch {
    /// Adds `cmd` to the current phase.
    pub fn add(&mut self, cmd: Cmd) {
        if self.phases.is_empty() {
            self.phases.push(Vec::new());
        }
        let phase = self.phases.last_mut().expect("a phase was just made");
        phase.push(cmd);
    }

    /// What is added from now on is sent after what was added before.
    pub fn then(&mut self) {
        if self.phases.last().is_some_and(|p| !p.is_empty()) {
            self.phases.push(Vec::new());
        }
    }

    /// The commands of each phase, in order.
    #[cfg(test)]
    pub fn phases(&self) -> impl Iterator<Item = impl Iterator<Item = &Cmd>> {
        self.phases.iter().map(|phase| phase.iter())
    }

    pub async fn send(self, connection: &mut Connection) -> RedisResult<()> {
        if !connection.is_cluster() {
            let mut pipe = redis::pipe();
            for cmd in self.phases.into_iter().flatten() {
                pipe.add_command(cmd).ignore();
            }
            return pipe.query_async(connection).await;
        }
        for phase in self.phases {
            let mut pipes: HashMap<u16, redis::Pipeline> = HashMap::new();
            for cmd in phase {
                pipes
                    .entry(slot_of(&cmd))
                    .or_default()
                    .add_command(cmd)
                    .ignore();
            }
            let sent = futures_util::future::join_all(pipes.into_values().map(|pipe| {
                let mut connection = connection.clone();
                async move { pipe.query_async::<()>(&mut connection).await }
            }))
            .await;
            sent.into_iter().collect::<RedisResult<()>>()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_s_slot_is_redis_cluster_s_and_a_hash_tag_decides_it() {
        // What `CLUSTER KEYSLOT` answers for these.
        assert_eq!(slot(b"foo"), 12_182);
        assert_eq!(slot(b"hub:users"), slot(b"hub:users"));
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        // An empty tag is no tag: the whole key counts.
        assert_eq!(slot(b"foo{}{bar}"), crc16_of(b"foo{}{bar}"));
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
    }

    fn crc16_of(key: &[u8]) -> u16 {
        crc16::State::<crc16::XMODEM>::calculate(key) % SLOTS
    }

    #[test]
    fn a_batch_keeps_its_phases_and_drops_empty_ones() {
        let mut batch = Batch::default();
        batch.then();
        assert_eq!(batch.phases().count(), 0);
        batch.add(redis::cmd("SADD").arg("a").clone());
        batch.then();
        batch.then();
        batch.add(redis::cmd("HSET").arg("b").clone());
        batch.add(redis::cmd("HSET").arg("c").clone());
        let sizes: Vec<usize> = batch.phases.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 2]);
        // On a cluster each goes to the slot of its key.
        assert_eq!(slot_of(&batch.phases[0][0]), slot(b"a"));
        assert_eq!(slot_of(&batch.phases[1][1]), slot(b"c"));
    }
}
