//! One chat room on this node: its members here (through the one
//! [`Fanout`]), presence per person ([`super::presence`]), recent history
//! ([`super::history`]), and the writer that stores what is said.
//!
//! What it stores it publishes on the room's topic ([`super::events`]), and
//! it delivers only what comes back from the bus, its own included, in the
//! order of the messages' numbers in the room ([`super::order`]): members on
//! every node get every message once and in one order, whichever node
//! either is on. A number that does not come in time, or that the bus lost
//! in an outage, is read from the database. It holds no pool
//! of its own beyond the [`Db`] handle, and never waits on a member.
//!
//! Where it runs: on the arbiter of its registry shard (see
//! [`super::rooms`]), never on a worker thread that serves sockets. One
//! instance per room name at a time: it asks its registry to be forgotten
//! only when it has no members and nothing left to store, so a room
//! re-created at once starts from everything committed.

mod writes;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytestring::ByteString;
use chrono::Utc;

use super::events::RoomEvent;
use super::frames::{
    PresenceCount, PresenceDiff, PresenceEvent, PresenceList, Who, message_frame, with_ref,
};
use super::history::History;
use super::order::Order;
use super::presence::{Diff, People, Roster};
use crate::bus::presence::{entry_field, split_field};
use crate::bus::{Arrived, Bus, Link, Subscription, Topic, Watch};
use crate::db::Db;
use crate::db::chat::{self, NewMessage, StoredMessage};
use crate::metrics::Metrics;
use crate::names::RoomName;
use crate::ws::close::CloseCode;
use crate::ws::fanout::{Fanout, Gone};
use crate::ws::frames::{self, ErrorCode, Ref};
use crate::ws::outlet::Outlet;
use crate::ws::session::SessionId;
use writes::{Queued, Writes};

/// Messages a room's mailbox holds before senders are told it is busy.
const ROOM_MAILBOX: usize = 1024;
/// How often a crowded room sends its member count, at most.
const COUNT_INTERVAL: Duration = Duration::from_secs(1);
/// How often a member that asked for diffs gets one, at most.
const DIFF_INTERVAL: Duration = Duration::from_millis(250);
/// Messages read from the database at a time when catching up.
const CATCH_UP_PAGE: usize = 1000;
/// How long a message waits for the ones numbered before it to come from
/// the bus before they are read from the database. Other nodes publish just
/// after they commit, so this is seldom reached; it is what a message lost
/// by the bus costs.
const GAP_WAIT: Duration = Duration::from_millis(200);
/// How far ahead of what a room has delivered a `since` may be and still be
/// a resume: far beyond what is ever in flight between nodes. A `since`
/// further ahead names messages this database never had (it was replaced),
/// and must not keep the member from hearing new ones.
const RESUME_AHEAD: i64 = 10_000;
/// Presence events held behind messages that wait for a gap to be filled
/// (so a leave still follows its person's words); past this they go on.
const MAX_EVENTS_WAITING: usize = 4096;
/// The first wait before reading the cluster's presence again after a read
/// failed, doubled at each failure up to the longest (with jitter, so the
/// rooms of a node do not retry in step).
const ROSTER_RETRY_FIRST: Duration = Duration::from_millis(250);
const ROSTER_RETRY_LONGEST: Duration = Duration::from_secs(8);

// The messages a room handles.

/// A session asks to join a room; the registry answers with the room.
#[derive(Message)]
#[rtype(result = "Addr<ChatServer>")]
pub struct Join {
    pub room: RoomName,
    pub session: SessionId,
    pub outlet: Outlet,
    pub who: Arc<Who>,
    /// The person the member is among the nodes
    /// ([`user_person`](super::presence::user_person) or
    /// [`guest_person`](super::presence::guest_person)).
    pub person: String,
    /// Send only the messages after this id (a reconnecting client).
    pub since: Option<i64>,
    pub presence: PresenceFrames,
}

/// How a member hears of people coming and going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceFrames {
    /// A `presence.join`, `presence.leave` or `presence.update` each time.
    Events,
    /// At most one `presence.diff` per interval (`?presence=diff`).
    Diffs,
}

/// A session leaves its room; sent once, from the session's `stopped`,
/// straight to the room, behind everything the session said.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub session: SessionId,
}

