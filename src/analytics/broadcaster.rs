//! The analytics fan-out. Ingest tells it which metrics changed; it keeps the
//! latest value of each until the next tick, then sends every dashboard of
//! that user one `analytics.update` with only what changed. Staff subscribed
//! to the global scope get totals over all users the same way.
//!
//! Changes can reach it in another order than they committed (two ingests
//! racing); each carries its metric's version, and an older one than the
//! dashboard already has is dropped, so a dashboard always ends on the
//! stored value.
//!
//! A dashboard's snapshot of its own metrics also carries their last hour
//! ([`series`](super::series)); totals carry how many users have each
//! metric, so staff can show an average where a sum means nothing.
//!
//! Ingest on any node publishes what it stored on the bus (per user, and
//! the names of what changed for the totals); the broadcaster of every node
//! with a dashboard for that user (or for the totals) takes it from there.
//! When the bus comes back after an outage every dashboard gets a fresh
//! snapshot, since changes published meanwhile may never arrive.
//!
//! Where it runs: on an arbiter of its own (see `startup`), so its ticks
//! never queue behind rooms or sockets.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytestring::ByteString;
use serde::Serialize;

use super::SNAPSHOT_LIMIT;
use super::series::{self, Series};
use crate::bus::{Arrived, Bus, Link, Subscription, Topic, Watch};
use crate::db::metrics::{self as store, Current, Total};
use crate::db::{Db, DbConnection};
use crate::metrics::Metrics;
use crate::ws::close::CloseCode;
use crate::ws::fanout::Fanout;
use crate::ws::frames::wire_time;
use crate::ws::outlet::Outlet;
use crate::ws::session::SessionId;

/// Which metrics a frame is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The dashboard user's own metrics.
    Own,
    /// Totals over all users (staff).
    Global,
}

/// A dashboard opens a scope: send its snapshot, then its updates.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub user_id: i32,
    pub scope: Scope,
    pub session: SessionId,
    pub outlet: Outlet,
}

/// A dashboard closes; sent once, from the session's `stopped`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub user_id: i32,
    pub session: SessionId,
}

/// A dashboard's user is no longer staff: it keeps its own metrics and
/// stops receiving the totals.
#[derive(Message)]
#[rtype(result = "()")]
pub struct EndGlobal {
    pub session: SessionId,
}

/// Metrics stored by an ingest, with their new values.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Changed {
    pub changes: Vec<Current>,
}

/// A metric as a frame shows it.
#[derive(Debug, Clone, Copy)]
struct Reading {
    value: f64,
    /// The version the value had (totals, read fresh each time, carry 0).
    version: i64,
    /// For totals, how many users have the metric.
    users: Option<i64>,
}

impl Reading {
    fn own(value: f64, version: i64) -> Self {
        Self {
            value,
            version,
            users: None,
        }
    }
}

impl From<&Total> for Reading {
    fn from(total: &Total) -> Self {
        Self {
            value: total.sum,
            version: 0,
            users: Some(total.users),
        }
    }
}

/// Metrics by name.
type Values = BTreeMap<String, Reading>;

fn totals(rows: &[Total]) -> Values {
    rows.iter()
        .map(|total| (total.name.clone(), total.into()))
        .collect()
}

/// A user's metrics and their last hour.
fn own_snapshot(conn: &mut DbConnection, user_id: i32) -> diesel::QueryResult<(Values, Series)> {
    let snapshot: Values = store::for_user(conn, user_id, SNAPSHOT_LIMIT)?
        .into_iter()
        .map(|(name, value, version)| (name, Reading::own(value, version)))
        .collect();
    let current = snapshot
        .iter()
        .map(|(name, reading)| (name.clone(), reading.value))
        .collect();
    let series = series::load(conn, user_id, &current, chrono::Utc::now().naive_utc())?;
    Ok((snapshot, series))
}

#[derive(Serialize)]
struct MetricsFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    scope: Scope,
    metrics: BTreeMap<&'a str, f64>,
    /// Totals only.
    #[serde(skip_serializing_if = "Option::is_none")]
    users: Option<BTreeMap<&'a str, i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    series: Option<&'a Series>,
    at: String,
}

