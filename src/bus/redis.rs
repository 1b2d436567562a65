//! The broker of a cluster: Redis pub/sub, channel `hub:<topic>`, except
//! users' topics, which share `hub:users` (see [`USERS`]). On a Redis
//! Cluster the same channels are sharded (`SPUBLISH`, `SSUBSCRIBE`): each
//! rides the shard that owns its slot (see `connection.rs`).
//!
//! Three tasks on the bus's own thread:
//! - the publisher drains a bounded queue in pipelines over one
//!   `ConnectionManager`, in order, so one node's messages on a topic reach
//!   every other node in the order they were published;
//! - the dispatcher reads the subscriber connection's RESP3 pushes as fast
//!   as they come (Redis cuts a subscriber that falls 32 MB behind) and
//!   hands each to the node's routes;
//! - the controller owns the subscriber connection: it subscribes and
//!   unsubscribes topics, all that were asked since its last round in one
//!   command (a topic is let go only after a grace, and only if still
//!   unwanted), PINGs it every second and publishes a probe to this
//!   node's own channel, on a cluster one channel per shard. The link counts
//!   as up only while every probe comes back: a subscriber that reconnected
//!   but is deaf (a failover can do that while every PING succeeds) is
//!   replaced by a new one.
//!
//! Reconnecting never gives up: the crate's default of six tries leaves a
//! subscriber deaf for good after an outage of about 15 s.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;

use super::connection::{self, Batch, COMMAND_TIMEOUT, Connection, slot};
use super::routes::{Broker, Events, Topic};
use crate::config::RedisUrl;
use crate::metrics::Metrics;

/// Messages waiting to be published; past this a publish is delivered on
/// this node alone rather than wait (the others catch up from the database).
const PUBLISH_QUEUE: usize = 65_536;
/// Messages published while the link was down, kept to publish again once
/// it is back; past this the oldest are let go (other nodes then read what
/// the database holds of them, chat messages, when they catch up).
const MAX_UNSENT: usize = 100_000;
/// Messages sent to Redis in one pipeline.
const PUBLISH_BATCH: usize = 512;
/// How often the subscriber is pinged and a probe published.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// Without a probe back for this long, the link is down.
const PROBE_LOST: Duration = Duration::from_secs(3);
/// Without a probe back for this long while Redis answers, the subscriber
/// is deaf: it is replaced.
const DEAF_AFTER: Duration = Duration::from_secs(5);
/// Channels named in one `SUBSCRIBE` or `UNSUBSCRIBE` at most.
const CHANNELS_PER_COMMAND: usize = 1024;
/// How long a topic stays subscribed after its last local subscriber left,
/// so a quick leave-and-rejoin keeps delivery.
const UNSUBSCRIBE_GRACE: Duration = Duration::from_secs(2);

/// The channel every user's topic rides. A user's topic carries news of
/// the user (a re-check found them changed, the command line deactivated
/// them): rare, and wanted by every socket of theirs. A channel per user
/// would cost a `SUBSCRIBE` on a user's first socket on a node and an
/// `UNSUBSCRIBE` after their last, so a reconnect storm would be as many
/// commands as sockets; one channel for all, which every node subscribes
/// once, costs nothing per handshake, and each message reaches every node,
/// which drops what none of its sockets wants.
const USERS: &str = "hub:users";

/// The channel a topic rides: its own (`hub:<topic>`), or for a user's,
/// the one all users share.
fn channel(topic: &Topic) -> String {
    if topic.is_user() {
        USERS.to_owned()
    } else {
        format!("hub:{topic}")
    }
}

/// A message as published: on the users' channel the payload follows its
/// topic and a newline, so the receiving node knows whose it is; on any
/// other it goes as it is, uncopied.
fn wire<'a>(topic: &Topic, payload: &'a [u8]) -> (String, Cow<'a, [u8]>) {
    if !topic.is_user() {
        return (channel(topic), Cow::Borrowed(payload));
    }
    let mut framed = Vec::with_capacity(topic.as_str().len() + 1 + payload.len());
    framed.extend_from_slice(topic.as_str().as_bytes());
    framed.push(b'\n');
    framed.extend_from_slice(payload);
    (USERS.to_owned(), Cow::Owned(framed))
}