/// A member says something.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Say {
    pub session: SessionId,
    pub reference: Option<Ref>,
    pub text: String,
}

/// A member's user was loaded again and is now shown differently (staff
/// granted or taken away).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reshow {
    pub session: SessionId,
    pub who: Arc<Who>,
}

/// A room with no members and nothing left to store asks to be forgotten.
/// The registry agrees (true) only if it has sent the room no join since
/// the `joins` the room has seen; otherwise a joiner is on its way.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Idle {
    pub room: RoomName,
    pub joins: u64,
}

/// What a room needs from the hub, fixed when it is created.
#[derive(Clone)]
pub struct RoomConfig {
    pub db: Db,
    pub metrics: Arc<Metrics>,
    pub history_len: usize,
    /// The most a `chat.history` frame may hold: it must fit a member's
    /// outbox with room to spare, or every joiner would be closed as slow.
    pub history_bytes: usize,
    pub presence_limit: usize,
    pub bus: Bus,
}

/// What the room keeps per member.
struct Member {
    /// The person's name among the nodes ([`Join::person`]).
    person: String,
    presence: PresenceFrames,
    /// The member count this member was last told (crowded rooms).
    count_seen: usize,
    /// The id the member resumed from (`?since=`): a member that saw
    /// messages on another node this one has not delivered yet gets only
    /// those after it.
    since: i64,
}

/// How a change is kept for the next diff.
type RecordIn = fn(&mut Diff, &str, Arc<Who>);

/// What happened to a person, for [`ChatServer::announce`].
#[derive(Clone, Copy)]
enum Change {
    Join,
    Leave,
    Update,
}

pub struct ChatServer {
    name: RoomName,
    staff_only: bool,
    config: RoomConfig,
    registry: Recipient<Idle>,
    members: Fanout<Member>,
    /// This node's sockets per person.
    people: People,
    /// The room on every node: what presence frames show.
    roster: Roster,
    topic: Topic,
    /// The room's topic and the link's news, let go of when the room goes.
    subscription: Option<Subscription>,
    watch: Option<Watch>,
    /// Messages delivered, and those waiting for the ones before them.
    order: Order,
    /// Messages this room published for a sender that gave a `ref`: the
    /// sender gets its copy with the ref when the message comes back.
    own: HashMap<i64, (SessionId, Ref)>,
    /// A read of messages from the database is under way, or due.
    reading: bool,
    gap_check_due: bool,
    /// Presence events that came while messages wait: they follow them.
    events_waiting: VecDeque<RoomEvent>,
    history: History,
    /// What is to be stored, and the leaves that wait behind it.
    writes: Writes,
    /// Members the fan-out dropped (gone or too slow) whose session has not
    /// yet said `Leave`: what they said before going still counts, and they
    /// leave the presence list only with that `Leave`, behind their words.
    leaving: HashMap<SessionId, String>,
    /// Past the presence limit the room sends counts, not join/leave events.
    crowded: bool,
    /// Presence changes not yet sent to members that asked for diffs, and
    /// whether a send is scheduled.
    diff: Diff,
    diff_due: bool,
    /// Joins handled, for the registry's check that none is on its way.
    joins: u64,
    asked_to_go: bool,
    /// A read of the cluster's presence under way or waiting to be retried;
    /// a newer one (the link came back again) replaces it.
    roster_read: Option<SpawnHandle>,
}

impl ChatServer {
    pub fn new(
        name: RoomName,
        staff_only: bool,
        config: RoomConfig,
        registry: Recipient<Idle>,
    ) -> Self {
        Self {
            topic: Topic::room(name.as_str()),
            name,
            staff_only,
            members: Fanout::new(config.metrics.clone()),
            history: History::new(config.history_len, config.history_bytes),
            config,
            registry,
            people: People::default(),
            roster: Roster::default(),
            subscription: None,
            watch: None,
            order: Order::unanchored(),
            own: HashMap::new(),
            reading: false,
            gap_check_due: false,
            events_waiting: VecDeque::new(),
            writes: Writes::default(),
            leaving: HashMap::new(),
            crowded: false,
            diff: Diff::default(),
            diff_due: false,
            joins: 0,
            asked_to_go: false,
            roster_read: None,
        }
    }

