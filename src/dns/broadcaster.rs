//! The DNS fan-out: every open DNS panel, with whose it is, so a change to
//! a zone reaches exactly the panels that may see that zone (its owner's
//! and staff's), the one that made it included, on every node.
//!
//! A change goes out on the bus twice: on its owner's topic, for the
//! owner's panels, and on the staff topic, for staff panels (who see every
//! zone); each panel hears it once, on the one topic that is its. Changes
//! to one zone are passed on in serial order ([`super::order`]), or the
//! panels are told to list the zone again. The broadcaster keeps every
//! zone's serial as of the last change it passed on; when the bus comes
//! back after an outage it reads the zones again and sends each panel a
//! `dns.resync` naming the zones it sees whose serial moved meanwhile.
//!
//! Where it runs: on the analytics arbiter (see `startup`); it moves frames
//! its sessions serialised, and reads the database only to compare serials
//! across an outage.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytestring::ByteString;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::notify::Notifier;
use super::order::{self, Place, Sequencer, Step};
use super::zone::{self, ZoneView};
use crate::bus::{Arrived, Bus, Link, Subscription, Topic, Watch};
use crate::db::Db;
use crate::metrics::Metrics;
use crate::ws::fanout::Fanout;
use crate::ws::outlet::Outlet;
use crate::ws::session::SessionId;

/// Whose a panel is, as far as seeing zones goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Panel {
    pub user_id: i32,
    pub is_staff: bool,
}

impl Panel {
    fn sees(self, owner_id: i32) -> bool {
        self.is_staff || self.user_id == owner_id
    }
}

/// A panel opens.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Open {
    pub session: SessionId,
    pub outlet: Outlet,
    pub panel: Panel,
}

/// A panel closes; sent once, from the session's `stopped`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close {
    pub session: SessionId,
}

/// A panel's user gained or lost staff: it sees other zones from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reflag {
    pub session: SessionId,
    pub is_staff: bool,
}

/// A frame about zone `zone` owned by `owner_id`, for every panel that
/// sees it, and where the change stands in the zone's history.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub owner_id: i32,
    pub zone: String,
    pub place: Place,
    pub frame: String,
}

/// What crosses the bus for one change.
#[derive(Serialize, Deserialize)]
struct Carried {
    zone: String,
    #[serde(flatten)]
    place: Place,
    frame: String,
}

/// A zone's history as heard on one topic.
type StreamKey = (Topic, String);

/// Which topic a panel hears changes on: its owner's, or staff's.
fn topic_of(panel: Panel) -> Topic {
    if panel.is_staff {
        Topic::dns_staff()
    } else {
        Topic::dns_user(panel.user_id)
    }
}

pub struct DnsBroadcaster {
    panels: Fanout<Panel>,
    db: Db,
    bus: Bus,
    metrics: Arc<Metrics>,
    /// Each topic this node's panels hear on, with how many panels do.
    topics: HashMap<Topic, (Subscription, usize)>,
    /// The link's news, for as long as the broadcaster runs.
    watch: Option<Watch>,
    /// Every zone's serial as of the last change passed on; `None` until
    /// first read.
    serials: Option<HashMap<String, i64>>,
    /// Each topic's changes per zone, in serial order.
    order: Sequencer<StreamKey, ByteString>,
    /// Tells the secondaries of this node's changes (`HUB_DNS_NOTIFY`).
    notifier: Option<Notifier>,
}

impl DnsBroadcaster {
    pub fn new(db: Db, bus: Bus, metrics: Arc<Metrics>, notifier: Option<Notifier>) -> Self {
        Self {
            panels: Fanout::new(metrics.clone()),
            notifier,
            db,
            bus,
            metrics,
            topics: HashMap::new(),
            watch: None,
            serials: None,
            order: Sequencer::default(),
        }
    }

