//! Per-connection bounds: frame size, message size, rate, bad input, slow and
//! dead clients.

use std::time::Duration;

use futures_util::SinkExt;
use hub::ws::session::CLOSE_TIMEOUT;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::helpers::{Backend, Ending, HubProcess, TestApp, connect_at, join, join_at};
use crate::on_both_backends;

on_both_backends!(
    a_frame_over_the_limit_is_closed_with_1009,
    fragments_count_toward_the_frame_limit,
    a_long_chat_message_gets_too_large_and_the_socket_stays,
    bad_input_gets_error_frames_and_the_socket_stays,
    a_flooding_client_is_rate_limited_then_closed_with_1008,
    a_member_that_never_reads_is_dropped_while_the_others_keep_receiving,
    a_client_that_never_answers_pings_is_removed_from_its_room,
    the_rate_limit_counts_whole_messages_and_never_splices_fragments,
);

async fn a_frame_over_the_limit_is_closed_with_1009(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (mut c, _, _) = join(&app, "/ws/chat/lobby/").await;
    let big = json!({"type": "chat.message", "message": "x".repeat(70 * 1024)}).to_string();
    c.send_text(&big).await;
    assert_eq!(c.ending(Duration::from_secs(5)).await, Ending::Closed(1009));
}

async fn fragments_count_toward_the_frame_limit(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("HUB_RATE_BURST", "100")]).await;
    let (mut c, _, _) = join(&app, "/ws/chat/lobby/").await;
    // A message in three fragments arrives whole.
    let whole = json!({"type": "chat.message", "message": "in pieces"}).to_string();
    let (a, rest) = whole.split_at(10);
    let (b, z) = rest.split_at(10);
    c.ws.send(Message::Frame(Frame::message(
        a.as_bytes().to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .unwrap();
    c.ws.send(Message::Frame(Frame::message(
        b.as_bytes().to_vec(),
        OpCode::Data(Data::Continue),
        false,
    )))
    .await
    .unwrap();
    c.ws.send(Message::Frame(Frame::message(
        z.as_bytes().to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .unwrap();
    assert_eq!(c.recv_type("chat.message").await["message"], "in pieces");
    // Each fragment is under the limit; together they are over it.
    let chunk = vec![b'x'; 40 * 1024];
    c.ws.send(Message::Frame(Frame::message(
        chunk.clone(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .unwrap();
    c.ws.send(Message::Frame(Frame::message(
        chunk,
        OpCode::Data(Data::Continue),
        false,
    )))
    .await
    .unwrap();
    assert_eq!(c.ending(Duration::from_secs(5)).await, Ending::Closed(1009));
}

async fn a_long_chat_message_gets_too_large_and_the_socket_stays(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (mut c, _, _) = join(&app, "/ws/chat/lobby/").await;
    c.send(json!({"type": "chat.message", "ref": "big", "message": "é".repeat(4097)}))
        .await;
    let err = c.recv().await;
    assert_eq!(
        (
            err["type"].as_str(),
            err["code"].as_str(),
            err["ref"].as_str()
        ),
        (Some("error"), Some("too_large"), Some("big"))
    );
    c.send(json!({"type": "chat.message", "message": "é".repeat(4096)}))
        .await;
    assert_eq!(
        c.recv_type("chat.message").await["message"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        4096
    );
}

async fn bad_input_gets_error_frames_and_the_socket_stays(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (mut c, _, _) = join(&app, "/ws/chat/lobby/").await;
    let cases = [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        (
            r#"{"type": "chat.shout", "ref": 1, "message": "hi"}"#,
            "unknown_type",
        ),
        (r#"{"type": "chat.message", "ref": "r2"}"#, "validation"),
        (r#"{"type": "chat.message", "message": 42}"#, "validation"),
        (
            r#"{"type": "chat.message", "message": "   "}"#,
            "validation",
        ),
        (r#"{"type": "auth.refresh", "token": "x"}"#, "forbidden"),
    ];
    for (frame, code) in cases {
        c.send_text(frame).await;
        let err = c.recv().await;
        assert_eq!(err["type"], "error", "{frame}");
        assert_eq!(err["code"], code, "{frame}");
    }
    c.ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(c.recv().await["code"], "invalid_json");
    c.send(json!({"type": "chat.shout", "ref": "echo-me"}))
        .await;
    assert_eq!(c.recv().await["ref"], "echo-me");
    c.echo("still here").await;
}

async fn a_flooding_client_is_rate_limited_then_closed_with_1008(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[("HUB_RATE_PER_SEC", "1"), ("HUB_RATE_BURST", "3")],
    )
    .await;
    let (mut c, _, _) = join(&app, "/ws/chat/lobby/").await;
    for i in 0..3 {
        c.say(&format!("m{i}")).await;
    }
    c.say("one too many").await;
    let mut seen_limited = false;
    for _ in 0..4 {
        let frame = c.recv().await;
        seen_limited |= frame["type"] == "error" && frame["code"] == "rate_limited";
    }
    assert!(seen_limited, "the fourth frame in a second is refused");
    for i in 0..10 {
        if c.ws
            .send(Message::text(format!(r#"{{"message":"flood {i}"}}"#)))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(c.ending(Duration::from_secs(5)).await, Ending::Closed(1008));
}

async fn a_member_that_never_reads_is_dropped_while_the_others_keep_receiving(backend: Backend) {
    // The TestApp provides the database; the hub under test is a process of
    // its own, so its memory is measured alone.
    let app = TestApp::spawn(backend).await;
    let hub = HubProcess::serve(
        &app.database_url,
        &[
            ("HUB_RATE_PER_SEC", "100000"),
            ("HUB_RATE_BURST", "100000"),
            ("HUB_SEND_QUEUE_BYTES", "262144"),
            ("HUB_HEARTBEAT_SECS", "1"),
            // Long enough that the stuck member is dropped for not keeping
            // up, not for missing its pongs.
            ("HUB_CLIENT_TIMEOUT_SECS", "20"),
        ],
    );
    let request = format!("ws://127.0.0.1:{}/ws/chat/lobby/", hub.port)
        .into_client_request()
        .unwrap();
    let mut stuck = connect_at(hub.port, request, Some(4096)).await.unwrap();
    let stuck_name = {
        stuck.recv_type("chat.history").await;
        stuck.recv().await["members"][0]["username"].clone()
    };
    let (reader, _, _) = join_at(hub.port, "/ws/chat/lobby/").await;
    let (sender, _, _) = join_at(hub.port, "/ws/chat/lobby/").await;
    let before = hub.resident_kib();

    // 64 MiB through the room: far more than the stuck member's queue budget
    // and socket buffers can hold, and twice what memory may grow by. The other two keep up (at most 16 messages
    // behind), as healthy clients do; the sender hears its own messages too.
    let body = "y".repeat(4000);
    let total = 16_384;
    let mut healthy = [(reader, 0), (sender, 0)];
    let mut left = None;
    for sent in 1..=total + 16 {
        if sent <= total {
            healthy[1].0.say(&body).await;
        }
        for (client, got) in healthy.iter_mut() {
            while sent.min(total) - *got > 16 || (sent > total && *got < total) {
                let frame = client.recv_within(Duration::from_secs(10)).await;
                match frame["type"].as_str() {
                    Some("chat.message") => *got += 1,
                    Some("presence.leave") => left = Some(frame["user"]["username"].clone()),
                    Some("presence.join" | "presence") => {}
                    _ => panic!("unexpected frame after {got} messages: {frame}"),
                }
            }
        }
    }
    let [(mut reader, _), _] = healthy;
    // 64 MiB is far past what the stuck member's queue and buffers hold, so
    // it has been dropped by now; its leave follows within the close
    // timeout (the margin is for a loaded machine).
    let metrics = hub.metrics().await;
    assert!(
        metrics.contains("hub_slow_consumers_closed_total 1"),
        "{metrics}"
    );
    let bound = CLOSE_TIMEOUT + Duration::from_secs(6);
    let left = match left {
        Some(name) => name,
        None => loop {
            let frame = reader.recv_within(bound).await;
            if frame["type"] == "presence.leave" {
                break frame["user"]["username"].clone();
            }
        },
    };
    assert_eq!(
        left, stuck_name,
        "the stuck member was dropped from the room"
    );
    let grown = hub.resident_kib().saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "the server's memory grew by {grown} KiB while one member never read"
    );

    // Its connection was torn down within the close timeout too: a close
    // frame if one could still be written, a reset otherwise.
    let ending = stuck.ending(bound).await;
    assert!(
        matches!(ending, Ending::Closed(1013) | Ending::Dropped),
        "{ending:?}"
    );
}

async fn a_client_that_never_answers_pings_is_removed_from_its_room(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("HUB_HEARTBEAT_SECS", "1"),
            ("HUB_CLIENT_TIMEOUT_SECS", "2"),
        ],
    )
    .await;
    let (mut watcher, _, _) = join(&app, "/ws/chat/lobby/").await;
    // Never polled again: it cannot answer pings, as a vanished laptop cannot.
    let (dead, _, _) = join(&app, "/ws/chat/lobby/").await;
    let joined = watcher.recv_type("presence.join").await["user"]["username"].clone();
    let left = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            let frame = watcher.recv_within(Duration::from_secs(8)).await;
            if frame["type"] == "presence.leave" {
                return frame["user"]["username"].clone();
            }
        }
    })
    .await
    .expect("the dead client leaves within the client timeout plus a heartbeat");
    assert_eq!(left, joined);
    assert_eq!(
        app.metrics()
            .await
            .lines()
            .find(|l| l.starts_with("hub_connections{endpoint=\"chat\"}")),
        Some("hub_connections{endpoint=\"chat\"} 1")
    );
    drop(dead);
}

/// Sends `text` in three fragments.
async fn send_in_fragments(c: &mut crate::helpers::Client, text: &str) {
    let (a, rest) = text.split_at(text.len() / 3);
    let (b, z) = rest.split_at(rest.len() / 2);
    for (part, opcode, fin) in [
        (a, OpCode::Data(Data::Text), false),
        (b, OpCode::Data(Data::Continue), false),
        (z, OpCode::Data(Data::Continue), true),
    ] {
        c.ws.send(Message::Frame(Frame::message(
            part.as_bytes().to_vec(),
            opcode,
            fin,
        )))
        .await
        .unwrap();
    }
}

async fn the_rate_limit_counts_whole_messages_and_never_splices_fragments(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[("HUB_RATE_PER_SEC", "0.1"), ("HUB_RATE_BURST", "2")],
    )
    .await;
    let (mut c, _, _) = join(&app, "/ws/chat/lobby/").await;
    for text in ["first in pieces", "second in pieces"] {
        let frame = json!({"type": "chat.message", "ref": text, "message": text}).to_string();
        send_in_fragments(&mut c, &frame).await;
        assert_eq!(c.recv_type("chat.message").await["message"], text);
    }
    // The bucket is empty: the whole third message is refused, once, by
    // its ref; nothing of it is spliced into another message.
    let third = json!({"type": "chat.message", "ref": "third", "message": "third in pieces"});
    send_in_fragments(&mut c, &third.to_string()).await;
    let refused = c.recv().await;
    assert_eq!(
        (refused["code"].as_str(), refused["ref"].as_str()),
        (Some("rate_limited"), Some("third"))
    );
    c.silent_for(Duration::from_millis(500)).await;
}