    fn presence_event(&self, kind: &'static str, who: &Who) -> ByteString {
        let event = PresenceEvent {
            kind,
            room: self.name.as_str(),
            user: who,
        };
        serde_json::to_string(&event).expect("plain struct").into()
    }

    /// A presence change: an event now for members that want events, and
    /// a place in the next diff for those that want diffs.
    fn announce(
        &mut self,
        ctx: &mut Context<Self>,
        change: Change,
        person: &str,
        who: &Arc<Who>,
        except: Option<SessionId>,
    ) {
        if self.crowded {
            return;
        }
        let (kind, diff): (&'static str, RecordIn) = match change {
            Change::Join => ("presence.join", Diff::join),
            Change::Leave => ("presence.leave", Diff::leave),
            Change::Update => ("presence.update", Diff::update),
        };
        let event = self.presence_event(kind, who);
        let gone = self.members.deliver(&event, |id, member| {
            member.presence == PresenceFrames::Events && Some(id) != except
        });
        self.farewell(gone);
        diff(&mut self.diff, person, who.clone());
        if !self.diff_due {
            self.diff_due = true;
            ctx.run_later(DIFF_INTERVAL, |act, _| act.send_diff());
        }
    }

    fn send_diff(&mut self) {
        self.diff_due = false;
        let taken = self.diff.take();
        if self.crowded || taken.joins.len() + taken.leaves.len() + taken.updates.len() == 0 {
            return;
        }
        let frame = PresenceDiff {
            kind: "presence.diff",
            room: self.name.as_str(),
            joins: &taken.joins,
            leaves: &taken.leaves,
            updates: &taken.updates,
        };
        let frame: ByteString = serde_json::to_string(&frame).expect("plain struct").into();
        let gone = self
            .members
            .deliver(&frame, |_, member| member.presence == PresenceFrames::Diffs);
        self.farewell(gone);
    }

    fn count_frame(&self) -> ByteString {
        let count = PresenceCount {
            kind: "presence.count",
            room: self.name.as_str(),
            count: self.roster.len(),
        };
        serde_json::to_string(&count).expect("plain struct").into()
    }

    fn presence_list(&self) -> ByteString {
        let list = PresenceList {
            kind: "presence",
            room: self.name.as_str(),
            members: self.roster.list(),
        };
        serde_json::to_string(&list).expect("plain struct").into()
    }

    /// Members the fan-out dropped stop receiving at once; they leave the
    /// room with their session's `Leave`, which follows all they said.
    fn farewell(&mut self, gone: Vec<Gone<Member>>) {
        for member in gone {
            self.leaving.insert(member.session, member.data.person);
        }
    }

    /// A person's socket has left: once everything said before is out, the
    /// person leaves this node if that was their last socket here, and the
    /// rooms on every node hear of it behind those words.
    fn depart(&mut self, person: String) {
        if let Some(person) = self.writes.depart(person) {
            self.departed_here(person);
        }
    }

    fn departed_here(&mut self, person: String) {
        if self.people.depart(&person).is_some() {
            let node = self.config.bus.node().to_owned();
            self.forget_entry(entry_field(&node, &person));
            self.publish(&RoomEvent::Depart { node, person });
        }
    }

    fn publish(&self, event: &RoomEvent) {
        self.config.bus.publish(&self.topic, event.to_bytes());
    }

    /// Shares this node's entry for a person with the other nodes (the
    /// bus's presence keeper writes it, and again if Redis loses it).
    fn share_entry(&self, person: &str, who: &Who) {
        let (field, shown) = shared_entry(self.config.bus.node(), person, who);
        self.config
            .bus
            .presence()
            .put(self.name.as_str(), field, shown);
    }

    fn forget_entry(&self, field: String) {
        self.config.bus.presence().remove(self.name.as_str(), field);
    }

    /// A frame for one member alone.
    fn tell(&mut self, session: SessionId, frame: &ByteString) {
        if let Some(gone) = self.members.send_to(session, frame) {
            self.farewell(vec![gone]);
        }
    }

