//! The bus: how what one node produces reaches the sessions of every node.
//!
//! Everything that fans out across nodes (chat messages and presence,
//! analytics changes, DNS changes, user re-checks) takes one path: its
//! producer publishes it on a topic, the [`Broker`] carries it to every node
//! subscribed to that topic (this one included), and each node hands it to
//! its local subscribers, which deliver it through their [`Fanout`]. A lone
//! node's broker ([`local::LocalBroker`]) hands it back at once; with
//! `REDIS_URL`, [`redis::RedisBroker`] carries it over Redis pub/sub.
//!
//! The broker interface is narrow on purpose (publish; subscribe and
//! unsubscribe a topic; report what arrives and whether the link is up), so
//! another transport fits without touching the rooms.
//!
//! Which broker a node uses is chosen in `choice.rs`, so this module and
//! the brokers' depend one way: they on it.
//!
//! A node subscribes a topic while at least one local subscriber wants it.
//! Watchers are told when the link to the other nodes goes down and when it
//! comes back ([`Link`]): what this node published meanwhile reached its
//! own subscribers only, and is published again once the link is back;
//! what other nodes published meanwhile may never arrive, so watchers fetch
//! it from the database. The bus delays messages; the database loses none.
//!
//! [`Fanout`]: crate::ws::fanout::Fanout

mod choice;
pub mod local;
pub mod presence;
pub mod redis;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use actix::prelude::*;
use bytes::Bytes;

use crate::metrics::Metrics;
use presence::SharedPresence;

/// A topic's name, the same on every node: `room:<name>`, `user:<id>` (a
/// user changed: sockets load it again), `analytics:user:<id>`,
/// `analytics:global`, `dns:user:<id>`, `dns:staff`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic(Arc<str>);

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
}

/// A subscriber's place on a topic or among the link's watchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SubscriptionId(u64);

/// A place on a topic: its subscriber receives what is published there
/// until this is dropped, which lets go of it (and of the topic, on this
/// node, with its last subscriber). Nobody unsubscribes by hand.
#[must_use = "dropping a subscription unsubscribes at once"]
pub struct Subscription {
    bus: Bus,
    topic: Topic,
    id: SubscriptionId,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.bus.unsubscribe(&self.topic, self.id);
    }
}

/// A place among the link's watchers, let go of when dropped.
#[must_use = "dropping a watch stops it at once"]
pub struct Watch {
    bus: Bus,
    id: SubscriptionId,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.bus.unwatch(self.id);
    }
}

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
    fn new(metrics: Arc<Metrics>, up: bool) -> Self {
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

    fn tell_watchers(&self, link: Link) {
        let watchers = self.0.watchers.lock().unwrap_or_else(|p| p.into_inner());
        for (_, watcher) in watchers.iter() {
            watcher.do_send(link);
        }
    }
}

/// This node's end of the bus, shared by every actor that publishes or
/// subscribes.
#[derive(Clone)]
pub struct Bus {
    events: Events,
    broker: Arc<dyn Broker>,
    node: Arc<str>,
    presence: SharedPresence,
}

/// A name for this process among the nodes, new at each start, so entries a
/// dead process left behind are never taken for a live one's.
fn node_name() -> Arc<str> {
    format!("{:016x}", rand::random::<u64>()).into()
}

impl Bus {
    /// This node's name among the nodes.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The presence entries this node shares with the others.
    pub fn presence(&self) -> &SharedPresence {
        &self.presence
    }

    pub fn publish(&self, topic: &Topic, payload: impl Into<Bytes>) {
        self.broker.publish(topic, payload.into());
    }

    fn next_id(&self) -> SubscriptionId {
        SubscriptionId(self.events.0.next_id.fetch_add(1, Relaxed))
    }

    /// `recipient` receives what is published on `topic` until the
    /// subscription is dropped.
    pub fn subscribe(&self, topic: &Topic, recipient: Recipient<Arrived>) -> Subscription {
        let id = self.next_id();
        let first = {
            let mut table = self
                .events
                .0
                .table
                .write()
                .unwrap_or_else(|p| p.into_inner());
            let subscribers = table.entry(topic.clone()).or_default();
            subscribers.insert(id, recipient);
            subscribers.len() == 1
        };
        if first {
            self.events.0.metrics.bus_topic_subscribed();
            self.broker.subscribe(topic);
        }
        Subscription {
            bus: self.clone(),
            topic: topic.clone(),
            id,
        }
    }

