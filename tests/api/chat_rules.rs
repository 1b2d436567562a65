//! Chat rules at their edges: refused text, messages racing a close or a
//! room's restart, presence per person, refs, and history that must stay
//! exact (and small enough) whatever the room went through.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{Backend, Client, Ending, TestApp, WAIT, join};
use crate::on_both_backends;

on_both_backends!(
    a_control_character_in_chat_is_refused_to_its_sender_alone_and_others_keep_talking,
    every_message_read_before_a_close_frame_is_stored_and_broadcast,
    a_room_made_again_while_its_last_instance_was_still_storing_loses_nothing,
    a_staff_badge_follows_the_user_within_the_recheck_interval,
    presence_counts_people_not_tabs,
    a_room_that_keeps_no_history_still_reports_a_gap_after_it_restarts,
    long_messages_in_history_never_close_a_joiner,
    a_room_is_forgotten_once_its_members_leave_even_after_it_was_crowded,
);

/// No per-socket rate limit gets in the way of a burst.
const UNLIMITED: [(&str, &str); 2] = [("HUB_RATE_PER_SEC", "100000"), ("HUB_RATE_BURST", "100000")];

/// Sends a close frame (1000) at once, reading nothing first.
async fn send_close(c: &mut Client) {
    c.ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
    .await
    .expect("send close");
}

/// Closes with 1000 and waits for the server's answer, reading past
/// whatever was still on its way (so the client never resets the socket).
async fn leave(mut c: Client) {
    send_close(&mut c).await;
    assert_eq!(c.ending(WAIT).await, Ending::Closed(1000));
}

/// The next text frame exactly as sent, for checking its size.
async fn recv_raw(c: &mut Client) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, c.ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

fn bodies(history: &Value) -> Vec<String> {
    history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["message"].as_str().expect("a body").to_owned())
        .collect()
}

async fn a_control_character_in_chat_is_refused_to_its_sender_alone_and_others_keep_talking(
    backend: Backend,
) {
    let mut settings = UNLIMITED.to_vec();
    settings.push(("HUB_HISTORY_LEN", "100"));
    let app = TestApp::spawn_with(backend, &settings).await;
    let (mut sender, _, _) = join(&app, "/ws/chat/lobby/").await;
    let (mut other, _, _) = join(&app, "/ws/chat/lobby/").await;
    assert_eq!(sender.recv().await["type"], "presence.join");

    let said: Vec<String> = (0..50).map(|i| format!("m{i:02}")).collect();
    for text in &said[..25] {
        other.say(text).await;
    }
    sender
        .send_text(r#"{"type":"chat.message","ref":"bad","message":"a\u0000b"}"#)
        .await;
    for text in &said[25..] {
        other.say(text).await;
    }

    // The other member hears its 50 messages in order, and nothing else.
    for text in &said {
        let m = other.recv().await;
        assert_eq!(
            (m["type"].as_str(), m["message"].as_str()),
            (Some("chat.message"), Some(text.as_str()))
        );
    }
    other.silent_for(Duration::from_millis(500)).await;

    // The sender is told, once, and hears the other's 50 messages too.
    let (mut errors, mut heard) = (Vec::new(), Vec::new());
    while errors.is_empty() || heard.len() < said.len() {
        let frame = sender.recv().await;
        match frame["type"].as_str() {
            Some("error") => errors.push(frame),
            Some("chat.message") => heard.push(frame["message"].as_str().unwrap().to_owned()),
            _ => panic!("unexpected frame {frame}"),
        }
    }
    assert_eq!(heard, said);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (errors[0]["ref"].as_str(), errors[0]["code"].as_str()),
        (Some("bad"), Some("validation"))
    );
    let detail = errors[0]["detail"].as_str().unwrap();
    assert!(detail.contains("U+0000"), "{detail}");

    // Tab and newline are ordinary text.
    let typed = "tab\there\nand a newline";
    sender
        .send(json!({"type": "chat.message", "ref": "ok", "message": typed}))
        .await;
    let mine = sender.recv().await;
    assert_eq!(
        (mine["ref"].as_str(), mine["message"].as_str()),
        (Some("ok"), Some(typed))
    );
    assert_eq!(other.recv().await["message"], typed);

    // Everything said was stored: a fresh room reads it all back.
    leave(sender).await;
    leave(other).await;
    app.until_metric("hub_rooms 0").await;
    let (_late, history, _) = join(&app, "/ws/chat/lobby/?since=0").await;
    let mut expected = said.clone();
    expected.push(typed.to_owned());
    assert_eq!(bodies(&history), expected);
    assert_eq!(history["truncated"], false);
}