fn frame(
    kind: &'static str,
    scope: Scope,
    metrics: &Values,
    series: Option<&Series>,
) -> ByteString {
    let frame = MetricsFrame {
        kind,
        scope,
        metrics: metrics
            .iter()
            .map(|(name, reading)| (name.as_str(), reading.value))
            .collect(),
        users: (scope == Scope::Global).then(|| {
            metrics
                .iter()
                .map(|(name, reading)| (name.as_str(), reading.users.unwrap_or(0)))
                .collect()
        }),
        series,
        at: wire_time(chrono::Utc::now().naive_utc()),
    };
    serde_json::to_string(&frame)
        .expect("finite numbers and strings")
        .into()
}

/// What the broadcaster keeps per dashboard. Until its snapshot is out it is
/// not `ready`: updates that would have gone to it are kept in `missed` and
/// follow the snapshot, so a change that lands while the snapshot is read is
/// never lost.
#[derive(Default)]
struct Dashboard {
    ready: bool,
    missed: Values,
}

pub struct AnalyticsBroadcaster {
    db: Db,
    metrics: Arc<Metrics>,
    bus: Bus,
    /// The topics this broadcaster's dashboards need: a user's while one of
    /// theirs is open, the totals' while a staff dashboard watches them.
    topics: HashMap<Topic, Subscription>,
    /// The link's news, for as long as the broadcaster runs.
    watch: Option<Watch>,
    interval: Duration,
    own: HashMap<i32, Fanout<Dashboard>>,
    global: Fanout<Dashboard>,
    /// The newest version of each metric taken in, per user with a
    /// dashboard open.
    newest: HashMap<i32, HashMap<String, i64>>,
    pending: HashMap<i32, Values>,
    pending_global: BTreeSet<String>,
    totals_loading: bool,
}

impl AnalyticsBroadcaster {
    pub fn new(db: Db, metrics: Arc<Metrics>, interval: Duration, bus: Bus) -> Self {
        Self {
            db,
            global: Fanout::new(metrics.clone()),
            metrics,
            bus,
            topics: HashMap::new(),
            watch: None,
            interval,
            own: HashMap::new(),
            newest: HashMap::new(),
            pending: HashMap::new(),
            pending_global: BTreeSet::new(),
            totals_loading: false,
        }
    }

    fn audience(&mut self, scope: Scope, user_id: i32) -> Option<&mut Fanout<Dashboard>> {
        match scope {
            Scope::Own => self.own.get_mut(&user_id),
            Scope::Global => Some(&mut self.global),
        }
    }

    /// Sends `changes` to every ready dashboard of an audience; dashboards
    /// still waiting for their snapshot keep them for after it.
    fn deliver(&mut self, scope: Scope, user_id: i32, changes: &Values) {
        let update = frame("analytics.update", scope, changes, None);
        let Some(audience) = self.audience(scope, user_id) else {
            return;
        };
        audience.deliver(&update, |_, dashboard| {
            if !dashboard.ready {
                dashboard
                    .missed
                    .extend(changes.iter().map(|(k, v)| (k.clone(), *v)));
                // Newer than the snapshot being read, or not: decided when
                // it arrives.
            }
            dashboard.ready
        });
        if scope == Scope::Own && audience.is_empty() {
            self.forget(user_id);
        }
    }

    /// A user with no dashboard left: nothing of theirs is kept.
    fn forget(&mut self, user_id: i32) {
        self.own.remove(&user_id);
        self.newest.remove(&user_id);
        self.pending.remove(&user_id);
        self.leave_topic(&Topic::analytics_user(user_id));
    }

    fn join_topic(&mut self, topic: Topic, ctx: &mut Context<Self>) {
        if !self.topics.contains_key(&topic) {
            let subscription = self.bus.subscribe(&topic, ctx.address().recipient());
            self.topics.insert(topic, subscription);
        }
    }

    fn leave_topic(&mut self, topic: &Topic) {
        self.topics.remove(topic);
    }