/// The topic and payload of a message that came on `name`.
fn unwire(name: &[u8], payload: Vec<u8>) -> Option<(Topic, Bytes)> {
    if name == USERS.as_bytes() {
        let split = payload.iter().position(|b| *b == b'\n')?;
        let topic = std::str::from_utf8(&payload[..split]).ok()?;
        let topic = Topic(topic.into());
        if !topic.is_user() {
            return None;
        }
        let mut payload = Bytes::from(payload);
        return Some((topic, payload.split_off(split + 1)));
    }
    let topic = std::str::from_utf8(name).ok()?.strip_prefix("hub:")?;
    Some((Topic(topic.into()), Bytes::from(payload)))
}

enum Command {
    Subscribe(Topic),
    /// Let go of a topic once its grace is over, if it is still unwanted.
    Release(Topic),
}

pub struct RedisBroker {
    events: Events,
    outbox: Arc<Outbox>,
    commands: mpsc::UnboundedSender<Command>,
    runtime: actix::ArbiterHandle,
}

/// Where publishing goes: the queue to Redis while the link is up; while it
/// is down, this node's own subscribers at once and `unsent`, in order, to
/// go out when it is back (receivers drop what they already had).
struct Outbox {
    queue: mpsc::Sender<(Topic, Bytes)>,
    unsent: Mutex<VecDeque<(Topic, Bytes)>>,
    /// Unsent messages let go since start, for the log.
    let_go: AtomicU64,
    /// Messages queued and not yet through the publisher (sent, or kept
    /// because sending failed).
    queued: AtomicUsize,
}

impl Outbox {
    fn unsent(&self) -> std::sync::MutexGuard<'_, VecDeque<(Topic, Bytes)>> {
        self.unsent.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, events: &Events, topic: &Topic, payload: Bytes) {
        let mut unsent = self.unsent();
        if events.is_up() {
            if let Err(
                mpsc::error::TrySendError::Full((topic, payload))
                | mpsc::error::TrySendError::Closed((topic, payload)),
            ) = self.queue.try_send((topic.clone(), payload))
            {
                tracing::warn!(%topic, "bus publish queue full: delivered here, sent later");
                self.keep(&mut unsent, events, topic, payload);
            } else {
                self.queued.fetch_add(1, Relaxed);
            }
        } else {
            self.keep(&mut unsent, events, topic.clone(), payload);
        }
    }

    /// Messages that did not go out: delivered here now, kept for later.
    fn fell_back(&self, events: &Events, batch: Vec<(Topic, Bytes)>) {
        let mut unsent = self.unsent();
        for (topic, payload) in batch {
            self.keep(&mut unsent, events, topic, payload);
        }
    }

    fn keep(
        &self,
        unsent: &mut VecDeque<(Topic, Bytes)>,
        events: &Events,
        topic: Topic,
        payload: Bytes,
    ) {
        events.arrived(&topic, payload.clone());
        if unsent.len() == MAX_UNSENT {
            unsent.pop_front();
            let let_go = self.let_go.fetch_add(1, Relaxed) + 1;
            if let_go == 1 || let_go.is_multiple_of(10_000) {
                tracing::warn!(
                    let_go,
                    "bus down too long: the oldest unsent messages were let go"
                );
            }
        }
        unsent.push_back((topic, payload));
    }

    /// Queues what went out locally only, then marks the link up, both
    /// under the lock publishers take, so nothing published meanwhile
    /// slips between. False (still down) when the queue cannot take it all
    /// yet.
    fn replay_then_up(&self, events: &Events) -> bool {
        let mut unsent = self.unsent();
        while let Some(item) = unsent.pop_front() {
            if let Err(
                mpsc::error::TrySendError::Full(item) | mpsc::error::TrySendError::Closed(item),
            ) = self.queue.try_send(item)
            {
                unsent.push_front(item);
                return false;
            }
            self.queued.fetch_add(1, Relaxed);
        }
        events.up();
        true
    }
}

