//! The registry of rooms on this node. It keeps each room's sessions itself,
//! so it can forget a room when the last one leaves; the room actor then stops
//! once the last session has dropped its address. It keeps the set, not a
//! count: a session that vanishes while its join still waits for room in
//! this mailbox sends a leave for a join that never arrived, and that leave
//! must change nothing.

use std::collections::{BTreeSet, HashMap, HashSet};

use actix::prelude::*;

use super::messages::{Join, Leave};
use super::room::{ChatServer, RoomConfig};
use crate::names::RoomName;
use crate::ws::outlet::Drain;
use crate::ws::session::SessionId;

struct Entry {
    addr: Addr<ChatServer>,
    sessions: HashSet<SessionId>,
}

pub struct Rooms {
    rooms: HashMap<RoomName, Entry>,
    staff_rooms: BTreeSet<String>,
    config: RoomConfig,
}

impl Rooms {
    pub fn new(config: RoomConfig, staff_rooms: BTreeSet<String>) -> Self {
        Self {
            rooms: HashMap::new(),
            staff_rooms,
            config,
        }
    }
}

impl Actor for Rooms {
    type Context = Context<Self>;
}

impl Handler<Join> for Rooms {
    type Result = MessageResult<Join>;

    fn handle(&mut self, join: Join, _: &mut Self::Context) -> Self::Result {
        let entry = self.rooms.entry(join.room.clone()).or_insert_with(|| {
            let staff_only = self.staff_rooms.contains(join.room.as_str());
            Entry {
                addr: ChatServer::new(join.room.clone(), staff_only, self.config.clone()).start(),
                sessions: HashSet::new(),
            }
        });
        entry.sessions.insert(join.session);
        let addr = entry.addr.clone();
        self.config.metrics.set_rooms(self.rooms.len());
        addr.do_send(join);
        MessageResult(addr)
    }
}

impl Handler<Leave> for Rooms {
    type Result = ();

    fn handle(&mut self, leave: Leave, _: &mut Self::Context) {
        let room = leave.room.clone();
        let Some(entry) = self.rooms.get_mut(&room) else {
            return;
        };
        if !entry.sessions.remove(&leave.session) {
            return;
        }
        let empty = entry.sessions.is_empty();
        entry.addr.do_send(leave);
        if empty {
            self.rooms.remove(&room);
            self.config.metrics.set_rooms(self.rooms.len());
        }
    }
}

impl Handler<Drain> for Rooms {
    type Result = ();

    fn handle(&mut self, _: Drain, _: &mut Self::Context) {
        for entry in self.rooms.values() {
            entry.addr.do_send(Drain);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::chat::messages::Who;
    use crate::config::DatabaseUrl;
    use crate::db::{self, Db};
    use crate::ws::outlet;
    use crate::ws::session::SessionId;

    fn join(room: &RoomName, session: SessionId, outlet: outlet::Outlet) -> Join {
        Join {
            room: room.clone(),
            session,
            outlet,
            who: Arc::new(Who {
                id: None,
                username: "guest".into(),
                is_staff: false,
            }),
            since: None,
        }
    }

    #[actix_web::test]
    async fn a_leave_whose_join_never_arrived_does_not_forget_a_live_room() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("rooms.sqlite3"));
        let config = RoomConfig {
            db: Db::new(db::pool(&url, 1, db::DEFAULT_POOL_TIMEOUT).unwrap()),
            metrics: Default::default(),
            history_len: 0,
            presence_limit: 100,
        };
        let rooms = Rooms::new(config, BTreeSet::new()).start();
        let room = RoomName::parse("lobby").unwrap();
        let (first, _inbox) = outlet::outbox(1024);
        let member = SessionId::for_tests(1);
        let there = rooms.send(join(&room, member, first)).await.unwrap();

        rooms
            .send(Leave {
                room: room.clone(),
                session: SessionId::for_tests(2),
            })
            .await
            .unwrap();

        let (second, _inbox2) = outlet::outbox(1024);
        let again = rooms
            .send(join(&room, SessionId::for_tests(3), second))
            .await
            .unwrap();
        assert_eq!(there, again, "the room with a member in it was kept");
    }
}
