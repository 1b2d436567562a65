//! The presence entries a cluster shares, so a room on a node that opens
//! late knows who is already there, and the members of a node that died
//! without a word are let go.
//!
//! Per room, a hash `hub:presence:<room>` (field `<node>|<person>`, value
//! what the room shows for the person). Entries do not expire one by one:
//! nodes do. A sorted set `hub:presence-nodes` scores each node by when it
//! is taken for dead, in Redis's own clock (so nodes' clocks never matter),
//! and sets `hub:presence-node:{<tag>}:<node>` name the rooms the node has
//! entries in, one set per range of hash slots (the tag puts the set in the
//! range of the rooms it lists). Every script and command touches one key,
//! so on a Redis Cluster each runs on one shard, and a room's listing is
//! written to the shard that holds the room.
//! Each node's keeper (one task per node):
//!
//! - writes its rooms' joins and leaves as they come, all that is waiting
//!   in one pipeline, so a storm of joins costs a few round trips, not one
//!   per join;
//! - beats every third of the TTL with one script call, whatever the number
//!   of rooms and entries; the beat also names the nodes that stopped
//!   beating;
//! - reaps a dead node room by room (its set says which), each room with
//!   one atomic script, so each dead entry is removed, and its departure
//!   published, by one node only; the node is forgotten after its last room;
//! - keeps what it wrote, so that when Redis has lost it (restarted empty,
//!   or took this node for dead) everything is written again.
//!
//! A node alone keeps nothing here: its rooms know all their members.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use bytes::Bytes;
use redis::Script;
use tokio::sync::Notify;

use super::connection::{Batch, Connection, slot};
use super::routes::{Broker, Events, Topic};
use crate::metrics::Metrics;

// The scripts are called by their hash (`EVALSHA`), and loaded once when
// Redis does not know them (at the first call, and after a restart empty).

/// A node's beat: KEYS = the nodes set; ARGV = ttl in ms, the node. Returns
/// whether the node was new to the set (Redis lost it, or took it for
/// dead: its entries must be written again), and up to 16 nodes whose time
/// is up.
static BEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local added = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 16)
return {added, dead}",
    )
});

/// Removes a dead node's entries from one room: KEYS = the room's hash;
/// ARGV = the fields' prefix (`<node>|`). Returns the fields removed, so
/// only the node whose call removed an entry announces it. The room leaves
/// the node's set afterwards, by another command (on a cluster the set may
/// live on another shard); a reaper that stops between the two finds the
/// room again with nothing left in it to remove.
static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local gone = {}
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, #ARGV[1]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], field)
    gone[#gone + 1] = field
  end
end
return gone",
    )
});

/// Forgets a dead node, once its rooms are reaped, unless it beat again
/// meanwhile: KEYS = the nodes set; ARGV = the node. A node that wrote
/// entries after the reaper read its rooms and was forgotten before it beat
/// finds itself new to the set at its next beat, and writes them all again.
static FORGET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local until_ = redis.call('ZSCORE', KEYS[1], ARGV[1])
if until_ and tonumber(until_) <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0",
    )
});

const PREFIX: &str = "hub:presence:";
const NODES: &str = "hub:presence-nodes";
const NODE_ROOMS: &str = "hub:presence-node:";
/// A node's rooms are listed in this many sets, by the hash slot of the
/// room's key: on a Redis Cluster each set lives in the slot range of its
/// rooms (see [`BUCKET_TAGS`]), so listing a room writes to the shard that
/// holds the room, and no one shard takes every node's listings.
const BUCKETS: u16 = 16;
const SLOTS_PER_BUCKET: u16 = 16_384 / BUCKETS;

/// For each bucket, a hash tag whose slot falls in the bucket's range, the
/// first `presence-<bucket>-<n>` that does: the same on every node.
static BUCKET_TAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    (0..BUCKETS)
        .map(|bucket| {
            (0..)
                .map(|n| format!("presence-{bucket}-{n}"))
                .find(|tag| slot(tag.as_bytes()) / SLOTS_PER_BUCKET == bucket)
                .expect("some tag hashes into every range")
        })
        .collect()
});

/// A command that takes longer has failed; what it carried is written again.
const TIMEOUT: Duration = Duration::from_secs(2);
/// After a write failed, the keeper waits this long before the next try.
const RETRY: Duration = Duration::from_millis(500);