    /// No staff dashboard watches the totals any more.
    fn tidy_global(&mut self) {
        if self.global.is_empty() {
            self.pending_global.clear();
            self.leave_topic(&Topic::analytics_global());
        }
    }

    /// Changes from the bus, for a user with dashboards here.
    fn take_in(&mut self, changes: Vec<Current>) {
        for change in changes {
            // Changes of users with no dashboard open are not kept: the next
            // dashboard reads them in its snapshot.
            if !self.own.contains_key(&change.user_id) {
                continue;
            }
            let newest = self
                .newest
                .entry(change.user_id)
                .or_default()
                .entry(change.metric.clone())
                .or_default();
            if change.version <= *newest {
                continue;
            }
            *newest = change.version;
            self.pending
                .entry(change.user_id)
                .or_default()
                .insert(change.metric, Reading::own(change.value, change.version));
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        for (user_id, changes) in std::mem::take(&mut self.pending) {
            self.deliver(Scope::Own, user_id, &changes);
        }
        if self.pending_global.is_empty() || self.totals_loading {
            return;
        }
        if self.global.is_empty() {
            return self.tidy_global();
        }
        let names: Vec<String> = std::mem::take(&mut self.pending_global)
            .into_iter()
            .collect();
        self.totals_loading = true;
        let db = self.db.clone();
        let load = async move {
            db.run(move |conn| store::totals(conn, Some(&names), SNAPSHOT_LIMIT))
                .await
        };
        ctx.spawn(load.into_actor(self).map(|loaded, act, _| {
            act.totals_loading = false;
            match loaded {
                Ok(rows) => act.deliver(Scope::Global, 0, &totals(&rows)),
                Err(err) => tracing::error!(error = %err, "loading metric totals failed"),
            }
        }));
    }

    /// Reads a new dashboard's snapshot, sends it, then what it missed meanwhile.
    fn send_snapshot(
        &mut self,
        scope: Scope,
        user_id: i32,
        session: SessionId,
        ctx: &mut Context<Self>,
    ) {
        let db = self.db.clone();
        let load = async move {
            db.run(
                move |conn| -> diesel::QueryResult<(Values, Option<Series>)> {
                    Ok(match scope {
                        Scope::Own => {
                            let (snapshot, series) = own_snapshot(conn, user_id)?;
                            (snapshot, Some(series))
                        }
                        Scope::Global => {
                            (totals(&store::totals(conn, None, SNAPSHOT_LIMIT)?), None)
                        }
                    })
                },
            )
            .await
        };
        ctx.spawn(load.into_actor(self).map(move |loaded, act, _| {
            if let (Scope::Own, Ok((snapshot, _))) = (scope, &loaded) {
                let newest = act.newest.entry(user_id).or_default();
                for (name, reading) in snapshot {
                    let seen = newest.entry(name.clone()).or_default();
                    *seen = (*seen).max(reading.version);
                }
            }
            let Some(audience) = act.audience(scope, user_id) else {
                return;
            };
            let (snapshot, series) = match loaded {
                Ok(loaded) => loaded,
                Err(err) => {
                    tracing::error!(error = %err, user_id, "loading a metrics snapshot failed");
                    audience.close(
                        session,
                        CloseCode::Internal,
                        "metrics are unavailable; reconnect",
                    );
                    return;
                }
            };
            let Some(dashboard) = audience.get_mut(session) else {
                return;
            };
            dashboard.ready = true;
            let mut missed = std::mem::take(&mut dashboard.missed);
            // What the snapshot already shows, or newer, is not news.
            missed.retain(|name, missed| {
                snapshot
                    .get(name)
                    .is_none_or(|shown| missed.version > shown.version)
            });
            let first = frame("analytics.snapshot", scope, &snapshot, series.as_ref());
            if audience.send_to(session, &first).is_none() && !missed.is_empty() {
                let update = frame("analytics.update", scope, &missed, None);
                audience.send_to(session, &update);
            }
        }));
    }
}

impl Actor for AnalyticsBroadcaster {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.interval, |act, ctx| act.tick(ctx));
        self.watch = Some(self.bus.watch(ctx.address().recipient()));
    }
}

