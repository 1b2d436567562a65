//! The DNS fan-out: every open DNS panel, with whose it is, so a change to
//! a zone reaches exactly the panels that may see that zone (its owner's
//! and staff's), the one that made it included.
//!
//! Where it runs: on the analytics arbiter (see `startup`); it only moves
//! frames that its sessions serialised, and never touches the database.

use actix::prelude::*;
use bytestring::ByteString;

use crate::metrics::Metrics;
use crate::ws::close::CloseCode;
use crate::ws::fanout::Fanout;
use crate::ws::outlet::{Drain, Outlet};
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

/// A frame about a zone owned by `owner_id`, for every panel that sees it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub owner_id: i32,
    pub frame: ByteString,
}

pub struct DnsBroadcaster {
    panels: Fanout<Panel>,
}

impl DnsBroadcaster {
    pub fn new(metrics: std::sync::Arc<Metrics>) -> Self {
        Self {
            panels: Fanout::new(metrics),
        }
    }
}

impl Actor for DnsBroadcaster {
    type Context = Context<Self>;
}

impl Handler<Open> for DnsBroadcaster {
    type Result = ();

    fn handle(&mut self, open: Open, _: &mut Self::Context) {
        self.panels.insert(open.session, open.outlet, open.panel);
    }
}

impl Handler<Close> for DnsBroadcaster {
    type Result = ();

    fn handle(&mut self, close: Close, _: &mut Self::Context) {
        self.panels.remove(close.session);
    }
}

impl Handler<Reflag> for DnsBroadcaster {
    type Result = ();

    fn handle(&mut self, reflag: Reflag, _: &mut Self::Context) {
        if let Some(panel) = self.panels.get_mut(reflag.session) {
            panel.is_staff = reflag.is_staff;
        }
    }
}

impl Handler<Publish> for DnsBroadcaster {
    type Result = ();

    fn handle(&mut self, publish: Publish, _: &mut Self::Context) {
        // Panels that could not keep up were closed by the fan-out; they
        // have nothing more to be told.
        self.panels
            .deliver(&publish.frame, |_, panel| panel.sees(publish.owner_id));
    }
}

impl Handler<Drain> for DnsBroadcaster {
    type Result = ();

    fn handle(&mut self, _: Drain, _: &mut Self::Context) {
        self.panels
            .close_all(CloseCode::Restart, "the hub is restarting");
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
