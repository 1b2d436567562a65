//! The one way a broadcaster (a chat room, the analytics fan-out, the DNS
//! fan-out) reaches its sessions: a set of members, each with its outlet and
//! whatever the broadcaster keeps per member, and one policy for a member
//! that cannot keep up.
//!
//! A frame is serialised once by its broadcaster and shared by reference
//! count; `deliver` never waits on a member. A member whose outbox is full is
//! removed, counted and closed with 1013; one whose session has gone is
//! removed quietly. Either way the broadcaster gets the member back, to say
//! goodbye in its own terms (a `presence.leave`, for a room).
//!
//! This is also the seam for more than one node: what a broadcaster
//! publishes comes back to it from a broker and is delivered here, so local
//! and remote messages take the same last step.

use std::collections::HashMap;
use std::sync::Arc;

use bytestring::ByteString;

use crate::metrics::Metrics;
use crate::ws::close::CloseCode;
use crate::ws::outlet::{Outlet, Refused};
use crate::ws::session::SessionId;

struct Member<M> {
    outlet: Outlet,
    data: M,
}

/// A member that `deliver` or `send_to` removed.
pub struct Gone<M> {
    pub session: SessionId,
    pub data: M,
}

pub struct Fanout<M> {
    members: HashMap<SessionId, Member<M>>,
    metrics: Arc<Metrics>,
}

