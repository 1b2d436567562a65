//! The analytics fan-out. Ingest tells it which metrics changed; it keeps the
//! latest value of each until the next tick, then sends every dashboard of
//! that user one `analytics.update` with only what changed. Staff subscribed
//! to the global scope get totals over all users the same way.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytestring::ByteString;
use serde::Serialize;

use super::SNAPSHOT_LIMIT;
use crate::chat::messages::wire_time;
use crate::db::Db;
use crate::db::metrics::{self as store, Current};
use crate::metrics::Metrics;
use crate::ws::outlet::{Drain, Outlet, Refused};
use crate::ws::session::{SessionId, close};

/// Which metrics a frame is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The dashboard user's own metrics.
    Own,
    /// Totals over all users (staff).
    Global,
}

/// A dashboard opens: send its snapshot, then its updates.
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

/// Metrics stored by an ingest, with their new values.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Changed(pub Vec<Current>);

#[derive(Serialize)]
struct MetricsFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    scope: Scope,
    metrics: &'a BTreeMap<String, f64>,
    at: String,
}

fn frame(kind: &'static str, scope: Scope, metrics: &BTreeMap<String, f64>) -> ByteString {
    let frame = MetricsFrame {
        kind,
        scope,
        metrics,
        at: wire_time(chrono::Utc::now().naive_utc()),
    };
    serde_json::to_string(&frame)
        .expect("finite numbers and strings")
        .into()
}

/// A dashboard. Until its snapshot is out it is not `ready`: updates that
/// would have gone to it are kept in `missed` and follow the snapshot, so a
/// change that lands while the snapshot is read is never lost.
struct Dashboard {
    outlet: Outlet,
    ready: bool,
    missed: BTreeMap<String, f64>,
}

impl Dashboard {
    fn new(outlet: Outlet) -> Self {
        Self {
            outlet,
            ready: false,
            missed: BTreeMap::new(),
        }
    }
}

/// Subscribers keyed by what they watch: a user id, or the global totals.
type Audience = HashMap<SessionId, Dashboard>;

pub struct AnalyticsBroadcaster {
    db: Db,
    metrics: Arc<Metrics>,
    interval: Duration,
    own: HashMap<i32, Audience>,
    global: Audience,
    pending: HashMap<i32, BTreeMap<String, f64>>,
    pending_global: BTreeSet<String>,
    totals_loading: bool,
}

impl AnalyticsBroadcaster {
    pub fn new(db: Db, metrics: Arc<Metrics>, interval: Duration) -> Self {
        Self {
            db,
            metrics,
            interval,
            own: HashMap::new(),
            global: HashMap::new(),
            pending: HashMap::new(),
            pending_global: BTreeSet::new(),
            totals_loading: false,
        }
    }

    fn audience(&mut self, scope: Scope, user_id: i32) -> Option<&mut Audience> {
        match scope {
            Scope::Own => self.own.get_mut(&user_id),
            Scope::Global => Some(&mut self.global),
        }
    }

