//! One chat room: its members, presence and recent history, and the fan-out.
//! It holds no pool of its own beyond the [`Db`] handle it stores messages
//! through, and never waits on a member: a member that cannot take a frame is
//! dropped (see [`crate::ws::outlet`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytestring::ByteString;
use chrono::Utc;

use super::messages::{
    Join, Leave, PresenceCount, PresenceEvent, PresenceList, Say, Who, message_frame,
};
use crate::db::Db;
use crate::db::chat::{self, NewMessage, StoredMessage};
use crate::metrics::Metrics;
use crate::names::RoomName;
use crate::ws::frames::{self, ErrorCode, Ref};
use crate::ws::outlet::{Drain, Outlet, Refused};
use crate::ws::session::{SessionId, close};

/// Messages waiting to be stored; past this a member is told to slow down.
const MAX_QUEUED: usize = 4096;
/// Messages stored in one transaction.
const WRITE_BATCH: usize = 256;
/// Messages a room's mailbox holds before senders are told it is busy.
const ROOM_MAILBOX: usize = 1024;
/// How often a crowded room sends its member count, at most.
const COUNT_INTERVAL: Duration = Duration::from_secs(1);

/// What a room needs from the hub, fixed when it is created.
#[derive(Clone)]
pub struct RoomConfig {
    pub db: Db,
    pub metrics: Arc<Metrics>,
    pub history_len: usize,
    pub presence_limit: usize,
}

struct Member {
    outlet: Outlet,
    who: Arc<Who>,
    key: PersonKey,
}

/// Presence is per person: one user with two tabs is one member of the list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PersonKey {
    User(i32),
    Guest(SessionId),
}

struct Person {
    who: Arc<Who>,
    sessions: usize,
}

struct Queued {
    session: SessionId,
    reference: Option<Ref>,
    who: Arc<Who>,
    body: String,
    sent_at: chrono::NaiveDateTime,
}

pub struct ChatServer {
    name: RoomName,
    staff_only: bool,
    config: RoomConfig,
    members: HashMap<SessionId, Member>,
    people: HashMap<PersonKey, Person>,
    /// The newest messages as their broadcast frames, oldest first.
    history: VecDeque<(i64, ByteString)>,
    /// Every message with an id up to this one is no longer in `history`;
    /// `i64::MAX` when history could not be loaded at all.
    forgotten_up_to: i64,
    queue: VecDeque<Queued>,
    writing: bool,
    /// Past the presence limit the room sends counts, not join/leave events.
    crowded: bool,
    count_sent: usize,
}

impl ChatServer {
    pub fn new(name: RoomName, staff_only: bool, config: RoomConfig) -> Self {
        Self {
            name,
            staff_only,
            config,
            members: HashMap::new(),
            people: HashMap::new(),
            history: VecDeque::new(),
            forgotten_up_to: 0,
            queue: VecDeque::new(),
            writing: false,
            crowded: false,
            count_sent: 0,
        }
    }

    fn message_frame(
        &self,
        id: i64,
        who: &Who,
        body: &str,
        sent_at: chrono::NaiveDateTime,
    ) -> ByteString {
        message_frame(id, self.name.as_str(), who, body, sent_at)
    }

    fn remember(&mut self, id: i64, frame: ByteString) {
        self.history.push_back((id, frame));
        while self.history.len() > self.config.history_len {
            if let Some((old, _)) = self.history.pop_front() {
                self.forgotten_up_to = self.forgotten_up_to.max(old);
            }
        }
    }

    fn loaded(&mut self, rows: Vec<StoredMessage>) {
        // One row more than is kept was asked for: if it came, older messages exist.
        let keep_from = rows.len().saturating_sub(self.config.history_len);
        for (i, row) in rows.into_iter().enumerate() {
            if i < keep_from {
                self.forgotten_up_to = self.forgotten_up_to.max(row.id);
                continue;
            }
            let m = row.message;
            let who = Who {
                id: m.user_id,
                username: m.username,
                is_staff: m.is_staff,
            };
            let frame = self.message_frame(row.id, &who, &m.body, m.sent_at);
            self.history.push_back((row.id, frame));
        }
    }