impl<M> Fanout<M> {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            members: HashMap::new(),
            metrics,
        }
    }

    pub fn insert(&mut self, session: SessionId, outlet: Outlet, data: M) {
        self.members.insert(session, Member { outlet, data });
    }

    pub fn remove(&mut self, session: SessionId) -> Option<M> {
        self.members.remove(&session).map(|m| m.data)
    }

    pub fn get(&self, session: SessionId) -> Option<&M> {
        self.members.get(&session).map(|m| &m.data)
    }

    pub fn get_mut(&mut self, session: SessionId) -> Option<&mut M> {
        self.members.get_mut(&session).map(|m| &mut m.data)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn sessions(&self) -> Vec<SessionId> {
        self.members.keys().copied().collect()
    }

    pub fn values(&self) -> impl Iterator<Item = &M> {
        self.members.values().map(|m| &m.data)
    }

    /// Sends `frame` to every member `want` picks (it may also update the
    /// member's data, e.g. to hold a change for later). Members that could
    /// not take it are removed and returned.
    pub fn deliver(
        &mut self,
        frame: &ByteString,
        mut want: impl FnMut(SessionId, &mut M) -> bool,
    ) -> Vec<Gone<M>> {
        let failed: Vec<(SessionId, Refused)> = self
            .members
            .iter_mut()
            .filter_map(|(id, m)| {
                want(*id, &mut m.data)
                    .then(|| m.outlet.push(frame).err().map(|why| (*id, why)))
                    .flatten()
            })
            .collect();
        failed
            .into_iter()
            .filter_map(|(session, why)| self.drop_member(session, why))
            .collect()
    }

    /// Sends `frame` to every member.
    pub fn deliver_all(&mut self, frame: &ByteString) -> Vec<Gone<M>> {
        self.deliver(frame, |_, _| true)
    }

    /// Sends `frame` to one member; `Some` when that member had to go.
    pub fn send_to(&mut self, session: SessionId, frame: &ByteString) -> Option<Gone<M>> {
        let why = self.members.get(&session)?.outlet.push(frame).err()?;
        self.drop_member(session, why)
    }

    /// Removes a member and asks its session to close with `code`.
    pub fn close(
        &mut self,
        session: SessionId,
        code: CloseCode,
        reason: &'static str,
    ) -> Option<M> {
        let member = self.members.remove(&session)?;
        member.outlet.close(code, reason);
        Some(member.data)
    }

    /// The slow-member policy, in one place.
    fn drop_member(&mut self, session: SessionId, why: Refused) -> Option<Gone<M>> {
        let member = self.members.remove(&session)?;
        if why == Refused::Slow {
            self.metrics.dropped();
            self.metrics.slow_closed();
            member
                .outlet
                .close(CloseCode::TryAgainLater, "too slow to read its frames");
            tracing::info!(session = session.get(), "dropped a member too slow to read");
        }
        Some(Gone {
            session,
            data: member.data,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use futures_util::Stream;

    use super::*;
    use crate::ws::outlet::{self, Delivery, Inbox};

    fn next(inbox: &mut Inbox) -> Poll<Option<Delivery>> {
        Pin::new(inbox).poll_next(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_slow_member_is_dropped_closed_and_counted_and_the_rest_still_receive() {
        let metrics = Arc::new(Metrics::default());
        let mut fanout = Fanout::new(metrics.clone());
        let (fast, mut fast_inbox) = outlet::outbox(100);
        let (slow, mut slow_inbox) = outlet::outbox(10);
        fanout.insert(SessionId::for_tests(1), fast, "fast");
        fanout.insert(SessionId::for_tests(2), slow, "slow");
        let frame: ByteString = "x".repeat(20).into();
        assert_eq!(fanout.len(), 2);

        let gone = fanout.deliver_all(&frame);

        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].data, "slow");
        assert_eq!(fanout.len(), 1);
        assert!(matches!(
            next(&mut fast_inbox),
            Poll::Ready(Some(Delivery::Frame(_)))
        ));
        assert!(matches!(
            next(&mut slow_inbox),
            Poll::Ready(Some(Delivery::Close(CloseCode::TryAgainLater, _)))
        ));
        assert!(
            metrics
                .render(Default::default())
                .contains("hub_slow_consumers_closed_total 1")
        );
    }

    #[test]
    fn a_gone_session_is_removed_quietly_and_want_picks_recipients() {
        let metrics = Arc::new(Metrics::default());
        let mut fanout = Fanout::new(metrics.clone());
        let (a, mut a_inbox) = outlet::outbox(100);
        let (b, b_inbox) = outlet::outbox(100);
        fanout.insert(SessionId::for_tests(1), a, 0u32);
        fanout.insert(SessionId::for_tests(2), b, 0u32);
        drop(b_inbox);
        let frame: ByteString = "hi".into();

        let gone = fanout.deliver(&frame, |id, skipped| {
            if id == SessionId::for_tests(1) {
                *skipped += 1;
                false
            } else {
                true
            }
        });

        assert_eq!(gone.len(), 1);
        assert_eq!(fanout.get(SessionId::for_tests(1)), Some(&1));
        // A member's data changes in place (a panel whose user became staff).
        *fanout.get_mut(SessionId::for_tests(1)).unwrap() += 10;
        assert_eq!(fanout.get(SessionId::for_tests(1)), Some(&11));
        assert!(next(&mut a_inbox).is_pending());
        assert!(
            metrics
                .render(Default::default())
                .contains("hub_slow_consumers_closed_total 0")
        );
    }

    #[test]
    fn members_are_listed_and_one_closed_leaves_with_its_code() {
        let mut fanout = Fanout::new(Arc::new(Metrics::default()));
        let (a, mut a_inbox) = outlet::outbox(100);
        let (b, _b_inbox) = outlet::outbox(100);
        fanout.insert(SessionId::for_tests(1), a, "a");
        fanout.insert(SessionId::for_tests(2), b, "b");
        let mut sessions = fanout.sessions();
        sessions.sort();
        assert_eq!(sessions, [SessionId::for_tests(1), SessionId::for_tests(2)]);
        let mut values: Vec<&str> = fanout.values().copied().collect();
        values.sort_unstable();
        assert_eq!(values, ["a", "b"]);

        let closed = fanout.close(SessionId::for_tests(1), CloseCode::Policy, "told to");
        assert_eq!(closed, Some("a"));
        assert_eq!(fanout.sessions(), [SessionId::for_tests(2)]);
        assert!(matches!(
            next(&mut a_inbox),
            Poll::Ready(Some(Delivery::Close(CloseCode::Policy, "told to")))
        ));
        assert_eq!(
            fanout.close(SessionId::for_tests(1), CloseCode::Policy, "again"),
            None
        );
    }
}
