//! The closes the hub starts: each reaches a client that is still sending
//! (RFC 6455 §7.1.1, the server reads until the client's close frame), and
//! a member that never reads is let go, from its room too, within the close
//! timeout.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hub::auth::jwt::TokenKind;
use hub::ws::session::CLOSE_TIMEOUT;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::helpers::{
    Backend, Client, Ending, TestApp, WAIT, connect_at, flood_until_a_member_is_dropped, join,
    leave_by,
};
use crate::on_both_backends;

on_both_backends!(
    a_client_still_flooding_gets_its_rate_limited_frames_and_the_1008_every_time,
    a_client_still_sending_after_an_oversized_frame_gets_the_1009_every_time,
    a_client_still_sending_when_its_token_expires_gets_the_4001_every_time,
    a_member_that_never_reads_leaves_the_room_within_the_close_timeout,
    a_client_that_answers_the_hubs_close_is_let_go_by_its_answer_not_by_the_timeout,
);

/// Trials per test: a lost close frame was seen in about two trials of
/// three, so fifty in a row do not pass by luck.
const TRIALS: usize = 50;

/// What a client that sent `flood` without reading (one message every
/// `pace`, until `stop` if given) then saw.
#[derive(Debug)]
struct Outcome {
    /// The text frames before the end.
    frames: Vec<Value>,
    ending: Ending,
    /// The first error on the socket, if any: a reset where the hub
    /// closed with the client's frames unread (a client would report the
    /// connection as broken, and a reset discards what it has not read).
    error: Option<String>,
}

async fn flood_then_read(
    c: &mut Client,
    flood: Vec<Message>,
    pace: Duration,
    stop: Option<tokio::time::Instant>,
) -> Outcome {
    let mut error = None;
    for (i, message) in flood.into_iter().enumerate() {
        if stop.is_some_and(|stop| tokio::time::Instant::now() >= stop) {
            break;
        }
        if let Err(e) = c.ws.send(message).await {
            error = Some(format!("sending message {i}: {e}"));
            break;
        }
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
    }
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut next = async || {
        tokio::time::timeout_at(deadline, c.ws.next())
            .await
            .expect("the socket ends in time")
    };
    let ending = loop {
        match next().await {
            Some(Ok(Message::Text(t))) => frames.push(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(Some(f)))) => break Ending::Closed(f.code.into()),
            Some(Ok(Message::Close(None))) | None => break Ending::Dropped,
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                error.get_or_insert(format!("reading: {e}"));
                break Ending::Dropped;
            }
        }
    };
    // After the close handshake the hub closes the connection: an end, not
    // a reset.
    if let Ending::Closed(_) = ending {
        match next().await {
            None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {}
            other => {
                error.get_or_insert(format!("after the close frame: {other:?}"));
            }
        }
    }
    Outcome {
        frames,
        ending,
        error,
    }
}

async fn a_client_still_flooding_gets_its_rate_limited_frames_and_the_1008_every_time(
    backend: Backend,
) {
    let app = TestApp::spawn_with(
        backend,
        &[("HUB_RATE_PER_SEC", "1"), ("HUB_RATE_BURST", "3")],
    )
    .await;
    let said = json!({"type": "chat.message", "message": "z".repeat(3000)}).to_string();
    for trial in 0..TRIALS {
        let (mut c, _, _) = join(&app, "/ws/chat/lobby/").await;
        let flood = (0..200).map(|_| Message::text(said.clone())).collect();
        let seen = flood_then_read(&mut c, flood, Duration::ZERO, None).await;
        let limited = seen
            .frames
            .iter()
            .filter(|f| f["type"] == "error" && f["code"] == "rate_limited")
            .count();
        assert!(
            limited > 0 && seen.ending == Ending::Closed(1008) && seen.error.is_none(),
            "trial {trial}: {limited} rate_limited frames, then {:?}, error {:?}",
            seen.ending,
            seen.error
        );
    }
}

async fn a_client_still_sending_after_an_oversized_frame_gets_the_1009_every_time(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let oversized = json!({"type": "chat.message", "message": "x".repeat(70 * 1024)}).to_string();
    let said = json!({"type": "chat.message", "message": "z".repeat(3000)}).to_string();
    for trial in 0..TRIALS {
        let (mut c, _, _) = join(&app, "/ws/chat/lobby/").await;
        let flood = std::iter::once(Message::text(oversized.clone()))
            .chain((0..200).map(|_| Message::text(said.clone())))
            .collect();
        let seen = flood_then_read(&mut c, flood, Duration::ZERO, None).await;
        assert!(
            seen.ending == Ending::Closed(1009) && seen.error.is_none(),
            "trial {trial}: {:?}, error {:?}",
            seen.ending,
            seen.error
        );
    }
}