impl RedisBroker {
    /// Starts the broker's tasks on `runtime` and returns it with a
    /// connection for other commands (the shared presence entries). It
    /// connects in the background: a node whose Redis is away serves alone
    /// until it is back.
    pub fn start(
        url: &RedisUrl,
        node: &str,
        events: Events,
        metrics: Arc<Metrics>,
        runtime: actix::ArbiterHandle,
    ) -> anyhow::Result<(Arc<Self>, Connection)> {
        let (queue, queued) = mpsc::channel(PUBLISH_QUEUE);
        let outbox = Arc::new(Outbox {
            queue,
            unsent: Mutex::new(VecDeque::new()),
            let_go: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
        });
        let (commands, commanded) = mpsc::unbounded_channel();
        let probe = Topic(format!("probe:{node}").into());
        // The connections are made on the bus's thread, so their own tasks
        // (reading replies, redialling) run there and nowhere else.
        let (made, take) = std::sync::mpsc::channel();
        let task_events = events.clone();
        let task_outbox = outbox.clone();
        let url = url.clone();
        runtime.spawn(async move {
            let publisher = match Connection::open(&url, None) {
                Ok(publisher) => publisher,
                Err(err) => {
                    // Unheard only if the caller stopped waiting, and
                    // then nobody needs the answer.
                    let _ = made.send(Err(err));
                    return;
                }
            };
            let (push_tx, pushes) = mpsc::unbounded_channel();
            let echoes = Arc::new(Echoes::default());
            let dropped = Arc::new(tokio::sync::Notify::new());
            let control = Controller {
                url,
                push_tx,
                subscriber: None,
                publisher: publisher.clone(),
                events: task_events.clone(),
                probe: probe.clone(),
                // A cluster's are known once it says what its shards are.
                probes: if publisher.is_cluster() {
                    Vec::new()
                } else {
                    vec![channel(&probe)]
                },
                echoes: echoes.clone(),
                dropped: dropped.clone(),
                stale: HashSet::new(),
                started: Instant::now(),
                outbox: task_outbox.clone(),
            };
            tokio::spawn(publish(
                publisher.clone(),
                queued,
                task_events.clone(),
                task_outbox,
                metrics,
            ));
            tokio::spawn(dispatch(pushes, task_events, probe, echoes, dropped));
            tokio::spawn(control.run(commanded));
            // As above: a caller that stopped waiting needs no answer.
            let _ = made.send(Ok(publisher));
        });
        let connection = take
            .recv()
            .map_err(|_| anyhow::anyhow!("the bus thread stopped before connecting"))??;
        let broker = Arc::new(Self {
            events,
            outbox,
            commands,
            runtime,
        });
        Ok((broker, connection))
    }
}

/// Publishes one message from a process that is no node (the command
/// line), waiting until Redis has taken it.
pub fn publish_once(url: &RedisUrl, topic: &Topic, payload: &[u8]) -> anyhow::Result<()> {
    let (channel, payload) = wire(topic, payload);
    Ok(connection::publish_once(url, &channel, &payload)?)
}

impl Broker for RedisBroker {
    fn publish(&self, topic: &Topic, payload: Bytes) {
        self.outbox.publish(&self.events, topic, payload);
    }

    fn subscribe(&self, topic: &Topic) {
        if topic.is_user() {
            // The users' channel is subscribed once, with the probe.
            return;
        }
        // Refused only once the controller has ended, when the runtime
        // shuts down and nothing is delivered any more.
        let _ = self.commands.send(Command::Subscribe(topic.clone()));
    }

    fn flushed(&self) -> bool {
        self.outbox.queued.load(Relaxed) == 0
    }

    fn unsubscribe(&self, topic: &Topic) {
        if topic.is_user() {
            return;
        }
        let commands = self.commands.clone();
        let topic = topic.clone();
        self.runtime.spawn(async move {
            tokio::time::sleep(UNSUBSCRIBE_GRACE).await;
            // As for subscribe: refused only while shutting down.
            let _ = commands.send(Command::Release(topic));
        });
    }
}

/// Publishes in order, a pipeline at a time. A pipeline that fails is
/// delivered here and kept to publish again (its messages may or may not
/// have reached the others; receivers drop repeats), and the link is marked
/// down until probes come back.
async fn publish(
    mut connection: Connection,
    mut queued: mpsc::Receiver<(Topic, Bytes)>,
    events: Events,
    outbox: Arc<Outbox>,
    metrics: Arc<Metrics>,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    loop {
        let taken = queued.recv_many(&mut batch, PUBLISH_BATCH).await;
        if taken == 0 {
            break;
        }
        let mut sending = Batch::default();
        for (topic, payload) in &batch {
            let (channel, payload) = wire(topic, payload);
            sending.add(connection.publish(&channel, payload.as_ref()));
        }
        let sent = tokio::time::timeout(COMMAND_TIMEOUT, sending.send(&mut connection));
        match sent.await {
            Ok(Ok(())) => metrics.bus_published(u64::try_from(batch.len()).unwrap_or(u64::MAX)),
            failed => {
                let why = match failed {
                    Ok(Err(err)) => format!("publishing failed: {err}"),
                    _ => "publishing timed out".to_owned(),
                };
                events.down(&why);
                outbox.fell_back(&events, std::mem::take(&mut batch));
            }
        }
        outbox.queued.fetch_sub(taken, Relaxed);
        batch.clear();
    }
}

