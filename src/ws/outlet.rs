//! How a broadcaster reaches one session (through [`super::fanout`])
//! without ever waiting on it, allocating per recipient, or queueing without
//! bound.
//!
//! Each session owns an outbox: a queue of frames shared by reference count,
//! with a byte budget. Broadcasters hold the [`Outlet`] end and push; the
//! session's context polls the [`Inbox`] end as a stream. A session whose
//! client stops reading is no longer polled by actix-http, so its inbox stops
//! draining; past the budget a push fails and the broadcaster drops that
//! member instead of growing the server's memory.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytestring::ByteString;
use futures_util::Stream;
use tokio::sync::Notify;

use crate::ws::close::CloseCode;

/// What a session takes out of its outbox.
pub enum Delivery {
    /// A text frame, serialised once and shared by every recipient.
    Frame(ByteString),
    /// Close with this code and reason.
    Close(CloseCode, &'static str),
}

/// Why a push did not go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The member is not keeping up: its byte budget is spent.
    Slow,
    /// The session has stopped, or is closing.
    Gone,
}

struct State {
    frames: VecDeque<ByteString>,
    bytes: usize,
    /// A close a broadcaster asked for, not yet taken by the session.
    close: Option<(CloseCode, &'static str)>,
    /// No frame is taken any more: a close was asked (by a broadcaster or
    /// the session itself), or the session has stopped.
    gone: bool,
    waker: Option<Waker>,
}

struct Outbox {
    budget: usize,
    state: Mutex<State>,
    /// Told when `gone` is set, for the session's close watchdog, which
    /// runs apart from the session because a session whose client stopped
    /// reading is not polled at all.
    ended: Notify,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The broadcasters' end: cheap to clone.
#[derive(Clone)]
pub struct Outlet(Arc<Outbox>);

/// The session's end, polled by its context as a stream.
pub struct Inbox(Arc<Outbox>);

/// A new outbox holding at most `budget` bytes of frames.
pub fn outbox(budget: usize) -> (Outlet, Inbox) {
    let shared = Arc::new(Outbox {
        budget,
        state: Mutex::new(State {
            frames: VecDeque::new(),
            bytes: 0,
            close: None,
            gone: false,
            waker: None,
        }),
        ended: Notify::new(),
    });
    (Outlet(shared.clone()), Inbox(shared))
}

impl Outlet {
    pub fn push(&self, frame: &ByteString) -> Result<(), Refused> {
        let waker = {
            let mut state = self.0.lock();
            if state.gone || state.close.is_some() {
                return Err(Refused::Gone);
            }
            if state.bytes + frame.len() > self.0.budget {
                return Err(Refused::Slow);
            }
            state.bytes += frame.len();
            state.frames.push_back(frame.clone());
            state.waker.take()
        };
        // Woken outside the lock, and only when the session was waiting.
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Asks the session to close; frames still queued are not sent.
    pub fn close(&self, code: CloseCode, reason: &'static str) {
        let waker = {
            let mut state = self.0.lock();
            if state.gone {
                return;
            }
            state.close = Some((code, reason));
            state.end();
            state.waker.take()
        };
        self.0.ended.notify_waiters();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The session is closing by itself: broadcasters' frames are refused
    /// from now on, and those still queued are not sent.
    pub fn closing(&self) {
        self.0.lock().end();
        self.0.ended.notify_waiters();
    }

    /// Resolves once the session takes no more frames: a close was asked
    /// or the session stopped.
    pub async fn ended(&self) {
        loop {
            let mut told = std::pin::pin!(self.0.ended.notified());
            // Registered before the check, so a wake between the two is kept.
            told.as_mut().enable();
            if self.0.lock().gone {
                return;
            }
            told.await;
        }
    }
}

impl State {
    fn end(&mut self) {
        self.gone = true;
        self.frames.clear();
        self.bytes = 0;
    }
}

impl Stream for Inbox {
    type Item = Delivery;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let mut state = self.0.lock();
        if let Some((code, reason)) = state.close.take() {
            return Poll::Ready(Some(Delivery::Close(code, reason)));
        }
        if let Some(frame) = state.frames.pop_front() {
            state.bytes -= frame.len();
            return Poll::Ready(Some(Delivery::Frame(frame)));
        }
        match &state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// A stopped session takes nothing more: pushes after this are `Gone`.
impl Drop for Inbox {
    fn drop(&mut self) {
        {
            let mut state = self.0.lock();
            state.end();
            state.waker = None;
        }
        self.0.ended.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> ByteString {
        "x".repeat(n).into()
    }

    fn next(inbox: &mut Inbox) -> Poll<Option<Delivery>> {
        Pin::new(inbox).poll_next(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn pushes_past_the_budget_are_refused_as_slow_and_draining_makes_room() {
        let (outlet, mut inbox) = outbox(10);
        assert_eq!(outlet.push(&frame(6)), Ok(()));
        assert_eq!(outlet.push(&frame(6)), Err(Refused::Slow));
        assert!(matches!(next(&mut inbox), Poll::Ready(Some(Delivery::Frame(f))) if f.len() == 6));
        assert!(next(&mut inbox).is_pending());
        assert_eq!(outlet.push(&frame(10)), Ok(()));
    }

    #[test]
    fn every_recipient_gets_the_same_bytes_not_a_copy() {
        let frame: ByteString = String::from(r#"{"type":"chat.message","message":"hi"}"#).into();
        let (a, mut inbox_a) = outbox(100);
        let (b, mut inbox_b) = outbox(100);
        a.push(&frame).unwrap();
        b.push(&frame).unwrap();
        for inbox in [&mut inbox_a, &mut inbox_b] {
            let Poll::Ready(Some(Delivery::Frame(got))) = next(inbox) else {
                panic!("a frame was queued");
            };
            assert_eq!(got.as_ptr(), frame.as_ptr());
        }
    }

    #[test]
    fn a_close_jumps_the_queue_and_a_dropped_inbox_is_gone() {
        let (outlet, mut inbox) = outbox(100);
        outlet.push(&frame(5)).unwrap();
        outlet.close(CloseCode::TryAgainLater, "slow");
        assert!(matches!(
            next(&mut inbox),
            Poll::Ready(Some(Delivery::Close(CloseCode::TryAgainLater, _)))
        ));
        assert_eq!(outlet.push(&frame(1)), Err(Refused::Gone));
        let (outlet, inbox) = outbox(100);
        drop(inbox);
        assert_eq!(outlet.push(&frame(1)), Err(Refused::Gone));
    }

    #[test]
    fn a_session_closing_by_itself_takes_no_more_frames_and_gets_no_close() {
        let (outlet, mut inbox) = outbox(100);
        outlet.push(&frame(5)).unwrap();
        outlet.closing();
        assert_eq!(outlet.push(&frame(1)), Err(Refused::Gone));
        outlet.close(CloseCode::TryAgainLater, "slow");
        assert!(next(&mut inbox).is_pending());
    }

    #[tokio::test]
    async fn the_end_is_heard_whether_it_came_before_or_after_the_wait() {
        let (outlet, _inbox) = outbox(100);
        outlet.close(CloseCode::Restart, "restart");
        outlet.ended().await;
        let (outlet, inbox) = outbox(100);
        let waiting = tokio::spawn({
            let outlet = outlet.clone();
            async move { outlet.ended().await }
        });
        tokio::task::yield_now().await;
        drop(inbox);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the end wakes the waiter")
            .unwrap();
    }

    /// A waker that records that it was woken.
    struct Flag(std::sync::atomic::AtomicBool);

    impl std::task::Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_push_wakes_the_task_that_polled_last() {
        let (outlet, mut inbox) = outbox(100);
        let first = Arc::new(Flag(false.into()));
        let last = Arc::new(Flag(false.into()));
        for flag in [&first, &last] {
            let waker = Waker::from(flag.clone());
            let polled = Pin::new(&mut inbox).poll_next(&mut Context::from_waker(&waker));
            assert!(polled.is_pending());
        }
        outlet.push(&frame(1)).unwrap();
        let woken = |f: &Arc<Flag>| f.0.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            woken(&last),
            "the waker of the last poll is the one to wake"
        );
        assert!(!woken(&first));
    }
}