    fn tell_error(
        &mut self,
        session: SessionId,
        reference: Option<&Ref>,
        code: ErrorCode,
        detail: &str,
    ) {
        let frame: ByteString = frames::error(reference, code, detail).into();
        self.tell(session, &frame);
    }

    /// Stores the next batch of queued messages, then broadcasts them in id
    /// order; one write at a time keeps broadcast order equal to id order.
    fn write_next(&mut self, ctx: &mut Context<Self>) {
        // Nothing to store, or a batch is being stored (then the room is
        // busy, and stays).
        let Some(batch) = self.writes.next_batch() else {
            return self.go_if_idle(ctx);
        };
        let rows: Vec<NewMessage> = batch
            .iter()
            .map(|q| NewMessage {
                room: self.name.as_str().to_owned(),
                user_id: q.who.id,
                username: q.who.username.clone(),
                is_staff: q.who.is_staff,
                body: q.body.clone(),
                sent_at: q.sent_at,
            })
            .collect();
        let db = self.config.db.clone();
        let store = async move { db.run(move |conn| Ok(chat::insert_each(conn, &rows))).await };
        ctx.spawn(store.into_actor(self).map(move |stored, act, ctx| {
            let ids: Vec<Option<i64>> = match stored {
                Ok(results) => results
                    .into_iter()
                    .map(|result| {
                        result
                            .inspect_err(|err| {
                                tracing::error!(room = %act.name, error = %err, "storing a chat message failed");
                            })
                            .ok()
                    })
                    .collect(),
                Err(err) => {
                    tracing::error!(room = %act.name, error = %err, lost = batch.len(), "storing chat messages failed");
                    vec![None; batch.len()]
                }
            };
            for (q, id) in batch.iter().zip(ids) {
                act.stored(q, id);
            }
            for person in act.writes.stored(&batch) {
                act.departed_here(person);
            }
            act.write_next(ctx);
        }));
    }

    /// One message's fate: published with its id, or an error to its sender.
    fn stored(&mut self, q: &Queued, id: Option<i64>) {
        let Some(id) = id else {
            let detail = "the message could not be stored; send it again";
            return self.tell_error(
                q.session,
                q.reference.as_ref(),
                ErrorCode::Unavailable,
                detail,
            );
        };
        let frame = message_frame(id, self.name.as_str(), &q.who, &q.body, q.sent_at);
        if let Some(reference) = &q.reference {
            self.own.insert(id, (q.session, reference.clone()));
        }
        self.publish(&RoomEvent::Message { id, frame });
    }

    /// A stored message from the bus, from whichever node: delivered with
    /// every message it was waiting for, or held until its turn.
    fn message_arrived(&mut self, ctx: &mut Context<Self>, id: i64, frame: ByteString) {
        let ready = self.order.offer(id, frame);
        self.deliver(ready);
        self.mind_the_gap(ctx);
    }

    fn deliver(&mut self, ready: Vec<(i64, ByteString)>) {
        for (id, frame) in ready {
            self.deliver_one(id, frame);
        }
    }

    /// A message whose turn has come: kept in the history and sent to every
    /// member here.
    fn deliver_one(&mut self, id: i64, frame: ByteString) {
        self.history.remember(id, frame.clone());
        let own = self.own.remove(&id);
        let sender = own.as_ref().map(|(session, _)| *session);
        let gone = self.members.deliver(&frame, |session, member| {
            Some(session) != sender && member.since < id
        });
        self.farewell(gone);
        if let Some((session, reference)) = own {
            self.tell(session, &with_ref(&frame, &reference));
        }
    }

    /// Where a joiner with `?since=` resumes: messages up to it were seen
    /// elsewhere, unless it lies impossibly far ahead.
    fn resumes_from(&self, since: Option<i64>) -> i64 {
        match (since, self.order.delivered_up_to()) {
            (Some(since), Some(delivered)) if since <= delivered.saturating_add(RESUME_AHEAD) => {
                since
            }
            _ => i64::MIN,
        }
    }

    /// A message said, or someone who came, went or changed, on some node.
    fn event_arrived(&mut self, ctx: &mut Context<Self>, event: RoomEvent) {
        match event {
            RoomEvent::Message { id, frame } => self.message_arrived(ctx, id, frame),
            RoomEvent::Arrive { node, person, who } => self.arrived(ctx, &node, &person, who),
            RoomEvent::Depart { node, person } => self.departed(ctx, &node, &person),
            RoomEvent::Update { person, who } => self.updated(ctx, &person, who),
        }
    }

