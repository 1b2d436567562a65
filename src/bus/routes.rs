//! Topics and this node's routes: who here wants what is published on a
//! topic, who watches the link, and whether the link is up. The brokers
//! deliver into these routes; the bus adds and removes subscribers.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use actix::prelude::*;
use bytes::Bytes;

use crate::metrics::Metrics;

/// A topic's name, the same on every node: `room:<name>`, `user:<id>` (a
/// user changed: sockets load it again), `analytics:user:<id>`,
/// `analytics:global`, `dns:user:<id>`, `dns:staff`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic(pub(super) Arc<str>);

impl Topic {
    pub fn room(name: &str) -> Self {
        Self(format!("room:{name}").into())
    }

    pub fn user(id: i32) -> Self {
        Self(format!("user:{id}").into())
    }

    pub fn analytics_global() -> Self {
        Self("analytics:global".into())
    }

    pub fn analytics_user(id: i32) -> Self {
        Self(format!("analytics:user:{id}").into())
    }

    pub fn dns_user(id: i32) -> Self {
        Self(format!("dns:user:{id}").into())
    }

    pub fn dns_staff() -> Self {
        Self("dns:staff".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a user's topic ([`Topic::user`]).
    pub fn is_user(&self) -> bool {
        self.0.starts_with("user:")
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Something published on a topic this subscriber wants.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Arrived {
    pub topic: Topic,
    pub payload: Bytes,
}

/// The link to the other nodes went down, or is back after an outage (then
/// what others published meanwhile may never arrive: fetch it from where it
/// is kept).
#[derive(Message, Clone, Copy, Debug, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum Link {
    Down,
    Up,
}

/// What carries messages between nodes.
pub trait Broker: Send + Sync + 'static {
    /// Sends `payload` to every node subscribed to `topic`, this one
    /// included (it comes back through [`Events::arrived`]). Never waits:
    /// while the link is down it delivers to this node alone.
    fn publish(&self, topic: &Topic, payload: Bytes);
    /// This node now has a local subscriber for `topic`.
    fn subscribe(&self, topic: &Topic);
    /// This node's last local subscriber of `topic` left; the broker may
    /// wait a little and ask [`Events::wanted`] again before letting go.
    fn unsubscribe(&self, topic: &Topic);
    /// Whether everything published so far has gone out (or, the link
    /// being down, is kept to go out later): a node that stops waits for
    /// this, so its last words reach the others.
    fn flushed(&self) -> bool;
}

/// A subscriber's place on a topic or among the link's watchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct SubscriptionId(u64);

/// How a broker reaches this node's subscribers: the routing table, and
/// the link's state.
#[derive(Clone)]
pub struct Events(Arc<Routes>);

/// Local subscribers by topic; a topic with thousands (a user's sockets)
/// still loses one in constant time.
type Table = HashMap<Topic, HashMap<SubscriptionId, Recipient<Arrived>>>;

struct Routes {
    table: RwLock<Table>,
    watchers: Mutex<Vec<(SubscriptionId, Recipient<Link>)>>,
    next_id: AtomicU64,
    up: AtomicBool,
    /// Rung each time the link comes back, for the presence keeper.
    came_up: tokio::sync::Notify,
    metrics: Arc<Metrics>,
}

impl Events {
    pub(super) fn new(metrics: Arc<Metrics>, up: bool) -> Self {
        Self(Arc::new(Routes {
            table: RwLock::new(HashMap::new()),
            watchers: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            up: AtomicBool::new(up),
            came_up: tokio::sync::Notify::new(),
            metrics,
        }))
    }

    fn table(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.0.table.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands a message to every local subscriber of its topic.
    pub fn arrived(&self, topic: &Topic, payload: Bytes) {
        let table = self.table();
        let Some(subscribers) = table.get(topic) else {
            return;
        };
        self.0.metrics.bus_received();
        for recipient in subscribers.values() {
            recipient.do_send(Arrived {
                topic: topic.clone(),
                payload: payload.clone(),
            });
        }
    }

    /// Whether any local subscriber still wants `topic`.
    pub fn wanted(&self, topic: &Topic) -> bool {
        self.table().contains_key(topic)
    }

    /// Every topic some local subscriber wants.
    pub fn topics(&self) -> Vec<Topic> {
        self.table().keys().cloned().collect()
    }

    pub fn is_up(&self) -> bool {
        self.0.up.load(Relaxed)
    }

    /// The link went down: from now on what this node publishes reaches
    /// its own subscribers alone. Logged once per change.
    pub fn down(&self, why: &str) {
        if self.0.up.swap(false, Relaxed) {
            self.0.metrics.bus_state(false);
            tracing::warn!(
                why,
                "bus down: delivering locally until the other nodes are reachable again"
            );
            self.tell_watchers(Link::Down);
        }
    }

    /// The link is up again, every wanted topic subscribed: watchers fetch
    /// what they missed.
    pub fn up(&self) {
        if self.0.up.swap(true, Relaxed) {
            return;
        }
        self.0.metrics.bus_state(true);
        tracing::info!("bus up: reaching the other nodes");
        self.tell_watchers(Link::Up);
        self.0.came_up.notify_one();
    }

    /// Resolves the next time the link comes back (at once if it came back
    /// since the last call). One waiter only: the presence keeper.
    pub async fn came_up(&self) {
        self.0.came_up.notified().await;
    }

    pub(super) fn metrics(&self) -> Arc<Metrics> {
        self.0.metrics.clone()
    }

    pub(super) fn next_id(&self) -> SubscriptionId {
        SubscriptionId(self.0.next_id.fetch_add(1, Relaxed))
    }

    /// Adds a subscriber of `topic`; true if it is this node's first.
    pub(super) fn add(
        &self,
        topic: &Topic,
        id: SubscriptionId,
        recipient: Recipient<Arrived>,
    ) -> bool {
        let mut table = self.0.table.write().unwrap_or_else(|p| p.into_inner());
        let subscribers = table.entry(topic.clone()).or_default();
        subscribers.insert(id, recipient);
        let first = subscribers.len() == 1;
        if first {
            self.0.metrics.bus_topic_subscribed();
        }
        first
    }

    /// Removes a subscriber of `topic`; true if it was this node's last.
    pub(super) fn remove(&self, topic: &Topic, id: SubscriptionId) -> bool {
        let mut table = self.0.table.write().unwrap_or_else(|p| p.into_inner());
        let Some(subscribers) = table.get_mut(topic) else {
            return false;
        };
        if subscribers.remove(&id).is_none() {
            return false;
        }
        let last = subscribers.is_empty();
        if last {
            table.remove(topic);
            self.0.metrics.bus_topic_unsubscribed();
        }
        last
    }

    pub(super) fn add_watcher(&self, id: SubscriptionId, watcher: Recipient<Link>) {
        self.watchers().push((id, watcher));
    }

    pub(super) fn remove_watcher(&self, id: SubscriptionId) {
        self.watchers().retain(|(each, _)| *each != id);
    }

    fn watchers(&self) -> std::sync::MutexGuard<'_, Vec<(SubscriptionId, Recipient<Link>)>> {
        self.0.watchers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tell_watchers(&self, link: Link) {
        for (_, watcher) in self.watchers().iter() {
            watcher.do_send(link);
        }
    }
}