async fn a_client_still_sending_when_its_token_expires_gets_the_4001_every_time(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("HUB_TOKEN_EXPIRY", "close"),
            ("HUB_RATE_PER_SEC", "100000"),
            ("HUB_RATE_BURST", "100000"),
        ],
    )
    .await;
    let alice = app.create_user("alice", false);
    let said = json!({"type": "chat.message", "message": "z".repeat(3000)}).to_string();
    for trial in 0..TRIALS {
        // `exp` is in whole seconds: minted in the first half of a second,
        // the token lasts half a second to a second, long enough to join.
        // The client sends for longer than that without reading, so the
        // close comes while it sends.
        let into_second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_millis();
        if into_second >= 500 {
            tokio::time::sleep(Duration::from_millis(u64::from(1000 - into_second))).await;
        }
        let token = app.token_expiring_in(alice, 1);
        let (mut c, _, _) = join(&app, &format!("/ws/chat/lobby/?token={token}")).await;
        // 150 messages 10 ms apart: at least 1.5 s of sending, past the
        // expiry. But never longer than half the close timeout past it:
        // the hub waits that long for the client's close, and a client
        // still sending without reading then (on a machine slow enough to
        // stretch the flood) is reset, as it should be.
        let exp = app.codec.verify(&token, TokenKind::Access).unwrap().exp;
        let exp = UNIX_EPOCH + Duration::from_secs(u64::try_from(exp).unwrap());
        let left = exp.duration_since(SystemTime::now()).unwrap_or_default();
        let stop = tokio::time::Instant::now() + left + CLOSE_TIMEOUT / 2;
        let flood = (0..150).map(|_| Message::text(said.clone())).collect();
        let seen = flood_then_read(&mut c, flood, Duration::from_millis(10), Some(stop)).await;
        assert!(
            seen.ending == Ending::Closed(4001) && seen.error.is_none(),
            "trial {trial}: {:?}, error {:?}",
            seen.ending,
            seen.error
        );
    }
}

async fn a_member_that_never_reads_leaves_the_room_within_the_close_timeout(backend: Backend) {
    // The client timeout is the default (45 s), far past the close timeout:
    // a member that is let go only when TCP gives up would fail this.
    let app = TestApp::spawn_with(
        backend,
        &[
            ("HUB_RATE_PER_SEC", "100000"),
            ("HUB_RATE_BURST", "100000"),
            ("HUB_SEND_QUEUE_BYTES", "262144"),
        ],
    )
    .await;
    let request = app
        .request("/ws/chat/lobby/")
        .into_client_request()
        .unwrap();
    let mut stuck = connect_at(app.port, request, Some(4096)).await.unwrap();
    stuck.recv_type("chat.history").await;
    let stuck_name = stuck.recv().await["members"][0]["username"].clone();
    let (mut watcher, _, _) = join(&app, "/ws/chat/lobby/").await;
    let (mut sender, _, _) = join(&app, "/ws/chat/lobby/").await;

    // The room writes to the stuck member until its socket buffers and then
    // its queue are full; the fan-out drops it then. The others read each
    // message, as healthy clients do.
    let (dropped_by, left) =
        flood_until_a_member_is_dropped(&mut sender, &mut watcher, WAIT, app.port).await;
    // The member was dropped before `dropped_by`; its leave follows within
    // the close timeout. The margin is for a loaded machine, and is still
    // far below the client timeout.
    let bound = CLOSE_TIMEOUT + Duration::from_secs(6);
    let (leave, at) = leave_by(&mut watcher, left, dropped_by + bound).await;
    assert_eq!(leave["user"]["username"], stuck_name);
    assert!(
        at.saturating_duration_since(dropped_by) <= bound,
        "presence.leave came {:?} after the drop",
        at.saturating_duration_since(dropped_by)
    );
    // Its connection is gone as well: a reset, or the 1013 if the close
    // frame could still be written.
    let ending = stuck.ending(bound).await;
    assert!(
        matches!(ending, Ending::Closed(1013) | Ending::Dropped),
        "{ending:?}"
    );
    app.until_metric("hub_connections{endpoint=\"chat\"} 2")
        .await;
}

/// The hub closes (here a frame past the limit, 1009); the client answers
/// the close, as every client library does. Its answer ends the session:
/// the connection is closed then, never reset at the close timeout.
async fn a_client_that_answers_the_hubs_close_is_let_go_by_its_answer_not_by_the_timeout(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, &[("HUB_MAX_FRAME_BYTES", "1024")]).await;
    for _ in 0..3 {
        let (mut member, _, _) = join(&app, "/ws/chat/lobby/").await;
        member.send_text(&"x".repeat(2048)).await;
        assert!(matches!(member.ending(WAIT).await, Ending::Closed(1009)));
        // Reading on sends the answer, and then sees the connection end.
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, member.ws.next()).await {}
    }
    app.until_metric("hub_connections{endpoint=\"chat\"} 0")
        .await;
    // Past the close timeout, no connection was reset for want of an answer.
    tokio::time::sleep(CLOSE_TIMEOUT + Duration::from_secs(1)).await;
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("\nhub_close_timeouts_total 0\n"),
        "{metrics}"
    );
}
