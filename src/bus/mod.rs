//! The bus: how what one node produces reaches the sessions of every node.
//!
//! Everything that fans out across nodes (chat messages and presence,
//! analytics changes, DNS changes, user re-checks) takes one path: its
//! producer publishes it on a topic, the [`Broker`] carries it to every node
//! subscribed to that topic (this one included), and each node hands it to
//! its local subscribers, which deliver it through their [`Fanout`]. A lone
//! node's broker ([`local::LocalBroker`]) hands it back at once; with
//! `REDIS_URL`, [`redis::RedisBroker`] carries it over Redis pub/sub, on one
//! Redis or a Redis Cluster (`connection.rs` says how the two differ).
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
mod connection;
pub mod local;
pub mod presence;
pub mod redis;
mod routes;

use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;

use presence::SharedPresence;
use routes::SubscriptionId;
pub use routes::{Arrived, Broker, Events, Link, Topic};

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

    /// `recipient` receives what is published on `topic` until the
    /// subscription is dropped.
    pub fn subscribe(&self, topic: &Topic, recipient: Recipient<Arrived>) -> Subscription {
        let id = self.events.next_id();
        if self.events.add(topic, id, recipient) {
            self.broker.subscribe(topic);
        }
        Subscription {
            bus: self.clone(),
            topic: topic.clone(),
            id,
        }
    }

    fn unsubscribe(&self, topic: &Topic, id: SubscriptionId) {
        if self.events.remove(topic, id) {
            self.broker.unsubscribe(topic);
        }
    }

    /// `watcher` is told each time the link goes down or comes back, until
    /// the watch is dropped.
    pub fn watch(&self, watcher: Recipient<Link>) -> Watch {
        let id = self.events.next_id();
        self.events.add_watcher(id, watcher);
        Watch {
            bus: self.clone(),
            id,
        }
    }

    fn unwatch(&self, id: SubscriptionId) {
        self.events.remove_watcher(id);
    }

    /// A stopping node's goodbye, once its rooms have closed: what it
    /// published goes out (waiting at most `within`), then its presence
    /// entries and its beat leave Redis, so the others need not wait a TTL
    /// to let go of its members. What fails is left to their reaping.
    pub async fn leave(&self, within: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while !self.broker.flushed() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if let Err(err) = self.presence.leave(&self.node).await {
            err.report(
                &self.events.metrics(),
                "*",
                "leaving the cluster's presence",
            );
        }
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
    use crate::metrics::Metrics;

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
        assert!(
            metrics
                .render(Default::default())
                .contains("hub_bus_topics 1")
        );
        assert!(bus.is_up());
    }

    #[actix_web::test]
    async fn watchers_hear_the_link_go_down_and_come_back_once_each() {
        let metrics = Arc::new(Metrics::default());
        let events = Events::new(metrics.clone(), true);
        let seen = Arc::default();
        let keeper = Keeper(Arc::clone(&seen)).start();
        events.add_watcher(events.next_id(), keeper.clone().recipient());

        events.down("test");
        events.down("again");
        events.up();
        events.up();
        keeper.send(Flush).await.unwrap();

        assert_eq!(*seen.lock().unwrap(), ["Down", "Up"]);
        assert!(
            metrics
                .render(Default::default())
                .contains("hub_bus_state_changes_total 2")
        );
    }
}