    /// A person arrived on some node (this one's own arrivals were shown
    /// when they joined).
    fn arrived(&mut self, ctx: &mut Context<Self>, node: &str, person: &str, who: Arc<Who>) {
        if node == self.config.bus.node() {
            return;
        }
        let new = self.roster.arrive(node, person, who.clone());
        self.crowd_check(ctx);
        if new {
            self.announce(ctx, Change::Join, person, &who, None);
        }
    }

    /// A person left some node. Another node may have taken this one for
    /// dead (its beats did not reach Redis for a TTL) and let go of its
    /// entries: a person still here is announced again instead.
    fn departed(&mut self, ctx: &mut Context<Self>, node: &str, person: &str) {
        if node == self.config.bus.node() && self.people.has(person) {
            if let Some(who) = self
                .roster
                .on(node)
                .into_iter()
                .find(|(p, _)| *p == person)
                .map(|(_, who)| who.clone())
            {
                self.share_entry(person, &who);
                self.publish(&RoomEvent::Arrive {
                    node: node.to_owned(),
                    person: person.to_owned(),
                    who,
                });
            }
            return;
        }
        if let Some(who) = self.roster.depart(node, person) {
            self.announce(ctx, Change::Leave, person, &who, None);
        }
    }

    fn updated(&mut self, ctx: &mut Context<Self>, person: &str, who: Arc<Who>) {
        if self.roster.update(person, who.clone()) {
            self.announce(ctx, Change::Update, person, &who, None);
        }
    }

    fn crowd_check(&mut self, ctx: &mut Context<Self>) {
        if !self.crowded && self.roster.len() > self.config.presence_limit {
            self.become_crowded(ctx);
        }
    }

    /// While messages wait for one numbered before them, that one is read
    /// from the database unless the bus brings it within [`GAP_WAIT`]; once
    /// nothing waits, the presence events held behind them follow.
    fn mind_the_gap(&mut self, ctx: &mut Context<Self>) {
        if !self.order.waiting() {
            while let Some(event) = self.events_waiting.pop_front() {
                self.event_arrived(ctx, event);
            }
            return;
        }
        if self.reading || self.gap_check_due {
            return;
        }
        self.gap_check_due = true;
        ctx.run_later(GAP_WAIT, |act, ctx| {
            act.gap_check_due = false;
            if act.order.waiting() && !act.reading {
                let after = act.order.delivered_up_to().unwrap_or(0);
                act.read_messages(ctx, after, false);
            }
        });
    }

    /// Reads from the database every message numbered after `after`, page
    /// by page, and delivers those not delivered yet: a gap the bus left, or
    /// what was said on other nodes while the bus was down (`outage`).
    fn read_messages(&mut self, ctx: &mut Context<Self>, after: i64, outage: bool) {
        self.reading = true;
        let held = self.order.first_held();
        let db = self.config.db.clone();
        let room = self.name.as_str().to_owned();
        let read = async move {
            db.run(move |conn| chat::after(conn, &room, after, CATCH_UP_PAGE))
                .await
        };
        ctx.spawn(read.into_actor(self).map(move |read, act, ctx| {
            let rows = match read {
                Ok(rows) => rows,
                Err(err) => {
                    tracing::error!(room = %act.name, error = %err, "reading chat messages failed");
                    return act.read_done(ctx);
                }
            };
            let full = rows.len() == CATCH_UP_PAGE;
            let last = rows.last().map_or(after, |row| row.seq);
            let name = act.name.clone();
            let frames = rows.into_iter().map(|row| stored_frame(name.as_str(), row));
            let ready = act.order.fill(frames, if full { None } else { held });
            act.deliver(ready);
            if full {
                act.read_messages(ctx, last, outage);
            } else {
                if outage {
                    act.config.metrics.bus_gap_filled();
                }
                act.read_done(ctx);
            }
        }));
    }

    fn read_done(&mut self, ctx: &mut Context<Self>) {
        self.reading = false;
        self.mind_the_gap(ctx);
        self.go_if_idle(ctx);
    }