async fn every_message_read_before_a_close_frame_is_stored_and_broadcast(backend: Backend) {
    let app = TestApp::spawn_with(backend, &UNLIMITED).await;
    let (mut listener, _, _) = join(&app, "/ws/chat/lobby/").await;
    for trial in 0..10 {
        let (mut member, _, _) = join(&app, "/ws/chat/lobby/").await;
        let joined = listener.recv().await;
        assert_eq!(joined["type"], "presence.join", "trial {trial}");
        let name = joined["user"]["username"].clone();

        let said: Vec<String> = (0..30).map(|i| format!("t{trial}-{i:02}")).collect();
        for text in &said {
            member.say(text).await;
        }
        send_close(&mut member).await;
        let closing = tokio::spawn(async move { member.ending(Duration::from_secs(10)).await });

        // Whatever order they come in, all 31 frames come: then the order is checked.
        let mut heard = Vec::new();
        while heard.len() <= said.len() {
            let frame = listener.recv().await;
            heard.push(match frame["type"].as_str() {
                Some("chat.message") => frame["message"].as_str().unwrap().to_owned(),
                Some("presence.leave") if frame["user"]["username"] == name => "(leave)".into(),
                _ => panic!("trial {trial}: unexpected frame {frame}"),
            });
        }
        let mut expected = said.clone();
        expected.push("(leave)".into());
        assert_eq!(
            heard, expected,
            "trial {trial}: every message, then the leave"
        );
        assert_eq!(closing.await.unwrap(), Ending::Closed(1000));
    }
}