    fn history_frame(&self, since: Option<i64>) -> ByteString {
        let (from, truncated) = match since {
            None => (i64::MIN, self.forgotten_up_to == i64::MAX),
            Some(id) => (id, id < self.forgotten_up_to),
        };
        let mut out = String::with_capacity(
            64 + self.history.iter().map(|(_, f)| f.len() + 1).sum::<usize>(),
        );
        out.push_str(r#"{"type":"chat.history","room":"#);
        out.push_str(&serde_json::to_string(self.name.as_str()).expect("a string"));
        out.push_str(r#","messages":["#);
        let mut first = true;
        for (_, frame) in self.history.iter().filter(|(id, _)| *id > from) {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(frame);
        }
        out.push_str(r#"],"truncated":"#);
        out.push_str(if truncated { "true" } else { "false" });
        out.push('}');
        out.into()
    }

    fn presence_event(&self, kind: &'static str, who: &Who) -> ByteString {
        let event = PresenceEvent {
            kind,
            room: self.name.as_str(),
            user: who,
        };
        serde_json::to_string(&event).expect("plain struct").into()
    }

    fn count_frame(&self) -> ByteString {
        let count = PresenceCount {
            kind: "presence.count",
            room: self.name.as_str(),
            count: self.members.len(),
        };
        serde_json::to_string(&count).expect("plain struct").into()
    }

    fn presence_list(&self) -> ByteString {
        let mut members: Vec<&Who> = self.people.values().map(|p| &*p.who).collect();
        members.sort_by(|a, b| a.username.cmp(&b.username));
        let list = PresenceList {
            kind: "presence",
            room: self.name.as_str(),
            members,
        };
        serde_json::to_string(&list).expect("plain struct").into()
    }

    /// Sends a frame to every member; members that cannot take it are
    /// dropped, and the presence events their leaving causes are sent too.
    fn broadcast(&mut self, frame: &ByteString) {
        self.broadcast_except(frame, None);
    }

    fn broadcast_except(&mut self, frame: &ByteString, except: Option<SessionId>) {
        let mut failed = self.push_all(frame, except);
        while let Some((session, why)) = failed.pop() {
            if let Some(leave) = self.remove(session, Some(why)) {
                failed.extend(self.push_all(&leave, None));
            }
        }
    }

    fn push_all(&self, frame: &ByteString, except: Option<SessionId>) -> Vec<(SessionId, Refused)> {
        self.members
            .iter()
            .filter(|(id, _)| Some(**id) != except)
            .filter_map(|(id, m)| m.outlet.push(frame).err().map(|why| (*id, why)))
            .collect()
    }

    /// Removes a member; returns the `presence.leave` frame to broadcast when
    /// this was the person's last session here.
    fn remove(&mut self, session: SessionId, why: Option<Refused>) -> Option<ByteString> {
        let member = self.members.remove(&session)?;
        if why == Some(Refused::Slow) {
            self.config.metrics.dropped();
            self.config.metrics.slow_closed();
            member
                .outlet
                .close(close::TOO_SLOW, "too slow to read its frames");
            tracing::info!(room = %self.name, session = session.get(), "dropped a member too slow to read");
        }
        let person = self.people.get_mut(&member.key)?;
        person.sessions -= 1;
        if person.sessions > 0 {
            return None;
        }
        self.people.remove(&member.key);
        (!self.crowded).then(|| self.presence_event("presence.leave", &member.who))
    }

    /// Stores the next batch of queued messages, then broadcasts them in id
    /// order; one write at a time keeps broadcast order equal to id order.
    fn write_next(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.queue.is_empty() {
            return;
        }
        self.writing = true;
        let take = self.queue.len().min(WRITE_BATCH);
        let batch: Vec<Queued> = self.queue.drain(..take).collect();
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
        let store = async move { db.run(move |conn| chat::insert_all(conn, &rows)).await };
        ctx.spawn(store.into_actor(self).map(move |stored, act, ctx| {
            act.writing = false;
            match stored {
                Ok(ids) => {
                    for (q, id) in batch.iter().zip(ids) {
                        let frame = act.message_frame(id, &q.who, &q.body, q.sent_at);
                        act.remember(id, frame.clone());
                        act.broadcast(&frame);
                    }
                }
                Err(err) => {
                    tracing::error!(room = %act.name, error = %err, lost = batch.len(), "storing chat messages failed");
                    for q in &batch {
                        act.tell(q.session, q.reference.as_ref(), ErrorCode::Unavailable, "the message could not be stored; send it again");
                    }
                }
            }
            act.write_next(ctx);
        }));
    }

    /// An error frame for one member, if it is still here.
    fn tell(&mut self, session: SessionId, reference: Option<&Ref>, code: ErrorCode, detail: &str) {
        let frame: ByteString = frames::error(reference, code, detail).into();
        if let Some(why) = self
            .members
            .get(&session)
            .and_then(|m| m.outlet.push(&frame).err())
        {
            self.drop_member(session, Some(why));
        }
    }

    /// Removes a member and tells the others if that person has left.
    fn drop_member(&mut self, session: SessionId, why: Option<Refused>) {
        if let Some(leave) = self.remove(session, why) {
            self.broadcast(&leave);
        }
    }

    fn become_crowded(&mut self, ctx: &mut Context<Self>) {
        self.crowded = true;
        ctx.run_interval(COUNT_INTERVAL, |act, _| {
            if act.members.len() != act.count_sent {
                act.count_sent = act.members.len();
                let frame = act.count_frame();
                act.broadcast(&frame);
            }
        });
    }
}

impl Actor for ChatServer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Sessions hand messages over with try_send; a room busy broadcasting
        // must not turn a short burst into "room is busy" errors.
        ctx.set_mailbox_capacity(ROOM_MAILBOX);
        if self.config.history_len == 0 {
            return;
        }
        // Joins wait until the history is here, so no one misses a message
        // between what was stored and what is broadcast.
        let db = self.config.db.clone();
        let room = self.name.as_str().to_owned();
        let limit = self.config.history_len + 1;
        let load = async move { db.run(move |conn| chat::recent(conn, &room, limit)).await };
        ctx.wait(load.into_actor(self).map(|loaded, act, _| match loaded {
            Ok(rows) => act.loaded(rows),
            Err(err) => {
                tracing::error!(room = %act.name, error = %err, "loading chat history failed");
                act.forgotten_up_to = i64::MAX;
            }
        }));
    }
}

impl Handler<Join> for ChatServer {
    type Result = MessageResult<Join>;