    /// After an outage the other nodes' entries may have changed: the
    /// roster is read again (this node's own entries the keeper writes
    /// again if Redis lost them), and the difference shown as joins and
    /// leaves. A read that fails says nothing about who is here: it is tried
    /// again, with backoff, until it answers.
    fn reload_roster(&mut self, ctx: &mut Context<Self>, failures: u32) {
        let presence = self.config.bus.presence().clone();
        if let Some(earlier) = self.roster_read.take() {
            ctx.cancel_future(earlier);
        }
        let room = self.name.as_str().to_owned();
        let node = self.config.bus.node().to_owned();
        let read = ctx.spawn(
            async move { presence.load(&room).await }
                .into_actor(self)
                .map(move |loaded, act, ctx| {
                    act.roster_read = None;
                    let entries = match loaded {
                        Ok(entries) => entries,
                        Err(err) => {
                            err.report(&act.config.metrics, act.name.as_str(), "reading presence");
                            act.retry_roster(ctx, failures + 1);
                            return;
                        }
                    };
                    let remote: HashMap<(String, String), Arc<Who>> = entries
                        .into_iter()
                        .filter_map(|(field, shown)| act.remote_entry(&node, &field, &shown))
                        .map(|(n, person, who)| ((n, person), who))
                        .collect();
                    let known: Vec<(String, String)> = act
                        .roster
                        .nodes_people()
                        .into_iter()
                        .filter(|(n, _)| *n != node)
                        .collect();
                    for (n, person) in known {
                        if !remote.contains_key(&(n.clone(), person.clone())) {
                            act.departed(ctx, &n, &person);
                        }
                    }
                    for ((n, person), who) in remote {
                        act.arrived(ctx, &n, &person, who);
                    }
                }),
        );
        self.roster_read = Some(read);
    }

    /// Reads the roster again after `failures` failed reads in a row.
    fn retry_roster(&mut self, ctx: &mut Context<Self>, failures: u32) {
        let doubled = ROSTER_RETRY_FIRST.saturating_mul(1 << failures.min(16));
        let wait = doubled
            .min(ROSTER_RETRY_LONGEST)
            .mul_f64(rand::random_range(0.5..=1.0));
        let retry = ctx.run_later(wait, move |act, ctx| act.reload_roster(ctx, failures));
        self.roster_read = Some(retry);
    }

    /// Another node's entry as `(node, person, who)`; `None` for this
    /// node's own, and for one that cannot be read (written by a hub of
    /// another version, or by hand), which is logged and left out.
    fn remote_entry(
        &self,
        node: &str,
        field: &str,
        shown: &str,
    ) -> Option<(String, String, Arc<Who>)> {
        let read = split_field(field).and_then(|(n, person)| {
            let who = serde_json::from_str::<Who>(shown).ok()?;
            Some((n, person, who))
        });
        let Some((n, person, who)) = read else {
            tracing::warn!(room = %self.name, field, "an unreadable presence entry was left out");
            return None;
        };
        (n != node).then(|| (n.to_owned(), person.to_owned(), Arc::new(who)))
    }

    /// Nobody here and nothing to store: ask the registry to forget this
    /// room, and stop if it agrees (no join is on its way).
    fn go_if_idle(&mut self, ctx: &mut Context<Self>) {
        let busy = self.reading || self.writes.busy();
        let occupied = !self.members.is_empty() || !self.leaving.is_empty();
        if self.asked_to_go || busy || occupied {
            return;
        }
        self.asked_to_go = true;
        let ask = self.registry.send(Idle {
            room: self.name.clone(),
            joins: self.joins,
        });
        ctx.spawn(ask.into_actor(self).map(|forgotten, act, ctx| {
            act.asked_to_go = false;
            match forgotten {
                Ok(true) | Err(_) => ctx.stop(),
                Ok(false) => act.go_if_idle(ctx),
            }
        }));
    }

    fn become_crowded(&mut self, ctx: &mut Context<Self>) {
        self.crowded = true;
        ctx.run_interval(COUNT_INTERVAL, |act, _| {
            let count = act.roster.len();
            let frame = act.count_frame();
            let gone = act.members.deliver(&frame, |_, member| {
                let news = member.count_seen != count;
                member.count_seen = count;
                news
            });
            act.farewell(gone);
        });
    }
}