    /// Sends `changes` to every ready dashboard of an audience; dashboards
    /// still waiting for their snapshot keep them for after it.
    fn deliver(&mut self, scope: Scope, user_id: i32, changes: &BTreeMap<String, f64>) {
        let update = frame("analytics.update", scope, changes);
        let metrics = self.metrics.clone();
        let Some(audience) = self.audience(scope, user_id) else {
            return;
        };
        audience.retain(|_, dashboard| {
            if !dashboard.ready {
                dashboard
                    .missed
                    .extend(changes.iter().map(|(k, v)| (k.clone(), *v)));
                return true;
            }
            keep_or_drop(&dashboard.outlet, dashboard.outlet.push(&update), &metrics)
        });
        if scope == Scope::Own && audience.is_empty() {
            self.own.remove(&user_id);
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
            self.pending_global.clear();
            return;
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
                Ok(rows) => act.deliver(Scope::Global, 0, &rows.into_iter().collect()),
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
            db.run(move |conn| match scope {
                Scope::Own => store::for_user(conn, user_id, SNAPSHOT_LIMIT),
                Scope::Global => store::totals(conn, None, SNAPSHOT_LIMIT),
            })
            .await
        };
        ctx.spawn(load.into_actor(self).map(move |loaded, act, _| {
            let metrics = act.metrics.clone();
            let Some(audience) = act.audience(scope, user_id) else {
                return;
            };
            let Some(dashboard) = audience.get_mut(&session) else {
                return;
            };
            let snapshot: BTreeMap<String, f64> = match loaded {
                Ok(rows) => rows.into_iter().collect(),
                Err(err) => {
                    tracing::error!(error = %err, user_id, "loading a metrics snapshot failed");
                    dashboard
                        .outlet
                        .close(1011, "metrics are unavailable; reconnect");
                    audience.remove(&session);
                    return;
                }
            };
            let mut sent = dashboard
                .outlet
                .push(&frame("analytics.snapshot", scope, &snapshot));
            if sent.is_ok() && !dashboard.missed.is_empty() {
                sent = dashboard
                    .outlet
                    .push(&frame("analytics.update", scope, &dashboard.missed));
            }
            dashboard.ready = true;
            dashboard.missed.clear();
            if !keep_or_drop(&dashboard.outlet, sent, &metrics) {
                audience.remove(&session);
            }
        }));
    }
}

/// Whether a dashboard stays after a push; a slow one is told to close.
fn keep_or_drop(outlet: &Outlet, pushed: Result<(), Refused>, metrics: &Metrics) -> bool {
    match pushed {
        Ok(()) => true,
        Err(Refused::Gone) => false,
        Err(Refused::Slow) => {
            metrics.dropped();
            metrics.slow_closed();
            outlet.close(close::TOO_SLOW, "too slow to read its frames");
            false
        }
    }
}

impl Actor for AnalyticsBroadcaster {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.interval, |act, ctx| act.tick(ctx));
    }
}

impl Handler<Subscribe> for AnalyticsBroadcaster {
    type Result = ();

    fn handle(&mut self, sub: Subscribe, ctx: &mut Self::Context) {
        let dashboard = Dashboard::new(sub.outlet);
        match sub.scope {
            Scope::Own => self
                .own
                .entry(sub.user_id)
                .or_default()
                .insert(sub.session, dashboard),
            Scope::Global => self.global.insert(sub.session, dashboard),
        };
        self.send_snapshot(sub.scope, sub.user_id, sub.session, ctx);
    }
}

impl Handler<Unsubscribe> for AnalyticsBroadcaster {
    type Result = ();

    fn handle(&mut self, unsub: Unsubscribe, _: &mut Self::Context) {
        if let Some(audience) = self.own.get_mut(&unsub.user_id) {
            audience.remove(&unsub.session);
            if audience.is_empty() {
                self.own.remove(&unsub.user_id);
            }
        }
        self.global.remove(&unsub.session);
    }
}

impl Handler<Changed> for AnalyticsBroadcaster {
    type Result = ();

    fn handle(&mut self, Changed(changes): Changed, _: &mut Self::Context) {
        let watching_totals = !self.global.is_empty();
        for change in changes {
            if watching_totals {
                self.pending_global.insert(change.metric.clone());
            }
            // Changes of users with no dashboard open are not kept: the next
            // dashboard reads them in its snapshot.
            if self.own.contains_key(&change.user_id) {
                self.pending
                    .entry(change.user_id)
                    .or_default()
                    .insert(change.metric, change.value);
            }
        }
    }
}

impl Handler<Drain> for AnalyticsBroadcaster {
    type Result = ();

    fn handle(&mut self, _: Drain, _: &mut Self::Context) {
        for dashboard in self
            .own
            .values()
            .flat_map(HashMap::values)
            .chain(self.global.values())
        {
            dashboard
                .outlet
                .close(close::RESTART, "the hub is restarting");
        }
    }
}