    fn handle(&mut self, join: Join, ctx: &mut Self::Context) -> Self::Result {
        // Checked again here, not only in the guard: the room is what holds
        // staff conversations, so it must not rely on its callers.
        if self.staff_only && !join.who.is_staff {
            join.outlet
                .close(close::FORBIDDEN, "this room is for staff only");
            return MessageResult(ctx.address());
        }
        let key = match join.who.id {
            Some(id) => PersonKey::User(id),
            None => PersonKey::Guest(join.session),
        };
        let history = self.history_frame(join.since);
        let person = self.people.entry(key.clone()).or_insert_with(|| Person {
            who: join.who.clone(),
            sessions: 0,
        });
        person.sessions += 1;
        let arrived = person.sessions == 1;
        self.members.insert(
            join.session,
            Member {
                outlet: join.outlet.clone(),
                who: join.who.clone(),
                key,
            },
        );
        if !self.crowded && self.members.len() > self.config.presence_limit {
            self.become_crowded(ctx);
        }
        let greeting = if self.crowded {
            self.count_frame()
        } else {
            self.presence_list()
        };
        for frame in [&history, &greeting] {
            if let Err(why) = join.outlet.push(frame) {
                self.drop_member(join.session, Some(why));
                return MessageResult(ctx.address());
            }
        }
        if arrived && !self.crowded {
            let event = self.presence_event("presence.join", &join.who);
            self.broadcast_except(&event, Some(join.session));
        }
        MessageResult(ctx.address())
    }
}

impl Handler<Leave> for ChatServer {
    type Result = ();

    fn handle(&mut self, leave: Leave, _: &mut Self::Context) {
        self.drop_member(leave.session, None);
    }
}

impl Handler<Say> for ChatServer {
    type Result = ();

    fn handle(&mut self, say: Say, ctx: &mut Self::Context) {
        let Some(who) = self.members.get(&say.session).map(|m| m.who.clone()) else {
            return;
        };
        if self.queue.len() >= MAX_QUEUED {
            return self.tell(
                say.session,
                say.reference.as_ref(),
                ErrorCode::RateLimited,
                "the room is busy; send it again shortly",
            );
        }
        self.queue.push_back(Queued {
            session: say.session,
            reference: say.reference,
            who,
            body: say.text,
            sent_at: Utc::now().naive_utc(),
        });
        self.write_next(ctx);
    }
}

impl Handler<Drain> for ChatServer {
    type Result = ();

    /// Closes every member; each session then leaves as it always does.
    fn handle(&mut self, _: Drain, _: &mut Self::Context) {
        for member in self.members.values() {
            member.outlet.close(close::RESTART, "the hub is restarting");
        }
    }
}
