//! Chat rooms over real sockets: delivery, isolation, history, presence.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, join};
use crate::on_both_backends;

on_both_backends!(
    members_of_a_room_hear_each_other_and_another_room_hears_nothing,
    history_is_sent_on_join_and_since_sends_exactly_what_was_missed,
    presence_lists_members_and_announces_joins_and_leaves,
    a_crowded_room_sends_counts_instead_of_presence_events,
    the_bare_django_tutorial_frame_is_a_chat_message,
    a_member_that_asks_for_diffs_gets_presence_coalesced,
);

async fn members_of_a_room_hear_each_other_and_another_room_hears_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let (mut a, _, _) = join(&app, &format!("/ws/chat/lobby/?token={}", app.token(alice))).await;
    let (mut guest, _, _) = join(&app, "/ws/chat/lobby/").await;
    let (mut elsewhere, _, _) = join(&app, "/ws/chat/other-room/").await;
    a.recv_type("presence.join").await;

    a.say("hello").await;
    for member in [&mut a, &mut guest] {
        let m = member.recv_type("chat.message").await;
        assert_eq!(m["message"], "hello");
        assert_eq!(m["room"], "lobby");
        assert_eq!(
            m["user"],
            json!({"id": alice, "username": "alice", "is_staff": false})
        );
        assert!(m["id"].as_i64().unwrap() > 0);
        assert!(m["sent_at"].as_str().unwrap().ends_with('Z'));
    }
    guest.say("hi alice").await;
    let reply = a.recv_type("chat.message").await;
    assert_eq!(reply["message"], "hi alice");
    assert!(
        reply["user"]["username"]
            .as_str()
            .unwrap()
            .starts_with("guest-")
    );
    assert_eq!(reply["user"]["id"], json!(null));
    elsewhere.silent_for(Duration::from_millis(500)).await;
}