/// The newest probe that came back on each probe channel: when it was
/// sent, in milliseconds since the broker started (stamped from 1).
#[derive(Default)]
struct Echoes {
    sent_ms: Mutex<HashMap<String, u64>>,
}

impl Echoes {
    fn heard(&self, channel: &str, sent: u64) {
        let mut all = self.sent_ms.lock().unwrap_or_else(|p| p.into_inner());
        let newest = all.entry(channel.to_owned()).or_default();
        *newest = (*newest).max(sent);
    }

    /// Whether `channel` is a probe channel that has come back: one of
    /// this node's, and not let go since.
    fn knows(&self, channel: &[u8]) -> bool {
        let all = self.sent_ms.lock().unwrap_or_else(|p| p.into_inner());
        std::str::from_utf8(channel).is_ok_and(|c| all.contains_key(c))
    }

    /// Probe channels let go of: what Redis says of them is no more news.
    fn forget(&self, channels: &[String]) {
        let mut all = self.sent_ms.lock().unwrap_or_else(|p| p.into_inner());
        for channel in channels {
            all.remove(channel);
        }
    }

    /// When the oldest of the newest probes back on `channels` was sent;
    /// `None` while one of them has never come back.
    fn oldest(&self, channels: &[String]) -> Option<u64> {
        let all = self.sent_ms.lock().unwrap_or_else(|p| p.into_inner());
        channels.iter().map(|c| all.get(c).copied()).min().flatten()
    }
}

/// Hands every message push to the routes; a dropped connection is a gap,
/// and so is a wanted sharded channel that Redis unsubscribed by itself:
/// a Redis Cluster does that to every subscriber of a shard's channels when
/// the shard's master fails over or its slots move, and the redis crate
/// then forgets the subscription. `dropped` tells the controller to
/// subscribe everything again.
async fn dispatch(
    mut pushes: mpsc::UnboundedReceiver<PushInfo>,
    events: Events,
    probe: Topic,
    echoes: Arc<Echoes>,
    dropped: Arc<tokio::sync::Notify>,
) {
    let probe_channel = channel(&probe);
    while let Some(push) = pushes.recv().await {
        match push.kind {
            PushKind::Message | PushKind::SMessage => {
                let mut data = push.data.into_iter();
                let (Some(Value::BulkString(name)), Some(Value::BulkString(payload))) =
                    (data.next(), data.next())
                else {
                    continue;
                };
                if name.starts_with(probe_channel.as_bytes()) {
                    let name = std::str::from_utf8(&name).ok();
                    let sent = std::str::from_utf8(&payload)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok());
                    if let (Some(name), Some(sent)) = (name, sent) {
                        echoes.heard(name, sent);
                    }
                    continue;
                }
                if let Some((topic, payload)) = unwire(&name, payload) {
                    events.arrived(&topic, payload);
                }
            }
            PushKind::Disconnection => events.down("the subscriber connection dropped"),
            PushKind::SUnsubscribe => {
                let Some(Value::BulkString(name)) = push.data.first() else {
                    continue;
                };
                let wanted = echoes.knows(name)
                    || name == USERS.as_bytes()
                    || unwire(name, Vec::new()).is_some_and(|(topic, _)| events.wanted(&topic));
                if wanted {
                    events.down("Redis Cluster dropped this node's subscriptions to a shard");
                    dropped.notify_one();
                }
            }
            _ => {}
        }
    }
}

