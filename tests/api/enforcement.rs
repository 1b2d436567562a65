//! Rules the hub enforces that a one-line slip would quietly switch off,
//! each driven from outside the way an abusive client would meet it: a
//! token at the very second it expires, a client flooding at twice the
//! rate for long, and a flood of pings.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hub::auth::jwt::now_secs;
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::helpers::{Backend, Client, TestApp, join};
use crate::on_both_backends;

on_both_backends!(
    a_token_is_refused_in_the_second_it_expires,
    a_client_sending_at_twice_the_rate_for_long_is_closed_with_1008,
    a_ping_flood_is_closed_with_1008_and_a_lone_ping_gets_its_pong,
);

async fn a_token_is_refused_in_the_second_it_expires(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    // simplejwt refuses a token whose `exp` is now (PyJWT: `exp <= now`).
    // An attempt counts only when it began and ended in one second, so
    // the hub checked it at `now == exp`.
    for _ in 0..100 {
        let before = now_secs();
        let token = app.token_expiring_in(alice, 0);
        let request = app.request(&format!("/ws/analytics/?token={token}"));
        let answer = app.try_connect(request, None).await;
        if now_secs() != before {
            continue;
        }
        let refused = answer.err().expect("a token at its exp second is refused");
        let tokio_tungstenite::tungstenite::Error::Http(response) = refused else {
            panic!("unexpected handshake error: {refused:?}");
        };
        assert_eq!(response.status().as_u16(), 401);
        let body: serde_json::Value =
            serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
        assert_eq!(body["error"], "token_expired", "{body}");
        return;
    }
    panic!("no attempt fitted in one second");
}

/// How a socket ended while a client kept writing to it.
async fn closed_while_sending(
    client: &mut Client,
    frame: impl Fn() -> Message,
    every: Duration,
    within: Duration,
) -> Option<u16> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if client.ws.send(frame()).await.is_err() {
            return None;
        }
        let pause = Instant::now() + every;
        while let Ok(next) = tokio::time::timeout_at(pause, client.ws.next()).await {
            match next {
                Some(Ok(Message::Close(close))) => {
                    return close.map(|f: CloseFrame| f.code.into());
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }
    panic!("still open after {within:?} of sending");
}

async fn a_client_sending_at_twice_the_rate_for_long_is_closed_with_1008(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[("HUB_RATE_PER_SEC", "10"), ("HUB_RATE_BURST", "10")],
    )
    .await;
    let (mut c, _, _) = join(&app, "/ws/chat/lobby/").await;
    // Twenty a second against ten: half are refused, the bucket never
    // fills again, so the refusals add up to a burst's worth and the
    // socket is closed (about two seconds in). Ten seconds is the bound.
    let message = || {
        Message::Text(
            json!({"type": "chat.message", "message": "again"})
                .to_string()
                .into(),
        )
    };
    let code = closed_while_sending(
        &mut c,
        message,
        Duration::from_millis(50),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(code, Some(1008));
}

async fn a_ping_flood_is_closed_with_1008_and_a_lone_ping_gets_its_pong(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[("HUB_RATE_PER_SEC", "10"), ("HUB_RATE_BURST", "10")],
    )
    .await;
    let (mut c, _, _) = join(&app, "/ws/chat/lobby/").await;
    c.ws.send(Message::Ping(b"one".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(crate::helpers::WAIT, async {
        loop {
            match c.ws.next().await {
                Some(Ok(Message::Pong(payload))) => return payload,
                Some(Ok(_)) => {}
                other => panic!("expected a pong, got {other:?}"),
            }
        }
    })
    .await
    .expect("a pong in time");
    assert_eq!(&pong[..], b"one");
    // Pings count toward the rate like any message: a flood of them at
    // forty a second is closed like a flood of messages.
    let ping = || Message::Ping(b"flood".to_vec().into());
    let code = closed_while_sending(
        &mut c,
        ping,
        Duration::from_millis(25),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(code, Some(1008));
}