    fn hear(&mut self, panel: Panel, ctx: &mut Context<Self>) {
        let topic = topic_of(panel);
        if let Some((_, panels)) = self.topics.get_mut(&topic) {
            *panels += 1;
            return;
        }
        let subscription = self.bus.subscribe(&topic, ctx.address().recipient());
        self.topics.insert(topic, (subscription, 1));
    }

    fn unhear(&mut self, panel: Panel) {
        let topic = topic_of(panel);
        let Some((_, panels)) = self.topics.get_mut(&topic) else {
            return;
        };
        *panels -= 1;
        if *panels == 0 {
            // Dropping the subscription lets go of the topic.
            self.topics.remove(&topic);
            self.order.forget(|(heard_on, _)| *heard_on == topic);
        }
    }

    fn remove(&mut self, session: SessionId) {
        if let Some(panel) = self.panels.remove(session) {
            self.unhear(panel);
        }
    }

    /// Reads every zone's serial; with `resync`, first tells each panel
    /// which of the zones it sees moved since the last read.
    fn read_serials(&mut self, resync: bool, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        let load = async move { db.run(zone::all_zones).await };
        ctx.spawn(load.into_actor(self).map(move |loaded, act, _| {
            let zones = match loaded {
                Ok(zones) => zones,
                Err(err) => {
                    tracing::error!(error = %err, "reading zone serials failed");
                    return;
                }
            };
            if resync && let Some(before) = &act.serials {
                let moved: Vec<&ZoneView> = zones
                    .iter()
                    .filter(|z| before.get(&z.name) != Some(&z.serial))
                    .collect();
                act.resync(&moved);
            }
            act.serials = Some(zones.into_iter().map(|z| (z.name, z.serial)).collect());
        }));
    }

    fn resync(&mut self, moved: &[&ZoneView]) {
        if self.panels.is_empty() {
            return;
        }
        for session in self.panels.sessions() {
            let Some(panel) = self.panels.get(session).copied() else {
                continue;
            };
            let seen: Vec<&&ZoneView> = moved.iter().filter(|z| panel.sees(z.owner_id)).collect();
            if seen.is_empty() {
                continue;
            }
            let frame: ByteString = json!({"type": "dns.resync", "zones": seen})
                .to_string()
                .into();
            if let Some(gone) = self.panels.send_to(session, &frame) {
                self.unhear(gone.data);
            }
        }
        self.metrics.bus_gap_filled();
    }
}

impl Actor for DnsBroadcaster {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.watch = Some(self.bus.watch(ctx.address().recipient()));
        self.read_serials(false, ctx);
    }
}

impl Handler<Open> for DnsBroadcaster {
    type Result = ();

    fn handle(&mut self, open: Open, ctx: &mut Self::Context) {
        self.hear(open.panel, ctx);
        self.panels.insert(open.session, open.outlet, open.panel);
    }
}

impl Handler<Close> for DnsBroadcaster {
    type Result = ();

    fn handle(&mut self, close: Close, _: &mut Self::Context) {
        self.remove(close.session);
    }
}

impl Handler<Reflag> for DnsBroadcaster {
    type Result = ();

    fn handle(&mut self, reflag: Reflag, ctx: &mut Self::Context) {
        let Some(panel) = self.panels.get(reflag.session).copied() else {
            return;
        };
        let now = Panel {
            is_staff: reflag.is_staff,
            ..panel
        };
        self.unhear(panel);
        self.hear(now, ctx);
        if let Some(panel) = self.panels.get_mut(reflag.session) {
            *panel = now;
        }
    }
}

impl Handler<Publish> for DnsBroadcaster {
    type Result = ();

