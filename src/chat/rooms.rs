//! The rooms of this node, spread over a set of arbiters so fan-out uses
//! every core: a room belongs to the registry shard its name hashes to, and
//! runs on that shard's arbiter (its own thread), as does the shard. Sessions
//! live on the HTTP workers and reach a room only by message.
//!
//! A shard creates a room on the first join and forgets it when the room
//! asks to go ([`Idle`]): the room asks only once it has no members and
//! nothing left to store, and the shard agrees only if no join is on its way
//! to that room. So there is one instance per room at a time, and a room
//! made again at once reads everything the last one stored.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;

use actix::dev::Request;
use actix::prelude::*;

use super::room::{ChatServer, Idle, Join, Leave, RoomConfig};
use crate::names::RoomName;
use crate::ws::session::SessionId;

/// A session that stopped before its join was answered leaves through the
/// registry, which forwards the leave behind the join.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LeaveUnjoined {
    pub room: RoomName,
    pub session: SessionId,
}

struct Entry {
    addr: Addr<ChatServer>,
    /// Joins sent to this room, to compare with what it has seen.
    joins: u64,
}

/// One shard of the registry.
pub struct RoomRegistry {
    rooms: HashMap<RoomName, Entry>,
    staff_rooms: Arc<BTreeSet<String>>,
    config: RoomConfig,
}

impl Actor for RoomRegistry {
    type Context = Context<Self>;
}

impl Handler<Join> for RoomRegistry {
    type Result = MessageResult<Join>;

    fn handle(&mut self, join: Join, ctx: &mut Self::Context) -> Self::Result {
        let entry = self.rooms.entry(join.room.clone()).or_insert_with(|| {
            let staff_only = self.staff_rooms.contains(join.room.as_str());
            let registry = ctx.address().recipient();
            // Started from this handler, so on this shard's arbiter.
            let room =
                ChatServer::new(join.room.clone(), staff_only, self.config.clone(), registry);
            Entry {
                addr: room.start(),
                joins: 0,
            }
        });
        entry.joins += 1;
        let addr = entry.addr.clone();
        addr.do_send(join);
        MessageResult(addr)
    }
}

impl Handler<LeaveUnjoined> for RoomRegistry {
    type Result = ();

    /// Forwarded behind the join this shard already sent, so the room sees
    /// the two in order; a room this shard no longer has needs no leave.
    fn handle(&mut self, leave: LeaveUnjoined, _: &mut Self::Context) {
        if let Some(entry) = self.rooms.get(&leave.room) {
            entry.addr.do_send(Leave {
                session: leave.session,
            });
        }
    }
}

impl Handler<Idle> for RoomRegistry {
    type Result = bool;

    fn handle(&mut self, idle: Idle, _: &mut Self::Context) -> bool {
        match self.rooms.get(&idle.room) {
            Some(entry) if entry.joins == idle.joins => {
                self.rooms.remove(&idle.room);
                true
            }
            _ => false,
        }
    }
}

/// The sessions' handle on every shard: cheap to clone.
#[derive(Clone)]
pub struct Rooms {
    shards: Arc<[Addr<RoomRegistry>]>,
}

impl Rooms {
    /// Starts one registry shard on each arbiter.
    pub fn start(
        config: &RoomConfig,
        staff_rooms: BTreeSet<String>,
        arbiters: &[ArbiterHandle],
    ) -> Self {
        assert!(!arbiters.is_empty(), "rooms need at least one arbiter");
        let staff_rooms = Arc::new(staff_rooms);
        let shards = arbiters
            .iter()
            .map(|arbiter| {
                let (config, staff_rooms) = (config.clone(), staff_rooms.clone());
                RoomRegistry::start_in_arbiter(arbiter, move |_| RoomRegistry {
                    rooms: HashMap::new(),
                    staff_rooms,
                    config,
                })
            })
            .collect();
        Self { shards }
    }

    /// A fixed hash (not the per-process random one), so a room's shard is
    /// the same for every session.
    fn shard(&self, room: &RoomName) -> &Addr<RoomRegistry> {
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(room.as_str());
        let index = usize::try_from(hash % self.shards.len() as u64).unwrap_or(0);
        &self.shards[index]
    }

    /// Joins a room; the answer is the room, for what the session says next.
    pub fn join(&self, join: Join) -> Request<RoomRegistry, Join> {
        self.shard(&join.room).send(join)
    }