/// A presence entry's field in the shared store: the node, then the person.
pub fn entry_field(node: &str, person: &str) -> String {
    format!("{node}|{person}")
}

/// The node and person of a presence entry's field.
pub fn split_field(field: &str) -> Option<(&str, &str)> {
    field.split_once('|')
}

fn room_key(room: &str) -> String {
    format!("{PREFIX}{room}")
}

/// The set that lists `room` among `node`'s rooms.
fn node_rooms_key(node: &str, room: &str) -> String {
    let bucket = slot(room_key(room).as_bytes()) / SLOTS_PER_BUCKET;
    node_bucket_key(node, bucket)
}

fn node_bucket_key(node: &str, bucket: u16) -> String {
    format!(
        "{NODE_ROOMS}{{{}}}:{node}",
        BUCKET_TAGS[usize::from(bucket)]
    )
}

/// A presence command that did not get its answer: never an answer itself
/// (a failed read is not an empty room), but something to do again.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("no answer within {TIMEOUT:?}")]
    TimedOut,
}

impl PresenceError {
    /// Counts the failure and logs it: as a warning, unless Redis cannot be
    /// reached at all, which the bus reports itself.
    pub fn report(&self, metrics: &Metrics, room: &str, what: &str) {
        metrics.presence_failed();
        let outage = match self {
            Self::Redis(err) => err.is_io_error() || err.is_connection_dropped(),
            Self::TimedOut => true,
        };
        if outage {
            tracing::debug!(room, error = %self, "{what} failed");
        } else {
            tracing::warn!(room, error = %self, "{what} failed");
        }
    }
}

