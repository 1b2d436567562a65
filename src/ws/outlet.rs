//! How a broadcaster (a chat room, later the analytics and DNS fan-outs)
//! reaches one session without ever waiting on it or queueing without bound.
//!
//! A session whose client stops reading is no longer polled by actix-http,
//! so its mailbox stops draining. Each outlet therefore counts the bytes it
//! has queued and not yet handed to the socket; past the session's budget, or
//! with its mailbox full, the push fails and the broadcaster drops that member
//! instead of growing the server's memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use actix::{Message, Recipient};
use bytestring::ByteString;

/// What a broadcaster sends to a session.
#[derive(Message)]
#[rtype(result = "()")]
pub enum Push {
    /// A text frame, serialised once and shared by every recipient.
    Frame(ByteString),
    /// Close with this code and reason.
    Close(u16, &'static str),
}

/// Why a push did not go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The member is not keeping up: its byte budget or mailbox is full.
    Slow,
    /// The session has stopped.
    Gone,
}

/// A bounded handle on one session, cheap to clone.
#[derive(Clone)]
pub struct Outlet {
    recipient: Recipient<Push>,
    queued: Arc<AtomicUsize>,
    budget: usize,
}

impl Outlet {
    /// `queued` is shared with the session, which subtracts what it writes.
    pub fn new(recipient: Recipient<Push>, queued: Arc<AtomicUsize>, budget: usize) -> Self {
        Self {
            recipient,
            queued,
            budget,
        }
    }

    pub fn push(&self, frame: &ByteString) -> Result<(), Refused> {
        let len = frame.len();
        if self.queued.fetch_add(len, Relaxed) + len > self.budget {
            self.queued.fetch_sub(len, Relaxed);
            return Err(Refused::Slow);
        }
        self.recipient
            .try_send(Push::Frame(frame.clone()))
            .map_err(|e| {
                self.queued.fetch_sub(len, Relaxed);
                match e {
                    actix::prelude::SendError::Full(_) => Refused::Slow,
                    actix::prelude::SendError::Closed(_) => Refused::Gone,
                }
            })
    }

    /// Asks the session to close. This one message may pass a full mailbox:
    /// a broadcaster sends it once, as it drops the member.
    pub fn close(&self, code: u16, reason: &'static str) {
        self.recipient.do_send(Push::Close(code, reason));
    }
}
