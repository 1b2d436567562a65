//! Which broker a node's bus uses: alone without `REDIS_URL`, Redis with
//! it (and its presence keeper). Kept apart from the bus itself, so the bus
//! does not know its brokers and they depend on it alone.

use std::sync::Arc;

use super::presence::{Departure, Keeper, SharedPresence};
use super::{Broker, Bus, Events, local, node_name, redis};
use crate::config::Cluster;
use crate::metrics::Metrics;

impl Bus {
    /// The bus of a node that serves alone: always up, nothing leaves the
    /// process.
    pub fn local(metrics: Arc<Metrics>) -> Self {
        let events = Events::new(metrics, true);
        let broker = Arc::new(local::LocalBroker::new(events.clone()));
        Self {
            events,
            broker,
            node: node_name(),
            presence: SharedPresence::Alone,
        }
    }

    /// The bus `cluster` asks for: alone without `REDIS_URL`; with it, a
    /// Redis broker whose tasks run on `runtime`, down until it has shown
    /// that it reaches the other nodes. `departure` is what a room's topic
    /// carries when the members of a dead node are let go.
    pub fn start(
        cluster: &Cluster,
        metrics: Arc<Metrics>,
        runtime: actix::ArbiterHandle,
        departure: Departure,
    ) -> anyhow::Result<Self> {
        let Some(url) = &cluster.redis_url else {
            return Ok(Self::local(metrics));
        };
        let events = Events::new(metrics.clone(), false);
        let node = node_name();
        let (broker, connection) =
            redis::RedisBroker::start(url, &node, events.clone(), metrics, runtime.clone())?;
        tracing::info!(node = %node, redis = ?url, "joining the cluster over Redis");
        let broker: Arc<dyn Broker> = broker;
        let keeper = Keeper {
            node: node.to_string(),
            ttl: cluster.presence_ttl,
            events: events.clone(),
            broker: broker.clone(),
            departure,
        };
        let presence = SharedPresence::start(connection, keeper, &runtime);
        Ok(Self {
            events,
            broker,
            node,
            presence,
        })
    }
}