async fn a_room_made_again_while_its_last_instance_was_still_storing_loses_nothing(
    backend: Backend,
) {
    let mut settings = UNLIMITED.to_vec();
    settings.push(("HUB_HISTORY_LEN", "100"));
    let app = TestApp::spawn_with(backend, &settings).await;
    for trial in 0..10 {
        let room = format!("r{trial}");
        let path = format!("/ws/chat/{room}/");
        let (mut a, _, _) = join(&app, &path).await;
        let said: Vec<String> = (0..40).map(|i| format!("{room}-{i:02}")).collect();
        for text in &said {
            a.say(text).await;
        }
        send_close(&mut a).await;
        // A reads what comes back only after its close was sent: errors
        // there would say why a message was not kept.
        let closing = tokio::spawn(async move { errors_until_closed(&mut a).await });

        // At once, no waiting: what B is shown, stored or live, is all of it.
        let mut b = app.connect(&path).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        let (mut seen, mut heard, mut kinds) = (HashSet::new(), Vec::new(), Vec::new());
        while heard.len() < said.len() {
            let Ok(Some(Ok(Message::Text(text)))) =
                tokio::time::timeout_at(deadline, b.ws.next()).await
            else {
                let bodies: Vec<_> = heard.iter().map(|(_, m): &(i64, String)| m).collect();
                let stored = app.db.run_here(|c| hub::db::chat::recent(c, &room, 100));
                let stored = stored.map(|rows| rows.len());
                panic!(
                    "trial {trial}: B heard {} of 40 within 5 s: {bodies:?}; frames {kinds:?}; \
                     stored in the database now: {stored:?}; A was told {:?}",
                    heard.len(),
                    closing.await.unwrap()
                );
            };
            let frame: Value = serde_json::from_str(&text).unwrap();
            kinds.push(frame["type"].as_str().unwrap().to_owned());
            let messages = match frame["type"].as_str() {
                Some("chat.history") => frame["messages"].as_array().unwrap().clone(),
                Some("chat.message") => vec![frame],
                _ => continue,
            };
            for m in messages {
                if seen.insert(m["id"].as_i64().unwrap()) {
                    heard.push((
                        m["id"].as_i64().unwrap(),
                        m["message"].as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
        let texts: Vec<_> = heard.iter().map(|(_, m)| m.clone()).collect();
        assert_eq!(texts, said, "trial {trial}");
        assert!(heard.windows(2).all(|w| w[0].0 < w[1].0), "trial {trial}");

        let first = heard[0].0;
        let (_b2, history, _) = join(&app, &format!("{path}?since={}", first - 1)).await;
        assert_eq!(bodies(&history), said, "trial {trial}");
        assert_eq!(history["truncated"], false, "trial {trial}");
        assert_eq!(closing.await.unwrap(), Vec::<Value>::new(), "trial {trial}");
    }
}

/// Reads until the server answers a close, keeping the error frames.
async fn errors_until_closed(c: &mut Client) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut errors = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, c.ws.next())
            .await
            .expect("the socket ends in time")
        {
            Some(Ok(Message::Text(t))) => {
                let frame: Value = serde_json::from_str(&t).unwrap();
                if frame["type"] == "error" {
                    errors.push(frame);
                }
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return errors,
            Some(Ok(_)) => {}
        }
    }
}

/// The presence entry of `username` in a `presence` frame.
fn listed(presence: &Value, username: &str) -> Value {
    assert_eq!(presence["type"], "presence", "{presence}");
    let found: Vec<&Value> = presence["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["username"] == username)
        .collect();
    assert_eq!(found.len(), 1, "{username} once in {presence}");
    found[0].clone()
}

async fn a_staff_badge_follows_the_user_within_the_recheck_interval(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("HUB_USER_RECHECK_SECS", "1")]).await;
    let sam = app.create_user("sam", true);
    let bob = app.create_user("bob", false);
    let (mut s, _, _) = join(&app, &format!("/ws/chat/lobby/?token={}", app.token(sam))).await;
    let (mut b, _, _) = join(&app, &format!("/ws/chat/lobby/?token={}", app.token(bob))).await;
    let (mut guest, _, before) = join(&app, "/ws/chat/lobby/").await;
    assert_eq!(listed(&before, "sam")["is_staff"], true);
    assert_eq!(listed(&before, "bob")["is_staff"], false);

    app.cli(&["user", "set-staff", "sam", "false"]);
    app.cli(&["user", "set-staff", "bob", "true"]);

    let mut updates = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while updates.len() < 2 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = guest.recv_within(left).await;
        assert_eq!(frame["type"], "presence.update", "{frame}");
        updates.push(frame["user"].clone());
    }
    updates.sort_by_key(|u| u["username"].as_str().unwrap().to_owned());
    assert_eq!(
        updates,
        [
            json!({"id": bob, "username": "bob", "is_staff": true}),
            json!({"id": sam, "username": "sam", "is_staff": false}),
        ]
    );

    for (member, name, staff) in [(&mut s, "sam", false), (&mut b, "bob", true)] {
        member.say(&format!("{name} again")).await;
        let m = guest.recv_type("chat.message").await;
        assert_eq!(m["message"], format!("{name} again"));
        assert_eq!(m["user"]["is_staff"], staff, "{m}");
    }

    let (_fresh, _, after) = join(&app, "/ws/chat/lobby/").await;
    assert_eq!(listed(&after, "sam")["is_staff"], false);
    assert_eq!(listed(&after, "bob")["is_staff"], true);
}

async fn presence_counts_people_not_tabs(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("HUB_PRESENCE_LIMIT", "3")]).await;
    let alice = app.create_user("alice", false);
    let mut tabs = Vec::new();
    for _ in 0..4 {
        let path = format!("/ws/chat/lobby/?token={}", app.token(alice));
        tabs.push(join(&app, &path).await.0);
    }
    let (mut guest, _, greeting) = join(&app, "/ws/chat/lobby/").await;
    assert_eq!(
        listed(&greeting, "alice"),
        json!({"id": alice, "username": "alice", "is_staff": false})
    );
    assert_eq!(
        greeting["members"].as_array().unwrap().len(),
        2,
        "{greeting}"
    );

    // Three of her four tabs go: she is still here.
    let last = tabs.pop().unwrap();
    for tab in tabs {
        leave(tab).await;
    }
    app.until_metric("hub_connections{endpoint=\"chat\"} 2")
        .await;
    guest.silent_for(Duration::from_millis(500)).await;
    leave(last).await;
    let left = guest.recv().await;
    assert_eq!(
        (left["type"].as_str(), &left["user"]["username"]),
        (Some("presence.leave"), &json!("alice"))
    );
    guest.silent_for(Duration::from_millis(500)).await;

    // Four people (one socket each) are more than three.
    let mut others = Vec::new();
    for _ in 0..2 {
        let (c, _, greeting) = join(&app, "/ws/chat/lobby/").await;
        assert_eq!(greeting["type"], "presence");
        others.push(c);
    }
    let (mut joiner, _, greeting) = join(&app, "/ws/chat/lobby/").await;
    assert_eq!(
        greeting,
        json!({"type": "presence.count", "room": "lobby", "count": 4})
    );
    joiner.silent_for(Duration::from_millis(1500)).await;
}