impl Actor for ChatServer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.config.metrics.room_opened();
        // Sessions hand messages over with try_send; a room busy broadcasting
        // must not turn a short burst into "room is busy" errors.
        ctx.set_mailbox_capacity(ROOM_MAILBOX);
        // Joins wait until the history is here, so no one misses a message
        // between what was stored and what is broadcast. One row more than is
        // kept is read: its id tells a `since` what is no longer kept. The
        // room's counter is read first: every number up to it is committed,
        // and so in what `recent` reads after it.
        let db = self.config.db.clone();
        let room = self.name.as_str().to_owned();
        let limit = self.config.history_len + 1;
        let load = async move {
            db.run(move |conn| {
                Ok((
                    chat::last_seq(conn, &room)?,
                    chat::recent(conn, &room, limit)?,
                ))
            })
            .await
        };
        ctx.wait(load.into_actor(self).map(|loaded, act, _| match loaded {
            Ok((counted, rows)) => {
                let name = act.name.clone();
                let frames: Vec<(i64, ByteString)> = rows
                    .into_iter()
                    .map(|row| stored_frame(name.as_str(), row))
                    .collect();
                // What was stored so far counts as delivered as far as this
                // room goes: the same message coming from the bus is not
                // sent again, and the next one is the next number.
                let newest = frames.last().map_or(0, |(id, _)| *id);
                act.order = Order::after(counted.max(newest));
                act.history.loaded(frames);
            }
            Err(err) => {
                tracing::error!(room = %act.name, error = %err, "loading chat history failed");
                act.history.unavailable();
            }
        }));
        let bus = self.config.bus.clone();
        self.subscription = Some(bus.subscribe(&self.topic, ctx.address().recipient()));
        // Watching first: a link that comes up after this read is still heard of.
        self.watch = Some(bus.watch(ctx.address().recipient()));
        // Joins also wait for who is here on other nodes (none, alone).
        let presence = bus.presence().clone();
        let room = self.name.as_str().to_owned();
        let node = bus.node().to_owned();
        ctx.wait(
            async move { presence.load(&room).await }
                .into_actor(self)
                .map(move |loaded, act, ctx| {
                    let entries = match loaded {
                        Ok(entries) => entries,
                        Err(err) => {
                            // Joins go ahead with this node's members; the
                            // others arrive when a read answers.
                            err.report(&act.config.metrics, act.name.as_str(), "reading presence");
                            return act.retry_roster(ctx, 1);
                        }
                    };
                    for (field, shown) in entries {
                        if let Some((n, person, who)) = act.remote_entry(&node, &field, &shown) {
                            act.roster.arrive(&n, &person, who);
                        }
                    }
                }),
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.config.metrics.room_closed();
        // Let go of now, not when the actor is dropped.
        self.subscription = None;
        self.watch = None;
    }
}

/// A presence entry as the other nodes read it: its field, and the person
/// as the room shows them.
fn shared_entry(node: &str, person: &str, who: &Who) -> (String, String) {
    (
        entry_field(node, person),
        serde_json::to_string(who).expect("plain struct"),
    )
}

/// A stored message as its `chat.message` frame.
fn stored_frame(room: &str, row: StoredMessage) -> (i64, ByteString) {
    let m = row.message;
    let who = Who {
        id: m.user_id,
        username: m.username,
        is_staff: m.is_staff,
    };
    (
        row.seq,
        message_frame(row.seq, room, &who, &m.body, m.sent_at),
    )
}

impl Handler<Arrived> for ChatServer {
    type Result = ();

    fn handle(&mut self, arrived: Arrived, ctx: &mut Self::Context) {
        let Some(event) = RoomEvent::parse(&arrived.payload) else {
            tracing::warn!(room = %self.name, "an unreadable event on the room's topic was ignored");
            return;
        };
        let presence = !matches!(event, RoomEvent::Message { .. });
        if presence && self.order.waiting() && self.events_waiting.len() < MAX_EVENTS_WAITING {
            return self.events_waiting.push_back(event);
        }
        self.event_arrived(ctx, event);
    }
}