impl Handler<Subscribe> for AnalyticsBroadcaster {
    type Result = ();

    fn handle(&mut self, sub: Subscribe, ctx: &mut Self::Context) {
        let topic = match sub.scope {
            Scope::Own => Topic::analytics_user(sub.user_id),
            Scope::Global => Topic::analytics_global(),
        };
        self.join_topic(topic, ctx);
        let audience = match sub.scope {
            Scope::Own => self
                .own
                .entry(sub.user_id)
                .or_insert_with(|| Fanout::new(self.metrics.clone())),
            Scope::Global => &mut self.global,
        };
        audience.insert(sub.session, sub.outlet, Dashboard::default());
        self.send_snapshot(sub.scope, sub.user_id, sub.session, ctx);
    }
}

impl Handler<Unsubscribe> for AnalyticsBroadcaster {
    type Result = ();

    fn handle(&mut self, unsub: Unsubscribe, _: &mut Self::Context) {
        if let Some(audience) = self.own.get_mut(&unsub.user_id) {
            audience.remove(unsub.session);
            if audience.is_empty() {
                self.forget(unsub.user_id);
            }
        }
        self.global.remove(unsub.session);
        self.tidy_global();
    }
}

impl Handler<EndGlobal> for AnalyticsBroadcaster {
    type Result = ();

    fn handle(&mut self, end: EndGlobal, _: &mut Self::Context) {
        self.global.remove(end.session);
        self.tidy_global();
    }
}

impl Handler<Changed> for AnalyticsBroadcaster {
    type Result = ();

    /// What an ingest on this node stored goes out on the bus, to every
    /// node's dashboards this one's included.
    fn handle(&mut self, changed: Changed, _: &mut Self::Context) {
        let mut by_user: BTreeMap<i32, Vec<Current>> = BTreeMap::new();
        let mut names = BTreeSet::new();
        for change in changed.changes {
            names.insert(change.metric.clone());
            by_user.entry(change.user_id).or_default().push(change);
        }
        for (user_id, changes) in by_user {
            let payload = serde_json::to_vec(&changes).expect("plain data serialises");
            self.bus.publish(&Topic::analytics_user(user_id), payload);
        }
        if !names.is_empty() {
            let payload = serde_json::to_vec(&names).expect("plain data serialises");
            self.bus.publish(&Topic::analytics_global(), payload);
        }
    }
}

impl Handler<Arrived> for AnalyticsBroadcaster {
    type Result = ();

    fn handle(&mut self, arrived: Arrived, _: &mut Self::Context) {
        if arrived.topic == Topic::analytics_global() {
            if let Ok(names) = serde_json::from_slice::<Vec<String>>(&arrived.payload)
                && !self.global.is_empty()
            {
                self.pending_global.extend(names);
            }
        } else if let Ok(changes) = serde_json::from_slice::<Vec<Current>>(&arrived.payload) {
            self.take_in(changes);
        }
    }
}

impl Handler<Link> for AnalyticsBroadcaster {
    type Result = ();

    /// Changes published while the bus was down may never arrive: every
    /// dashboard gets its snapshot again, and what comes meanwhile follows
    /// it, as for a new dashboard.
    fn handle(&mut self, link: Link, ctx: &mut Self::Context) {
        if link == Link::Down {
            return;
        }
        let mut again = Vec::new();
        for (user_id, audience) in &mut self.own {
            for session in audience.sessions() {
                if let Some(dashboard) = audience.get_mut(session) {
                    dashboard.ready = false;
                }
                again.push((Scope::Own, *user_id, session));
            }
        }
        for session in self.global.sessions() {
            if let Some(dashboard) = self.global.get_mut(session) {
                dashboard.ready = false;
            }
            again.push((Scope::Global, 0, session));
        }
        if again.is_empty() {
            return;
        }
        for (scope, user_id, session) in again {
            self.send_snapshot(scope, user_id, session, ctx);
        }
        self.metrics.bus_gap_filled();
    }
}