struct Controller {
    url: RedisUrl,
    push_tx: mpsc::UnboundedSender<PushInfo>,
    subscriber: Option<Connection>,
    publisher: Connection,
    events: Events,
    probe: Topic,
    /// The channels probes go out on: this node's probe channel, or on a
    /// cluster one per shard, each named so that its shard owns it.
    probes: Vec<String>,
    echoes: Arc<Echoes>,
    /// Rung when Redis dropped wanted subscriptions by itself.
    dropped: Arc<tokio::sync::Notify>,
    /// Topics whose unsubscribe failed: let go of again once reconnected.
    stale: HashSet<Topic>,
    started: Instant,
    outbox: Arc<Outbox>,
}

impl Controller {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    /// How old the newest probe that came back is, on the shard heard
    /// from least lately; `None` while a shard has never answered.
    fn heard(&self) -> Option<Duration> {
        let sent = self.echoes.oldest(&self.probes)?;
        Some(Duration::from_millis(self.now_ms().saturating_sub(sent)))
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut tick = tokio::time::interval(PROBE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When the subscriber was (re)made: it gets time to connect before
        // silence counts as deafness.
        let mut made_at = Instant::now();
        let mut batch = Vec::with_capacity(CHANNELS_PER_COMMAND);
        loop {
            tokio::select! {
                taken = commands.recv_many(&mut batch, CHANNELS_PER_COMMAND) => {
                    if taken == 0 {
                        return;
                    }
                    self.apply(std::mem::take(&mut batch)).await;
                }
                () = self.dropped.notified() => {
                    // Back once the probes of every shard come back again.
                    self.reconcile().await;
                }
                _ = tick.tick() => {
                    if self.subscriber.is_none() {
                        made_at = Instant::now();
                        self.connect().await;
                    }
                    let reachable = self.probe().await;
                    let heard = self.heard();
                    if heard.is_some_and(|age| age < PROBE_LOST) {
                        if !self.events.is_up() && self.reconcile().await {
                            self.outbox.replay_then_up(&self.events);
                        }
                    } else {
                        self.events.down("probes stopped coming back");
                        // Redis answers but this node hears nothing: its
                        // subscriber is deaf.
                        if reachable && made_at.elapsed() > DEAF_AFTER {
                            tracing::warn!("bus subscriber deaf: replacing it");
                            self.subscriber = None;
                        }
                    }
                }
            }
        }
    }

    /// A new subscriber connection, subscribed to the probe and every
    /// wanted topic.
    async fn connect(&mut self) {
        match Connection::open(&self.url, Some(self.push_tx.clone())) {
            Ok(subscriber) => {
                self.subscriber = Some(subscriber);
                self.stale.clear();
                self.reconcile().await;
            }
            Err(err) => tracing::warn!(error = %err, "bus subscriber could not be made"),
        }
    }

    /// Everything asked since the last round, in one `SUBSCRIBE` and one
    /// `UNSUBSCRIBE`: a storm of joins costs a command per round, not per
    /// socket. A release is checked against what is wanted now, so a topic
    /// wanted again meanwhile stays.
    async fn apply(&mut self, commands: Vec<Command>) {
        let mut subscribe = Vec::new();
        let mut release = Vec::new();
        for command in commands {
            match command {
                Command::Subscribe(topic) => subscribe.push(topic),
                Command::Release(topic) => release.push(topic),
            }
        }
        // What fails here the reconcile that follows reconnection makes.
        self.subscribe(subscribe.iter().map(channel).collect())
            .await;
        self.release(release).await;
    }

    /// Subscribes the probe, the users' channel and every wanted topic
    /// (again: subscribing is idempotent) and lets go of topics an earlier
    /// unsubscribe missed. False, and stopped at once, when Redis stops
    /// answering: the next recovery does it all again.
    async fn reconcile(&mut self) -> bool {
        let mut channels: Vec<String> = self
            .events
            .topics()
            .iter()
            .filter(|t| !t.is_user())
            .map(channel)
            .collect();
        channels.extend(self.probes.iter().cloned());
        channels.push(USERS.to_owned());
        if !self.subscribe(channels).await {
            return false;
        }
        let stale: Vec<Topic> = self.stale.drain().collect();
        self.release(stale).await;
        true
    }

    /// False when a subscription could not be made.
    async fn subscribe(&mut self, channels: Vec<String>) -> bool {
        let Some(subscriber) = self.subscriber.as_mut() else {
            return false;
        };
        for chunk in channels.chunks(CHANNELS_PER_COMMAND) {
            let done = tokio::time::timeout(COMMAND_TIMEOUT, subscriber.subscribe(chunk)).await;
            if !matches!(done, Ok(Ok(()))) {
                return false;
            }
        }
        true
    }

    /// Unsubscribes the topics that are still unwanted; those it could not
    /// are let go of again once reconnected.
    async fn release(&mut self, topics: Vec<Topic>) {
        let unwanted: Vec<Topic> = topics
            .into_iter()
            .filter(|t| !self.events.wanted(t))
            .collect();
        if unwanted.is_empty() {
            return;
        }
        let Some(subscriber) = self.subscriber.as_mut() else {
            return;
        };
        for chunk in unwanted.chunks(CHANNELS_PER_COMMAND) {
            let channels: Vec<String> = chunk.iter().map(channel).collect();
            let done =
                tokio::time::timeout(COMMAND_TIMEOUT, subscriber.unsubscribe(&channels)).await;
            if !matches!(done, Ok(Ok(()))) {
                self.stale.extend(chunk.iter().cloned());
            }
        }
    }

    /// PINGs the subscriber (so a dead link is noticed and redialled) and
    /// publishes this node's probes, stamped with the time they were sent.
    /// Whether Redis took them all.
    async fn probe(&mut self) -> bool {
        if self.publisher.is_cluster() && !self.follow_shards().await {
            self.events.down("Redis Cluster does not answer");
            return false;
        }
        if let Some(subscriber) = self.subscriber.as_mut() {
            let ping = redis::cmd("PING");
            // Its answer is not needed: a failure is what makes the
            // connection manager redial, and the probe below decides
            // whether the link is up.
            let _ =
                tokio::time::timeout(COMMAND_TIMEOUT, ping.query_async::<Value>(subscriber)).await;
        }
        let stamp = self.now_ms();
        let mut probes = Batch::default();
        for probe in &self.probes {
            probes.add(self.publisher.publish(probe, stamp));
        }
        let sent = matches!(
            tokio::time::timeout(COMMAND_TIMEOUT, probes.send(&mut self.publisher)).await,
            Ok(Ok(()))
        );
        if !sent {
            self.events.down("Redis does not answer");
        }
        sent
    }

    /// On a cluster: one probe channel per shard, as the shards are now.
    /// When they changed (a shard added, slots moved), the new channels are
    /// subscribed and the old let go. False when the cluster does not say.
    async fn follow_shards(&mut self) -> bool {
        let mut ask = redis::cmd("CLUSTER");
        ask.arg("SLOTS");
        let asked = tokio::time::timeout(
            COMMAND_TIMEOUT,
            ask.query_async::<Value>(&mut self.publisher),
        );
        let Ok(Ok(slots)) = asked.await else {
            return false;
        };
        let probes = shard_probes(&channel(&self.probe), &shards(&slots));
        if probes.is_empty() || probes == self.probes {
            return !probes.is_empty();
        }
        let old = std::mem::replace(&mut self.probes, probes);
        let gone: Vec<String> = old
            .into_iter()
            .filter(|c| !self.probes.contains(c))
            .collect();
        self.echoes.forget(&gone);
        if let Some(subscriber) = self.subscriber.as_mut() {
            let new = self.probes.clone();
            // What fails here the next reconcile makes.
            let _ = tokio::time::timeout(COMMAND_TIMEOUT, subscriber.subscribe(&new)).await;
            let _ = tokio::time::timeout(COMMAND_TIMEOUT, subscriber.unsubscribe(&gone)).await;
        }
        true
    }
}

/// The slot ranges of each master, by its id, from `CLUSTER SLOTS`
/// (`[[start, end, [host, port, id, ...], replicas...], ...]`).
fn shards(slots: &Value) -> BTreeMap<String, Vec<(u16, u16)>> {
    let mut shards: BTreeMap<String, Vec<(u16, u16)>> = BTreeMap::new();
    let Value::Array(ranges) = slots else {
        return shards;
    };
    for range in ranges {
        let Value::Array(parts) = range else { continue };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (parts.first(), parts.get(1), parts.get(2))
        else {
            continue;
        };
        let id = match master.get(2) {
            Some(Value::BulkString(id)) => String::from_utf8_lossy(id).into_owned(),
            Some(Value::SimpleString(id)) => id.clone(),
            _ => continue,
        };
        if let (Ok(start), Ok(end)) = (u16::try_from(*start), u16::try_from(*end)) {
            shards.entry(id).or_default().push((start, end));
        }
    }
    shards
}

/// A probe channel for each shard, in name order: `<base>:<n>` with the
/// first `n` whose slot the shard owns. A shard's channel stays the same
/// when its master changes.
fn shard_probes(base: &str, shards: &BTreeMap<String, Vec<(u16, u16)>>) -> Vec<String> {
    let mut probes: Vec<String> = shards
        .values()
        .filter_map(|ranges| {
            (0..100_000).find_map(|n| {
                let name = format!("{base}:{n}");
                let at = slot(name.as_bytes());
                ranges
                    .iter()
                    .any(|(start, end)| (*start..=*end).contains(&at))
                    .then_some(name)
            })
        })
        .collect();
    probes.sort();
    probes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_news_rides_the_shared_channel_and_comes_back_as_its_topic() {
        let bob = Topic::user(7);
        let (channel, framed) = wire(&bob, b"changed");
        assert_eq!(channel, "hub:users");
        let (topic, payload) = unwire(channel.as_bytes(), framed.into_owned()).unwrap();
        assert_eq!((topic, &payload[..]), (bob, &b"changed"[..]));

        let room = Topic::room("lobby");
        let (channel, framed) = wire(&room, b"{}");
        assert_eq!(channel, "hub:room:lobby");
        assert!(matches!(framed, Cow::Borrowed(b"{}")), "sent as it is");
        let (topic, _) = unwire(channel.as_bytes(), framed.into_owned()).unwrap();
        assert_eq!(topic, room);

        // Only a user's topic is taken from the users' channel.
        assert!(unwire(b"hub:users", b"room:lobby\n{}".to_vec()).is_none());
        assert!(unwire(b"hub:users", b"no newline".to_vec()).is_none());
    }

    #[test]
    fn only_a_probe_channel_still_in_use_counts_as_this_nodes() {
        let echoes = Echoes::default();
        let (a, b) = ("hub:probe:n1:0".to_owned(), "hub:probe:n1:1".to_owned());
        assert!(!echoes.knows(a.as_bytes()));
        echoes.heard(&a, 5);
        echoes.heard(&b, 7);
        echoes.heard(&a, 3);
        assert!(echoes.knows(a.as_bytes()));
        assert_eq!(echoes.oldest(&[a.clone(), b.clone()]), Some(5));
        // Let go of (the shards changed): Redis unsubscribing it is no loss.
        echoes.forget(std::slice::from_ref(&a));
        assert!(!echoes.knows(a.as_bytes()));
        assert_eq!(echoes.oldest(&[a, b]), None, "a channel never heard");
    }

    #[test]
    fn each_shard_gets_a_probe_channel_that_it_owns() {
        let node = |id: &str| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(7000),
                Value::BulkString(id.as_bytes().to_vec()),
            ])
        };
        let range =
            |start, end, id| Value::Array(vec![Value::Int(start), Value::Int(end), node(id)]);
        let slots = Value::Array(vec![
            range(0, 5460, "a"),
            range(5461, 10922, "b"),
            range(10923, 16000, "c"),
            // A shard may own several ranges; this one owns a single slot too.
            range(16001, 16383, "a"),
        ]);
        let shards = shards(&slots);
        assert_eq!(shards["a"], [(0, 5460), (16001, 16383)]);
        let probes = shard_probes("hub:probe:n1", &shards);
        assert_eq!(probes.len(), 3);
        for ranges in shards.values() {
            let owned: Vec<&String> = probes
                .iter()
                .filter(|p| {
                    let at = slot(p.as_bytes());
                    ranges.iter().any(|(s, e)| (*s..=*e).contains(&at))
                })
                .collect();
            assert_eq!(owned.len(), 1, "{ranges:?}: {probes:?}");
        }
        assert!(probes.is_sorted());
        // Another master for the same slots: the same channels.
        let mut failed_over = shards.clone();
        let moved = failed_over.remove("a").unwrap();
        failed_over.insert("z".into(), moved);
        assert_eq!(shard_probes("hub:probe:n1", &failed_over), probes);
        assert!(shard_probes("p", &super::shards(&Value::Nil)).is_empty());
    }
}