async fn within<T>(
    command: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, PresenceError> {
    match tokio::time::timeout(TIMEOUT, command).await {
        Ok(answer) => Ok(answer?),
        Err(_) => Err(PresenceError::TimedOut),
    }
}

/// What a room's topic carries when a person's last socket on a node is
/// gone: the rooms' own event, which the bus does not know the shape of.
pub type Departure = fn(node: &str, person: &str) -> Vec<u8>;

/// The presence store a room talks to: `put`, `remove` and `load` (whose
/// failure is an error, never an empty room), the same whether the node is
/// alone or not. Two stores, so an enum rather than a trait object: a node
/// alone shares nothing (its rooms know all their members), and the Redis
/// store serves one Redis and a Redis Cluster alike, since every command it
/// sends touches one key and the connection routes it to its shard.
#[derive(Clone)]
pub enum SharedPresence {
    Alone,
    Redis(Arc<Shared>),
}

pub struct Shared {
    connection: Connection,
    entries: Mutex<Entries>,
    /// Rung when a change waits to be written.
    wake: Notify,
    /// The node has said goodbye: the keeper neither beats nor writes, so
    /// it cannot bring the node back before the process ends.
    gone: AtomicBool,
    /// Held by the keeper while it beats or writes, and by the goodbye, so
    /// that no beat lands after it.
    turn: tokio::sync::Mutex<()>,
}

impl SharedPresence {
    /// The presence of a node in a cluster, with its keeper running on
    /// `runtime`.
    pub fn start(connection: Connection, keeper: Keeper, runtime: &actix::ArbiterHandle) -> Self {
        let shared = Arc::new(Shared {
            connection,
            entries: Mutex::new(Entries::default()),
            wake: Notify::new(),
            gone: AtomicBool::new(false),
            turn: tokio::sync::Mutex::new(()),
        });
        runtime.spawn(keeper.run(shared.clone()));
        Self::Redis(shared)
    }

    /// Adds or changes this node's entry for a person in `room`. It is
    /// written by the keeper, as soon as it can and again whenever Redis
    /// has lost it.
    pub fn put(&self, room: &str, field: String, shown: String) {
        if let Self::Redis(shared) = self {
            shared.entries().put(room, field, shown);
            shared.wake.notify_one();
        }
    }

    /// Removes one entry of this node's, as `put` writes.
    pub fn remove(&self, room: &str, field: String) {
        if let Self::Redis(shared) = self {
            shared.entries().remove(room, field);
            shared.wake.notify_one();
        }
    }

    /// A stopping node's goodbye, once its rooms have closed: what waits is
    /// written, and if no entry of the node's is left, its set of rooms and
    /// its beat go too, so nothing of it is left for others to reap. With
    /// entries left (rooms that did not close in time), the node stays for
    /// the others to reap, who then announce those departures.
    pub async fn leave(&self, node: &str) -> Result<(), PresenceError> {
        let Self::Redis(shared) = self else {
            return Ok(());
        };
        let _turn = shared.turn.lock().await;
        shared.gone.store(true, Relaxed);
        let (writes, clean) = {
            let mut entries = shared.entries();
            (entries.take(), entries.mine.is_empty())
        };
        let mut batch = batch(node, &writes);
        if clean {
            batch.then();
            for bucket in 0..BUCKETS {
                let key = node_bucket_key(node, bucket);
                let mut del = redis::cmd("DEL");
                del.arg(&key);
                batch.add(del);
            }
            let mut zrem = redis::cmd("ZREM");
            zrem.arg(NODES).arg(node);
            batch.add(zrem);
        }
        let mut connection = shared.connection.clone();
        within(batch.send(&mut connection)).await
    }

    /// Every entry of the room, `(field, shown)`.
    pub async fn load(&self, room: &str) -> Result<Vec<(String, String)>, PresenceError> {
        let Self::Redis(shared) = self else {
            return Ok(Vec::new());
        };
        let mut connection = shared.connection.clone();
        let mut all = redis::cmd("HGETALL");
        all.arg(room_key(room));
        within(all.query_async::<Vec<(String, String)>>(&mut connection)).await
    }
}

impl Shared {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The changes to one room's entries written together.
#[derive(Debug, Default, PartialEq, Eq)]
struct RoomWrite {
    room: String,
    /// `(field, shown)` to set, and fields to delete.
    puts: Vec<(String, String)>,
    removes: Vec<String>,
    /// Whether this node still has entries in the room after the write
    /// (the room stays in, or leaves, the node's set).
    held: bool,
    /// Whether the room was in the node's set, as far as this node knows,
    /// when the write was taken: only a change of that costs a command.
    listed: bool,
}

/// This node's entries, and the changes to them not yet written.
#[derive(Default)]
struct Entries {
    /// Per room, field to what is shown: what Redis should hold.
    mine: HashMap<String, HashMap<String, String>>,
    /// Per room, field to its newest unwritten change: `Some` to set it,
    /// `None` to delete it. Only the newest counts, so this holds at most
    /// one change per entry however often a person comes and goes.
    pending: HashMap<String, HashMap<String, Option<String>>>,
    /// The rooms in this node's set in Redis, as of the last write that
    /// went through.
    listed: HashSet<String>,
}

impl Entries {
    fn put(&mut self, room: &str, field: String, shown: String) {
        self.mine
            .entry(room.to_owned())
            .or_default()
            .insert(field.clone(), shown.clone());
        self.change(room, field, Some(shown));
    }

    fn remove(&mut self, room: &str, field: String) {
        if let Some(fields) = self.mine.get_mut(room) {
            fields.remove(&field);
            if fields.is_empty() {
                self.mine.remove(room);
            }
        }
        self.change(room, field, None);
    }

    fn change(&mut self, room: &str, field: String, to: Option<String>) {
        self.pending
            .entry(room.to_owned())
            .or_default()
            .insert(field, to);
    }

    /// Every entry is to be written again: Redis has lost them (and the
    /// node's set with them).
    fn all_again(&mut self) {
        self.listed.clear();
        for (room, fields) in &self.mine {
            let pending = self.pending.entry(room.clone()).or_default();
            for (field, shown) in fields {
                pending.insert(field.clone(), Some(shown.clone()));
            }
        }
    }

    /// Takes the changes waiting, room by room.
    fn take(&mut self) -> Vec<RoomWrite> {
        self.pending
            .drain()
            .map(|(room, changes)| {
                let mut write = RoomWrite {
                    held: self.mine.contains_key(&room),
                    listed: self.listed.contains(&room),
                    room,
                    ..RoomWrite::default()
                };
                for (field, to) in changes {
                    match to {
                        Some(shown) => write.puts.push((field, shown)),
                        None => write.removes.push(field),
                    }
                }
                write
            })
            .collect()
    }

    /// Writes that went through: the node's set now holds their rooms that
    /// are held, and none of the others.
    fn written(&mut self, writes: &[RoomWrite]) {
        for write in writes {
            if write.held {
                self.listed.insert(write.room.clone());
            } else {
                self.listed.remove(&write.room);
            }
        }
    }

    /// Writes that failed wait again, unless a newer change to the same
    /// entry came meanwhile.
    fn retry(&mut self, writes: Vec<RoomWrite>) {
        for write in writes {
            let pending = self.pending.entry(write.room).or_default();
            for (field, shown) in write.puts {
                pending.entry(field).or_insert(Some(shown));
            }
            for field in write.removes {
                pending.entry(field).or_insert(None);
            }
        }
    }
}

/// The commands of a set of room writes, in three phases. A room joins the
/// node's set before its entries are written and leaves it after its last
/// entry is deleted, so a reaper that finds the node dead always finds its
/// rooms.
fn batch(node: &str, writes: &[RoomWrite]) -> Batch {
    let mut batch = Batch::default();
    list(&mut batch, "SADD", node, writes, |w| w.held && !w.listed);
    batch.then();
    for write in writes {
        let key = room_key(&write.room);
        if !write.puts.is_empty() {
            let mut hset = redis::cmd("HSET");
            hset.arg(&key).arg(&write.puts);
            batch.add(hset);
        }
        if !write.removes.is_empty() {
            let mut hdel = redis::cmd("HDEL");
            hdel.arg(&key).arg(&write.removes);
            batch.add(hdel);
        }
    }
    batch.then();
    list(&mut batch, "SREM", node, writes, |w| !w.held && w.listed);
    batch
}

/// Adds (`SADD`) or removes (`SREM`) the rooms of the writes `which`
/// picks to or from the node's sets, one command per set concerned.
fn list(
    batch: &mut Batch,
    command: &str,
    node: &str,
    writes: &[RoomWrite],
    which: fn(&RoomWrite) -> bool,
) {
    let mut sets: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for write in writes.iter().filter(|w| which(w)) {
        sets.entry(node_rooms_key(node, &write.room))
            .or_default()
            .push(&write.room);
    }
    for (set, rooms) in sets {
        let mut cmd = redis::cmd(command);
        cmd.arg(&set).arg(&rooms);
        batch.add(cmd);
    }
}

/// The task that writes a node's entries, beats for it and reaps the nodes
/// that stopped beating.
pub struct Keeper {
    pub node: String,
    pub ttl: Duration,
    pub events: Events,
    pub broker: Arc<dyn Broker>,
    pub departure: Departure,
}

impl Keeper {
    async fn run(self, shared: Arc<Shared>) {
        let mut beat = tokio::time::interval(self.ttl / 3);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut connection = shared.connection.clone();
        loop {
            let beat_now = tokio::select! {
                _ = beat.tick() => true,
                // Back after an outage: Redis may have restarted empty, and
                // rooms read presence again now, so the beat that finds out
                // is not left for later.
                () = self.events.came_up() => true,
                () = shared.wake.notified() => false,
            };
            let _turn = shared.turn.lock().await;
            if shared.gone.load(Relaxed) {
                return;
            }
            if beat_now {
                self.beat(&shared, &mut connection).await;
            }
            self.write(&shared, &mut connection).await;
        }
    }

    /// Writes every change waiting, in one pipeline; what fails waits for
    /// the next try.
    async fn write(&self, shared: &Shared, connection: &mut Connection) {
        let writes = shared.entries().take();
        if writes.is_empty() {
            return;
        }
        let batch = batch(&self.node, &writes);
        match within(batch.send(connection)).await {
            Ok(()) => shared.entries().written(&writes),
            Err(err) => {
                err.report(&self.events.metrics(), "*", "writing presence entries");
                shared.entries().retry(writes);
                tokio::time::sleep(RETRY).await;
                shared.wake.notify_one();
            }
        }
    }

    async fn beat(&self, shared: &Shared, connection: &mut Connection) {
        let mut beat = BEAT.key(NODES);
        beat.arg(self.ttl.as_millis().to_string()).arg(&self.node);
        let (added, dead) = match within(beat.invoke_async::<(i64, Vec<String>)>(connection)).await
        {
            Ok(answer) => answer,
            Err(err) => return err.report(&self.events.metrics(), "*", "beating"),
        };
        if added == 1 {
            shared.entries().all_again();
        }
        for node in dead.iter().filter(|n| **n != self.node) {
            if let Err(err) = self.reap(node, connection).await {
                // The next beat finds the node dead again and goes on.
                err.report(
                    &self.events.metrics(),
                    "*",
                    "reaping a dead node's presence",
                );
                return;
            }
        }
    }

    /// Removes a dead node's entries from each of its rooms, publishing a
    /// departure for each entry this call removed, then forgets the node.
    async fn reap(&self, node: &str, connection: &mut Connection) -> Result<(), PresenceError> {
        let mut rooms: Vec<String> = Vec::new();
        for bucket in 0..BUCKETS {
            let mut members = redis::cmd("SMEMBERS");
            members.arg(node_bucket_key(node, bucket));
            rooms.extend(within(members.query_async::<Vec<String>>(connection)).await?);
        }
        let prefix = entry_field(node, "");
        for room in rooms {
            let mut reap = REAP.key(room_key(&room));
            reap.arg(&prefix);
            let gone: Vec<String> = within(reap.invoke_async(connection)).await?;
            for field in gone {
                if let Some((node, person)) = split_field(&field) {
                    let departure = (self.departure)(node, person);
                    self.broker
                        .publish(&Topic::room(&room), Bytes::from(departure));
                }
            }
            let mut srem = redis::cmd("SREM");
            srem.arg(node_rooms_key(node, &room)).arg(&room);
            within(srem.query_async::<()>(connection)).await?;
        }
        let mut forget = FORGET.key(NODES);
        forget.arg(node);
        within(forget.invoke_async::<i64>(connection)).await?;
        tracing::info!(
            node,
            "a node stopped beating: its presence entries are let go"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(entries: &mut Entries) -> Vec<RoomWrite> {
        let mut writes = entries.take();
        for write in &mut writes {
            write.puts.sort();
            write.removes.sort();
        }
        writes.sort_by(|a, b| a.room.cmp(&b.room));
        writes
    }

    #[test]
    fn a_person_who_comes_and_goes_before_a_write_is_one_delete() {
        let mut entries = Entries::default();
        entries.put("lobby", "n|u1".into(), "{}".into());
        entries.remove("lobby", "n|u1".into());
        assert_eq!(
            written(&mut entries),
            [RoomWrite {
                room: "lobby".into(),
                removes: vec!["n|u1".into()],
                ..RoomWrite::default()
            }]
        );
        assert!(written(&mut entries).is_empty(), "taken once");
    }

    #[test]
    fn a_room_stays_in_the_nodes_set_until_its_last_entry_goes() {
        let mut entries = Entries::default();
        entries.put("lobby", "n|u1".into(), "a".into());
        entries.put("lobby", "n|u2".into(), "b".into());
        written(&mut entries);
        entries.remove("lobby", "n|u1".into());
        assert!(written(&mut entries)[0].held);
        entries.remove("lobby", "n|u2".into());
        assert!(!written(&mut entries)[0].held);

        let writes = vec![
            RoomWrite {
                room: "a".into(),
                puts: vec![("n|u".into(), "x".into())],
                held: true,
                ..RoomWrite::default()
            },
            RoomWrite {
                room: "b".into(),
                removes: vec!["n|v".into()],
                listed: true,
                ..RoomWrite::default()
            },
            // Already in the set, and staying: no command for the set.
            RoomWrite {
                room: "c".into(),
                puts: vec![("n|w".into(), "y".into())],
                held: true,
                listed: true,
                ..RoomWrite::default()
            },
        ];
        let phases: Vec<Vec<String>> = batch("n", &writes)
            .phases()
            .map(|phase| {
                phase
                    .map(|cmd| {
                        let packed =
                            String::from_utf8_lossy(&cmd.get_packed_command()).into_owned();
                        packed
                            .split("\r\n")
                            .filter(|p| !p.starts_with(['*', '$']) && !p.is_empty())
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .collect()
            })
            .collect();
        assert_eq!(
            phases,
            [
                vec![format!("SADD {} a", node_rooms_key("n", "a"))],
                vec![
                    "HSET hub:presence:a n|u x".to_owned(),
                    "HDEL hub:presence:b n|v".to_owned(),
                    "HSET hub:presence:c n|w y".to_owned(),
                ],
                vec![format!("SREM {} b", node_rooms_key("n", "b"))],
            ]
        );
    }

    #[test]
    fn a_node_lists_each_room_in_the_set_whose_slot_range_holds_the_room() {
        for (bucket, tag) in BUCKET_TAGS.iter().enumerate() {
            assert_eq!(usize::from(slot(tag.as_bytes()) / SLOTS_PER_BUCKET), bucket);
        }
        for room in ["lobby", "management", "r-1", "r-2", "r-3", "café"] {
            let set = node_rooms_key("n", room);
            assert_eq!(
                slot(set.as_bytes()) / SLOTS_PER_BUCKET,
                slot(room_key(room).as_bytes()) / SLOTS_PER_BUCKET,
                "{set}"
            );
            assert!(set.starts_with("hub:presence-node:{presence-") && set.ends_with("}:n"));
        }
        // Rooms in different ranges: one command per set, each on its own.
        let writes: Vec<RoomWrite> = (0..40)
            .map(|i| RoomWrite {
                room: format!("r-{i}"),
                held: true,
                ..RoomWrite::default()
            })
            .collect();
        let batch = batch("n", &writes);
        let first: Vec<&redis::Cmd> = batch.phases().next().unwrap().collect();
        let sets: HashSet<String> = writes
            .iter()
            .map(|w| node_rooms_key("n", &w.room))
            .collect();
        assert_eq!(first.len(), sets.len());
        assert!(sets.len() > 8, "40 rooms spread over the ranges");
    }

    #[test]
    fn a_room_joins_the_nodes_set_once_and_again_after_redis_lost_it() {
        let mut entries = Entries::default();
        entries.put("lobby", "n|u1".into(), "a".into());
        let first = entries.take();
        assert!(first[0].held && !first[0].listed, "the room's first entry");
        // A write that failed leaves the room unlisted: its retry adds it.
        entries.retry(first);
        let again = entries.take();
        assert!(!again[0].listed);
        entries.written(&again);
        entries.put("lobby", "n|u2".into(), "b".into());
        assert!(entries.take()[0].listed, "already in the set");
        entries.all_again();
        let rewritten = entries.take();
        assert!(
            rewritten[0].held && !rewritten[0].listed,
            "Redis lost the set"
        );
        entries.written(&rewritten);
        entries.remove("lobby", "n|u1".into());
        entries.remove("lobby", "n|u2".into());
        let last = entries.take();
        assert!(
            !last[0].held && last[0].listed,
            "the last entry leaves the set"
        );
        entries.written(&last);
        assert!(entries.listed.is_empty());
    }

    #[test]
    fn a_failed_write_waits_again_unless_a_newer_change_replaced_it() {
        let mut entries = Entries::default();
        entries.put("lobby", "n|u1".into(), "old".into());
        entries.put("lobby", "n|u2".into(), "b".into());
        let failed = entries.take();
        entries.put("lobby", "n|u1".into(), "new".into());
        entries.retry(failed);
        let again = written(&mut entries);
        assert_eq!(
            again[0].puts,
            [
                ("n|u1".to_owned(), "new".to_owned()),
                ("n|u2".to_owned(), "b".to_owned())
            ]
        );
    }

    #[test]
    fn entries_redis_lost_are_all_written_again_and_removed_ones_stay_removed() {
        let mut entries = Entries::default();
        entries.put("lobby", "n|u1".into(), "a".into());
        entries.put("attic", "n|u2".into(), "b".into());
        entries.remove("attic", "n|u2".into());
        written(&mut entries);
        entries.all_again();
        assert_eq!(
            written(&mut entries),
            [RoomWrite {
                room: "lobby".into(),
                puts: vec![("n|u1".into(), "a".into())],
                held: true,
                ..RoomWrite::default()
            }]
        );
    }

    #[test]
    fn a_field_splits_back_into_its_node_and_person() {
        assert_eq!(split_field(&entry_field("n1", "u7")), Some(("n1", "u7")));
        assert_eq!(entry_field("n1", ""), "n1|");
    }
}