    fn unsubscribe(&self, topic: &Topic, id: SubscriptionId) {
        let last = {
            let mut table = self
                .events
                .0
                .table
                .write()
                .unwrap_or_else(|p| p.into_inner());
            let Some(subscribers) = table.get_mut(topic) else {
                return;
            };
            if subscribers.remove(&id).is_none() {
                return;
            }
            let last = subscribers.is_empty();
            if last {
                table.remove(topic);
            }
            last
        };
        if last {
            self.events.0.metrics.bus_topic_unsubscribed();
            self.broker.unsubscribe(topic);
        }
    }

    /// `watcher` is told each time the link goes down or comes back, until
    /// the watch is dropped.
    pub fn watch(&self, watcher: Recipient<Link>) -> Watch {
        let id = self.next_id();
        let mut watchers = self
            .events
            .0
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        watchers.push((id, watcher));
        Watch {
            bus: self.clone(),
            id,
        }
    }

    fn unwatch(&self, id: SubscriptionId) {
        let mut watchers = self
            .events
            .0
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        watchers.retain(|(each, _)| *each != id);
    }

    /// Whether this node reaches the other nodes (always, alone).
    pub fn is_up(&self) -> bool {
        self.events.is_up()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// An actor that keeps what reaches it.
    struct Keeper(Arc<Mutex<Vec<String>>>);

    impl Actor for Keeper {
        type Context = Context<Self>;
    }

    impl Handler<Arrived> for Keeper {
        type Result = ();

        fn handle(&mut self, arrived: Arrived, _: &mut Self::Context) {
            let text = String::from_utf8_lossy(&arrived.payload).into_owned();
            self.0
                .lock()
                .unwrap()
                .push(format!("{}={text}", arrived.topic));
        }
    }

    impl Handler<Link> for Keeper {
        type Result = ();

        fn handle(&mut self, link: Link, _: &mut Self::Context) {
            self.0.lock().unwrap().push(format!("{link:?}"));
        }
    }

    /// Answered after everything queued before it: a mailbox is in order.
    #[derive(Message)]
    #[rtype(result = "()")]
    struct Flush;

    impl Handler<Flush> for Keeper {
        type Result = ();

        fn handle(&mut self, _: Flush, _: &mut Self::Context) {}
    }

    #[actix_web::test]
    async fn a_lone_node_hands_what_it_publishes_to_the_topics_subscribers_only() {
        let metrics = Arc::new(Metrics::default());
        let bus = Bus::local(metrics.clone());
        let (a, b) = (Arc::default(), Arc::default());
        let first = Keeper(Arc::clone(&a)).start();
        let second = Keeper(Arc::clone(&b)).start();
        let room = Topic::room("lobby");
        let first_in_room = bus.subscribe(&room, first.clone().recipient());
        let _second_on_user = bus.subscribe(&Topic::user(7), second.clone().recipient());

        bus.publish(&room, "hello");
        bus.publish(&Topic::dns_staff(), "nobody listens");
        drop(first_in_room);
        bus.publish(&room, "after leaving");
        first.send(Flush).await.unwrap();
        second.send(Flush).await.unwrap();

        assert_eq!(*a.lock().unwrap(), ["room:lobby=hello"]);
        assert!(b.lock().unwrap().is_empty());
        assert!(metrics.render().contains("hub_bus_topics 1"));
        assert!(bus.is_up());
    }

    #[actix_web::test]
    async fn watchers_hear_the_link_go_down_and_come_back_once_each() {
        let metrics = Arc::new(Metrics::default());
        let events = Events::new(metrics.clone(), true);
        let seen = Arc::default();
        let keeper = Keeper(Arc::clone(&seen)).start();
        events
            .0
            .watchers
            .lock()
            .unwrap()
            .push((SubscriptionId(1), keeper.clone().recipient()));

        events.down("test");
        events.down("again");
        events.up();
        events.up();
        keeper.send(Flush).await.unwrap();

        assert_eq!(*seen.lock().unwrap(), ["Down", "Up"]);
        assert!(metrics.render().contains("hub_bus_state_changes_total 2"));
    }
}
