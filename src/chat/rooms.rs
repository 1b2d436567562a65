//! The registry of rooms on this node. It counts each room's sessions itself,
//! so it can forget a room when the last one leaves; the room actor then stops
//! once the last session has dropped its address.

use std::collections::{BTreeSet, HashMap};

use actix::prelude::*;

use super::messages::{Join, Leave};
use super::room::{ChatServer, RoomConfig};
use crate::names::RoomName;
use crate::ws::outlet::Drain;

struct Entry {
    addr: Addr<ChatServer>,
    sessions: usize,
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
                sessions: 0,
            }
        });
        entry.sessions += 1;
        let addr = entry.addr.clone();
        self.config.metrics.set_rooms(self.rooms.len());
        addr.do_send(join);
        MessageResult(addr)
    }
}

impl Handler<Leave> for Rooms {
    type Result = ();

    fn handle(&mut self, leave: Leave, _: &mut Self::Context) {
        let Some(entry) = self.rooms.get_mut(&leave.room) else {
            return;
        };
        entry.sessions -= 1;
        let empty = entry.sessions == 0;
        entry.addr.do_send(leave);
        if empty {
            self.rooms.retain(|_, e| e.sessions > 0);
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