impl Handler<Link> for ChatServer {
    type Result = ();

    /// The bus is back: what other nodes said meanwhile is in the database,
    /// and who came and went is in the shared entries.
    fn handle(&mut self, link: Link, ctx: &mut Self::Context) {
        if link == Link::Down {
            // Read again when the link is back, not against Redis away.
            if let Some(read) = self.roster_read.take() {
                ctx.cancel_future(read);
            }
            return;
        }
        // A read under way reads on to the newest message anyway.
        if !self.reading {
            let after = self.order.delivered_up_to().unwrap_or(0);
            self.read_messages(ctx, after, true);
        }
        self.reload_roster(ctx, 0);
    }
}

impl Handler<Join> for ChatServer {
    type Result = MessageResult<Join>;

    fn handle(&mut self, join: Join, ctx: &mut Self::Context) -> Self::Result {
        self.joins += 1;
        // Checked again here, not only in the guard: the room is what holds
        // staff conversations, so it must not rely on its callers.
        if self.staff_only && !join.who.is_staff {
            join.outlet
                .close(CloseCode::Forbidden, "this room is for staff only");
            self.go_if_idle(ctx);
            return MessageResult(ctx.address());
        }
        let node = self.config.bus.node().to_owned();
        let person = join.person.clone();
        let mut new_person = false;
        if self.people.arrive(&person, join.who.clone()) {
            new_person = self.roster.arrive(&node, &person, join.who.clone());
            self.share_entry(&person, &join.who);
            self.publish(&RoomEvent::Arrive {
                node,
                person: person.clone(),
                who: join.who.clone(),
            });
        }
        self.crowd_check(ctx);
        let history = self.history.frame(self.name.as_str(), join.since);
        let count = self.roster.len();
        let greeting = if self.crowded {
            self.count_frame()
        } else {
            self.presence_list()
        };
        self.members.insert(
            join.session,
            join.outlet,
            Member {
                person: person.clone(),
                presence: join.presence,
                count_seen: count,
                since: self.resumes_from(join.since),
            },
        );
        self.tell(join.session, &history);
        self.tell(join.session, &greeting);
        if new_person && self.members.get(join.session).is_some() {
            self.announce(ctx, Change::Join, &person, &join.who, Some(join.session));
        }
        self.go_if_idle(ctx);
        MessageResult(ctx.address())
    }
}

impl Handler<Leave> for ChatServer {
    type Result = ();

    fn handle(&mut self, leave: Leave, ctx: &mut Self::Context) {
        let person = match self.members.remove(leave.session) {
            Some(member) => Some(member.person),
            None => self.leaving.remove(&leave.session),
        };
        if let Some(person) = person {
            self.depart(person);
        }
        self.go_if_idle(ctx);
    }
}

impl Handler<Say> for ChatServer {
    type Result = ();

    fn handle(&mut self, say: Say, ctx: &mut Self::Context) {
        // A member the fan-out already dropped still said this before it
        // went; a session that never joined says nothing here.
        let person = match self.members.get(say.session) {
            Some(member) => Some(&member.person),
            None => self.leaving.get(&say.session),
        };
        let Some(who) = person.and_then(|person| self.people.who(person)).cloned() else {
            return;
        };
        if self.writes.full() {
            let detail = "the room is busy; send it again shortly";
            return self.tell_error(
                say.session,
                say.reference.as_ref(),
                ErrorCode::RateLimited,
                detail,
            );
        }
        let at = Utc::now().naive_utc();
        self.writes
            .push(say.session, say.reference, who, say.text, at);
        self.write_next(ctx);
    }
}

impl Handler<Reshow> for ChatServer {
    type Result = ();

    /// What the room shows for a person follows their user: the next
    /// message, the presence list and a `presence.update` on every node say
    /// the new flags.
    fn handle(&mut self, reshow: Reshow, _: &mut Self::Context) {
        let Some(person) = self.members.get(reshow.session).map(|m| m.person.clone()) else {
            return;
        };
        if self.people.update(&person, reshow.who.clone()) {
            self.share_entry(&person, &reshow.who);
            self.publish(&RoomEvent::Update {
                person,
                who: reshow.who,
            });
        }
    }
}
