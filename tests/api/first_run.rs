//! The first run: a hub on an empty database says, once, how to make the
//! first user, and the token API tells the sign-in page that no account
//! exists yet; neither happens once a user exists.

use serde_json::{Value, json};

use crate::helpers::{Backend, HubProcess, TestApp};
use crate::on_both_backends;

on_both_backends!(a_hub_with_no_user_says_how_to_make_one_and_stops_once_there_is_one);

fn hints(hub: &HubProcess) -> Vec<&Value> {
    hub.startup_log
        .iter()
        .filter(|e| {
            e["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("hub user create --username NAME --password-stdin"))
        })
        .collect()
}

async fn sign_in(hub: &HubProcess, password: &str) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/api/token/", hub.port))
        .json(&json!({"username": "alice", "password": password}))
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

async fn a_hub_with_no_user_says_how_to_make_one_and_stops_once_there_is_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = HubProcess::serve(&app.database_url, &[]);
    let said = hints(&first);
    assert_eq!(said.len(), 1, "{:?}", first.startup_log);
    assert_eq!(said[0]["level"], "WARN");
    let (status, body) = sign_in(&first, "anything").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "no_users_yet");
    // simplejwt's own words, as a frontend written for Django reads them.
    assert_eq!(
        body["detail"],
        "No active account found with the given credentials"
    );
    drop(first);

    app.cli_with_input(
        &["user", "create", "--username", "alice", "--password-stdin"],
        "s3cret\n",
    );
    let later = HubProcess::serve(&app.database_url, &[]);
    assert!(hints(&later).is_empty(), "{:?}", later.startup_log);
    let (status, body) = sign_in(&later, "wrong").await;
    assert_eq!((status, &body["error"]), (401, &json!("no_active_account")));
    let (status, body) = sign_in(&later, "s3cret").await;
    assert_eq!(status, 200, "{body}");
}