async fn replies_echo_the_ref_the_client_sent(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[("HUB_RATE_PER_SEC", "1"), ("HUB_RATE_BURST", "2")],
    )
    .await;
    let (mut a, _, _) = join(&app, "/ws/chat/lobby/").await;
    let (mut b, _, _) = join(&app, "/ws/chat/lobby/").await;
    assert_eq!(a.recv().await["type"], "presence.join");

    for r in ["m1", "m2", "m3"] {
        a.send(json!({"type": "chat.message", "ref": r, "message": format!("says {r}")}))
            .await;
    }
    let mut mine = Vec::new();
    let mut refused = None;
    while mine.len() < 2 || refused.is_none() {
        let frame = a.recv().await;
        match frame["type"].as_str() {
            Some("chat.message") => mine.push(frame),
            Some("error") => {
                assert!(refused.is_none(), "one error only: {frame}");
                refused = Some(frame);
            }
            _ => panic!("unexpected frame {frame}"),
        }
    }
    let refused = refused.unwrap();
    assert_eq!(
        (refused["code"].as_str(), refused["ref"].as_str()),
        (Some("rate_limited"), Some("m3"))
    );
    for (r, own) in ["m1", "m2"].into_iter().zip(&mine) {
        assert_eq!(own["ref"], r, "{own}");
        let theirs = b.recv().await;
        assert_eq!(theirs["message"], format!("says {r}"));
        assert!(
            theirs.get("ref").is_none(),
            "another member's copy: {theirs}"
        );
        let mut expected = theirs.clone();
        expected["ref"] = json!(r);
        assert_eq!(own, &expected, "the same frame plus the sender's ref");
    }

    b.send_text(r#"{"type":5,"ref":"t1"}"#).await;
    let err = b.recv().await;
    assert_eq!(
        (
            err["type"].as_str(),
            err["code"].as_str(),
            err["ref"].as_str()
        ),
        (Some("error"), Some("validation"), Some("t1"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_echo_the_ref_the_client_sent_on_sqlite() {
    replies_echo_the_ref_the_client_sent(Backend::Sqlite).await;
}

async fn a_room_that_keeps_no_history_still_reports_a_gap_after_it_restarts(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("HUB_HISTORY_LEN", "0")]).await;
    let (mut a, _, _) = join(&app, "/ws/chat/quiet/").await;
    let mut ids = Vec::new();
    for text in ["one", "two", "three"] {
        a.say(text).await;
        let m = a.recv_type("chat.message").await;
        assert_eq!(m["message"], text);
        ids.push(m["id"].as_i64().unwrap());
    }
    leave(a).await;
    app.until_metric("hub_rooms 0").await;

    let (_gap, history, _) = join(&app, &format!("/ws/chat/quiet/?since={}", ids[0])).await;
    assert_eq!(history["messages"], json!([]));
    assert_eq!(history["truncated"], true, "two and three were missed");
    let (_none, history, _) = join(&app, &format!("/ws/chat/quiet/?since={}", ids[2])).await;
    assert_eq!(history["messages"], json!([]));
    assert_eq!(history["truncated"], false, "nothing was missed");
}

async fn long_messages_in_history_never_close_a_joiner(backend: Backend) {
    let mut settings = UNLIMITED.to_vec();
    settings.extend([
        ("HUB_SEND_QUEUE_BYTES", "65536"),
        ("HUB_MAX_CHAT_CHARS", "20000"),
        ("HUB_HISTORY_LEN", "50"),
    ]);
    let app = TestApp::spawn_with(backend, &settings).await;
    let (mut member, _, _) = join(&app, "/ws/chat/long/").await;
    let said: Vec<String> = (0..20)
        .map(|i| format!("{i:02}{}", "x".repeat(14_998)))
        .collect();
    for text in &said {
        member.echo(text).await;
    }

    let mut joiner = app.connect("/ws/chat/long/").await;
    let raw = recv_raw(&mut joiner).await;
    assert!(
        raw.len() < 64 * 1024,
        "a history frame of {} bytes",
        raw.len()
    );
    let history: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(history["type"], "chat.history");
    let kept = bodies(&history);
    assert!(
        !kept.is_empty() && kept.len() < said.len(),
        "{} messages",
        kept.len()
    );
    assert_eq!(kept, said[said.len() - kept.len()..], "the newest ones");
    assert_eq!(joiner.recv().await["type"], "presence");

    // Still open, and a full member.
    joiner.echo("still here").await;
    assert_eq!(
        member.recv_type("chat.message").await["message"],
        "still here"
    );

    let mut since = app.connect("/ws/chat/long/?since=0").await;
    let raw = recv_raw(&mut since).await;
    assert!(
        raw.len() < 64 * 1024,
        "a history frame of {} bytes",
        raw.len()
    );
    let history: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(history["truncated"], true, "not all of since=0 fits");
    since.echo("me too").await;
}

async fn a_room_is_forgotten_once_its_members_leave_even_after_it_was_crowded(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("HUB_PRESENCE_LIMIT", "2")]).await;
    let mut guests = Vec::new();
    for _ in 0..4 {
        guests.push(join(&app, "/ws/chat/crowd/").await.0);
    }
    app.until_metric("hub_rooms 1").await;
    for guest in guests {
        leave(guest).await;
    }
    app.until_metric("hub_rooms 0").await;
}
