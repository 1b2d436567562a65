//! The TCP connection under a session, for the one thing actix cannot do
//! for it: tear the connection down while its client is not reading.
//!
//! A client that stops reading fills the server's socket buffer; actix-http
//! then stops polling the response, so the session is not polled either and
//! cannot even write its close frame. Only the socket itself can end that,
//! before the kernel's TCP user timeout would.

use std::net::Shutdown;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

/// Recorded for every connection when it is accepted (`on_connect`), and
/// read by the session from the request that opened it.
#[derive(Debug, Clone, Copy)]
pub struct Connection(RawFd);

impl Connection {
    pub fn of(stream: &impl AsRawFd) -> Self {
        Self(stream.as_raw_fd())
    }

    /// Resets the connection: whatever is queued for the client is
    /// discarded and actix-http, woken by the socket's hang-up, ends the
    /// connection and drops the session.
    ///
    /// Only a session that is still alive may call this, on its own worker
    /// thread: see the safety note.
    pub fn abort(&self) {
        // SAFETY: the descriptor belongs to the actix-http dispatcher that
        // owns the response body, which owns the session's context, which
        // owns the session. The caller holds the session (directly, or
        // through a `Weak` it upgraded) on the worker thread that runs the
        // dispatcher, so the dispatcher has not been dropped and the
        // descriptor is open and still this connection's: it is closed only
        // by that drop, which runs on this thread and not while the caller
        // runs.
        let fd = unsafe { BorrowedFd::borrow_raw(self.0) };
        let socket = socket2::SockRef::from(&fd);
        // A zero linger makes the final close a reset instead of a FIN
        // queued behind data the client will never read.
        let reset = socket
            .set_linger(Some(Duration::ZERO))
            .and_then(|()| socket.shutdown(Shutdown::Both));
        if let Err(err) = reset {
            // Already reset by the peer, most likely; the connection ends
            // either way, at the latest at the TCP user timeout.
            tracing::debug!(error = %err, "could not reset a connection");
        }
    }
}