    /// A change made on this node goes out on the bus, to the panels of
    /// every node that see its zone, and, when it moved the zone's serial,
    /// to the secondaries: from this node only, so a cluster tells them
    /// once.
    fn handle(&mut self, publish: Publish, _: &mut Self::Context) {
        if let Some(notifier) = &self.notifier {
            let Place { previous, serial } = publish.place;
            if let Some(serial) = serial {
                notifier.changed(&publish.zone, serial);
            }
            // A zone made (no history before) or deleted (none after).
            if previous.is_none() || serial.is_none() {
                notifier.zones_changed();
            }
        }
        let carried = Carried {
            zone: publish.zone,
            place: publish.place,
            frame: publish.frame,
        };
        let payload = serde_json::to_vec(&carried).expect("plain data serialises");
        self.bus
            .publish(&Topic::dns_user(publish.owner_id), payload.clone());
        self.bus.publish(&Topic::dns_staff(), payload);
    }
}

impl DnsBroadcaster {
    fn follow(&mut self, key: StreamKey, steps: Vec<Step<ByteString>>, ctx: &mut Context<Self>) {
        let mut resync = false;
        for step in steps {
            match step {
                Step::Deliver(frame) => {
                    // Panels that could not keep up were closed by the
                    // fan-out; they have nothing more to be told.
                    let gone = self
                        .panels
                        .deliver(&frame, |_, panel| topic_of(*panel) == key.0);
                    for member in gone {
                        self.unhear(member.data);
                    }
                }
                Step::Resync => resync = true,
            }
        }
        if resync {
            self.resync_zone(key.1, ctx);
        }
    }

    /// Looks again at a zone whose next push is held once the hold is over.
    fn check_back(&mut self, key: StreamKey, ctx: &mut Context<Self>) {
        ctx.run_later(order::HOLD, move |act, ctx| {
            match act.order.expire(&key, Instant::now()) {
                Some(steps) => {
                    tracing::warn!(zone = %key.1, "a DNS change never reached this node in order; panels list the zone again");
                    act.follow(key, steps, ctx);
                }
                None if act.order.waiting(&key) => act.check_back(key, ctx),
                None => {}
            }
        });
    }

    /// Tells the panels that see `name` to list it again, as it is now.
    fn resync_zone(&mut self, name: String, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        let load = async move {
            db.run(move |conn| crate::db::dns::zone_by_name(conn, &name))
                .await
        };
        ctx.spawn(load.into_actor(self).map(|loaded, act, _| match loaded {
            Ok(Some(row)) => act.resync(&[&ZoneView::new(row)]),
            // Deleted meanwhile: its deletion is pushed on its own.
            Ok(None) => {}
            Err(err) => tracing::error!(error = %err, "reading a zone to resync its panels failed"),
        }));
    }
}

impl Handler<Arrived> for DnsBroadcaster {
    type Result = ();

    fn handle(&mut self, arrived: Arrived, ctx: &mut Self::Context) {
        let Ok(carried) = serde_json::from_slice::<Carried>(&arrived.payload) else {
            tracing::warn!(topic = %arrived.topic, "an unreadable DNS change on the bus was ignored");
            return;
        };
        let key = (arrived.topic, carried.zone.clone());
        let steps = self
            .order
            .arrive(&key, carried.place, carried.frame.into(), Instant::now());
        if steps.started_waiting {
            self.check_back(key.clone(), ctx);
        }
        if let Some(serials) = &mut self.serials {
            match carried.place.serial {
                Some(serial) => {
                    let known = serials.entry(carried.zone).or_insert(serial);
                    *known = (*known).max(serial);
                }
                None => {
                    serials.remove(&carried.zone);
                }
            }
        }
        self.follow(key, steps.steps, ctx);
    }
}

impl Handler<Link> for DnsBroadcaster {
    type Result = ();

    fn handle(&mut self, link: Link, ctx: &mut Self::Context) {
        if link == Link::Down {
            return;
        }
        self.read_serials(true, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panel_sees_its_users_zones_and_staff_see_all() {
        let alice = Panel {
            user_id: 1,
            is_staff: false,
        };
        let staff = Panel {
            user_id: 2,
            is_staff: true,
        };
        assert!(alice.sees(1));
        assert!(!alice.sees(3));
        assert!(staff.sees(3));
    }
}