async fn history_is_sent_on_join_and_since_sends_exactly_what_was_missed(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("HUB_HISTORY_LEN", "3")]).await;
    let (mut a, history, _) = join(&app, "/ws/chat/lobby/").await;
    assert_eq!(history["messages"], json!([]));
    let mut ids = Vec::new();
    for text in ["one", "two", "three", "four"] {
        a.say(text).await;
        ids.push(a.recv_type("chat.message").await["id"].as_i64().unwrap());
    }
    drop(a);

    let (_b, history, _) = join(&app, "/ws/chat/lobby/").await;
    let texts: Vec<_> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].clone())
        .collect();
    assert_eq!(
        texts,
        [json!("two"), json!("three"), json!("four")],
        "the newest HUB_HISTORY_LEN"
    );

    let (_c, since, _) = join(&app, &format!("/ws/chat/lobby/?since={}", ids[1])).await;
    let texts: Vec<_> = since["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].clone())
        .collect();
    assert_eq!(texts, [json!("three"), json!("four")]);
    assert_eq!(since["truncated"], false);

    let (_d, gap, _) = join(&app, &format!("/ws/chat/lobby/?since={}", ids[0] - 1)).await;
    assert_eq!(
        gap["truncated"], true,
        "'one' was missed and is no longer kept"
    );

    // A fresh room actor (after everyone left) loads the same history from the database.
    drop((_b, _c, _d));
    app.until_metric("hub_rooms 0").await;
    let (_e, reloaded, _) = join(&app, &format!("/ws/chat/lobby/?since={}", ids[1])).await;
    assert_eq!(reloaded["messages"], since["messages"]);
    assert_eq!(reloaded["truncated"], false);
    let (_f, reloaded_gap, _) = join(&app, &format!("/ws/chat/lobby/?since={}", ids[0] - 1)).await;
    assert_eq!(reloaded_gap["truncated"], true);

    let refused = reqwest::Client::new()
        .get(app.http("/ws/chat/lobby/?since=yesterday"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
}

async fn presence_lists_members_and_announces_joins_and_leaves(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let bob = app.create_user("bob", false);
    let (mut a, _, presence) =
        join(&app, &format!("/ws/chat/lobby/?token={}", app.token(alice))).await;
    assert_eq!(
        presence["members"],
        json!([{"id": alice, "username": "alice", "is_staff": false}])
    );

    let (b, _, presence) = join(&app, &format!("/ws/chat/lobby/?token={}", app.token(bob))).await;
    let names: Vec<_> = presence["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["username"].clone())
        .collect();
    assert_eq!(names, [json!("alice"), json!("bob")]);
    let joined = a.recv().await;
    assert_eq!(
        joined,
        json!({"type": "presence.join", "room": "lobby", "user": {"id": bob, "username": "bob", "is_staff": false}})
    );

    // A second tab of the same user is not a second member.
    let (b2, _, _) = join(&app, &format!("/ws/chat/lobby/?token={}", app.token(bob))).await;
    a.silent_for(Duration::from_millis(300)).await;
    drop(b);
    a.silent_for(Duration::from_millis(300)).await;
    drop(b2);
    let left = a.recv().await;
    assert_eq!(left["type"], "presence.leave");
    assert_eq!(left["user"]["username"], "bob");
}

async fn a_member_that_asks_for_diffs_gets_presence_coalesced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (mut watcher, _, _) = join(&app, "/ws/chat/busy/?presence=diff").await;
    let (mut events, _, before) = join(&app, "/ws/chat/busy/?presence=events").await;
    // Each joiner is the one name its presence list adds to those before.
    let mut known = usernames(&before["members"]);
    let mut newcomer = |presence: &Value| -> String {
        let added: Vec<String> = usernames(&presence["members"])
            .into_iter()
            .filter(|n| !known.contains(n))
            .collect();
        assert_eq!(added.len(), 1, "{presence}");
        known.extend(added.clone());
        added[0].clone()
    };
    // Arrivals close together make one diff for the watcher; the member
    // that wants events still gets one event each.
    let mut arrivals = Vec::new();
    for _ in 0..5 {
        arrivals.push(join(&app, "/ws/chat/busy/").await);
    }
    let mut names: Vec<String> = arrivals
        .iter()
        .map(|(_, _, presence)| newcomer(presence))
        .collect();
    names.sort();
    // A diff may also repeat members the watcher's own presence list
    // showed (itself, the member that joined with it).
    let mut joined: Vec<String> = Vec::new();
    while !names.iter().all(|name| joined.contains(name)) {
        let diff = watcher.recv_type("presence.diff").await;
        assert_eq!(diff["room"], "busy");
        assert_eq!(diff["leaves"], json!([]));
        for who in diff["joins"].as_array().unwrap() {
            joined.push(who["username"].as_str().unwrap().to_owned());
        }
    }
    for name in &names {
        let times = joined.iter().filter(|j| *j == name).count();
        assert_eq!(times, 1, "{name} arrived once: {joined:?}");
    }
    for _ in 0..5 {
        assert_eq!(events.recv().await["type"], "presence.join");
    }

    // A guest that comes and goes within one diff window nets out to
    // nothing; whether its stay falls in one window is up to the clock, so
    // either it is not shown at all, or it is shown arriving and then
    // leaving. Either way no one is shown leaving who was not there.
    let (gone, _, guest) = join(&app, "/ws/chat/busy/").await;
    let guest = newcomer(&guest);
    drop(gone);
    drop(arrivals);
    let (mut guest_shown, mut left) = (false, Vec::new());
    while !names.iter().all(|name| left.contains(name)) {
        let diff = watcher.recv_type("presence.diff").await;
        for name in usernames(&diff["joins"]) {
            assert_eq!(name, guest, "only the guest may be shown arriving");
            guest_shown = true;
        }
        for name in usernames(&diff["leaves"]) {
            assert!(
                names.contains(&name) || (name == guest && guest_shown),
                "{name} left without having been shown"
            );
            left.push(name);
        }
    }
    if guest_shown && !left.contains(&guest) {
        let diff = watcher.recv_type("presence.diff").await;
        assert_eq!(usernames(&diff["leaves"]), [guest.as_str()], "{diff}");
    }
    if !guest_shown {
        assert!(!left.contains(&guest), "{left:?}");
    }
    assert!(
        app.refused(app.request("/ws/chat/busy/?presence=often"))
            .await
            .status
            == 400,
        "an unknown presence mode is refused"
    );
}

async fn a_crowded_room_sends_counts_instead_of_presence_events(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("HUB_PRESENCE_LIMIT", "2")]).await;
    let (mut first, _, _) = join(&app, "/ws/chat/crowd/").await;
    let (_second, _, _) = join(&app, "/ws/chat/crowd/").await;
    assert_eq!(first.recv().await["type"], "presence.join");
    let (mut third, _, greeting) = join(&app, "/ws/chat/crowd/").await;
    assert_eq!(
        greeting,
        json!({"type": "presence.count", "room": "crowd", "count": 3})
    );
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(join(&app, "/ws/chat/crowd/").await.0);
    }
    // No per-join events any more: one count, at most once a second.
    let count = first.recv_within(Duration::from_secs(3)).await;
    assert_eq!(count["type"], "presence.count");
    let last = third.recv_type("presence.count").await;
    assert!(last["count"].as_u64().unwrap() >= 3);
}

async fn the_bare_django_tutorial_frame_is_a_chat_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (mut a, _, _) = join(&app, "/ws/chat/lobby/").await;
    a.send(json!({"message": "from the tutorial"})).await;
    let m = a.recv_type("chat.message").await;
    assert_eq!(m["message"], "from the tutorial");
}

/// The usernames of a list of users, in order.
fn usernames(users: &Value) -> Vec<String> {
    users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect()
}