    pub fn leave_unjoined(&self, room: RoomName, session: SessionId) {
        self.shard(&room).do_send(LeaveUnjoined { room, session });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::chat::frames::Who;
    use crate::config::DatabaseUrl;
    use crate::db::{self, Db};
    use crate::metrics::Metrics;
    use crate::ws::outlet;

    fn guest(room: &RoomName, session: u64) -> (Join, outlet::Inbox) {
        let (outlet, inbox) = outlet::outbox(1 << 16);
        let join = Join {
            room: room.clone(),
            session: SessionId::for_tests(session),
            outlet,
            who: Arc::new(Who {
                id: None,
                username: format!("guest-{session}"),
                is_staff: false,
            }),
            person: format!("g{session}"),
            since: None,
            presence: crate::chat::room::PresenceFrames::Events,
        };
        (join, inbox)
    }

    async fn rooms(metrics: Arc<Metrics>) -> (Rooms, tempfile::TempDir) {
        rooms_with_staff(metrics, BTreeSet::new()).await
    }

    async fn rooms_with_staff(
        metrics: Arc<Metrics>,
        staff_rooms: BTreeSet<String>,
    ) -> (Rooms, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("rooms.sqlite3"));
        let db = Db::new(db::pool(&url, 1, db::DEFAULT_POOL_TIMEOUT).unwrap());
        db.migrate().unwrap();
        let config = RoomConfig {
            db,
            bus: crate::bus::Bus::local(metrics.clone()),
            metrics,
            history_len: 5,
            history_bytes: 1 << 16,
            presence_limit: 2,
        };
        let rooms = Rooms::start(&config, staff_rooms, &[Arbiter::current()]);
        (rooms, dir)
    }

    async fn rooms_open(metrics: &Metrics) -> String {
        metrics
            .render(Default::default())
            .lines()
            .find(|l| l.starts_with("hub_rooms "))
            .unwrap()
            .to_owned()
    }

    #[actix_web::test]
    async fn a_staff_room_refuses_a_member_who_is_not_staff_even_past_the_guard() {
        use futures_util::StreamExt;

        use crate::ws::close::CloseCode;
        use crate::ws::outlet::Delivery;

        // The guard would have refused this join; the room must too.
        let metrics = Arc::new(Metrics::default());
        let staff_rooms = BTreeSet::from(["management".to_owned()]);
        let (rooms, _dir) = rooms_with_staff(metrics, staff_rooms).await;
        let room = RoomName::parse("management").unwrap();
        let (join, mut inbox) = guest(&room, 1);
        rooms.join(join).await.unwrap();
        let first = actix_web::rt::time::timeout(Duration::from_secs(5), inbox.next())
            .await
            .expect("the room answers the join");
        match first {
            Some(Delivery::Close(code, _)) => assert_eq!(code, CloseCode::Forbidden),
            Some(Delivery::Frame(frame)) => panic!("a member who is not staff was sent {frame}"),
            None => panic!("the outbox ended without a close"),
        }
    }

    #[actix_web::test]
    async fn a_leave_before_the_join_was_answered_still_empties_the_room_and_it_stops() {
        let metrics = Arc::new(Metrics::default());
        let (rooms, _dir) = rooms(metrics.clone()).await;
        let room = RoomName::parse("lobby").unwrap();
        let (join, _inbox) = guest(&room, 1);
        let pending = rooms.join(join);
        rooms.leave_unjoined(room.clone(), SessionId::for_tests(1));
        pending.await.unwrap();
        for _ in 0..100 {
            if rooms_open(&metrics).await == "hub_rooms 0" {
                return;
            }
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the room never stopped: {}", rooms_open(&metrics).await);
    }

    #[actix_web::test]
    async fn a_crowded_room_stops_once_its_last_member_leaves() {
        let metrics = Arc::new(Metrics::default());
        let (rooms, _dir) = rooms(metrics.clone()).await;
        let room = RoomName::parse("crowd").unwrap();
        let mut inboxes = Vec::new();
        let mut addr = None;
        for session in 1..=4 {
            let (join, inbox) = guest(&room, session);
            inboxes.push(inbox);
            addr = Some(rooms.join(join).await.unwrap());
        }
        assert_eq!(rooms_open(&metrics).await, "hub_rooms 1");
        let addr = addr.unwrap();
        for session in 1..=4 {
            addr.send(Leave {
                session: SessionId::for_tests(session),
            })
            .await
            .unwrap();
        }
        for _ in 0..100 {
            if !addr.connected() {
                assert_eq!(rooms_open(&metrics).await, "hub_rooms 0");
                return;
            }
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the crowded room's count timer kept it alive");
    }
}
