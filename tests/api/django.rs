//! Against the peer the hub replaces: a real Django with
//! djangorestframework-simplejwt (tests/django/interop.py) owning the
//! database and the key, and the hub joining it.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::helpers::{Backend, KEY, TestApp, join};
use crate::on_both_backends;

on_both_backends!(django_and_the_hub_share_users_tokens_and_passwords);

/// The Python that has tests/django/requirements.txt installed, from
/// `HUB_TEST_DJANGO_PYTHON`. Missing is a skip on a developer's machine and a
/// failure in CI.
fn django_python() -> Option<String> {
    match std::env::var("HUB_TEST_DJANGO_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
    {
        Some(python) => Some(python),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "CI=true but HUB_TEST_DJANGO_PYTHON is not set: the Django interop test must run"
            )
        }
        None => {
            eprintln!("skipping the Django interop test: set HUB_TEST_DJANGO_PYTHON (see .ci/run)");
            None
        }
    }
}

fn django(python: &str, database_url: &str, args: &[&str], stdin: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/django/interop.py");
    let mut child = Command::new(python)
        .arg(script)
        .args([database_url, KEY])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "interop.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn django_and_the_hub_share_users_tokens_and_passwords(backend: Backend) {
    let Some(python) = django_python() else {
        return;
    };
    // Django migrates the database and creates its users before the hub starts.
    let mut ids = Value::Null;
    let app = TestApp::spawn_prepared(backend, &[], |url| {
        ids = serde_json::from_str(&django(&python, url, &["setup"], "")).unwrap();
    })
    .await;
    let url = app.database_url.clone();

    // A token simplejwt mints opens the staff room for Django's staff user.
    let token = django(&python, &url, &["mint", "sam"], "");
    let (_sam, _, presence) = join(&app, &format!("/ws/chat/management/?token={token}")).await;
    assert_eq!(
        presence["members"][0],
        json!({"id": ids["sam"], "username": "sam", "is_staff": true})
    );

    // A password Django hashed logs in at the hub, and simplejwt accepts the hub's token.
    let resp = reqwest::Client::new()
        .post(app.http("/api/token/"))
        .json(&json!({"username": "alice", "password": "django pass"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let pair: Value = resp.json().await.unwrap();
    let user_id = django(
        &python,
        &url,
        &["verify", pair["access"].as_str().unwrap()],
        "",
    );
    assert_eq!(user_id, ids["alice"].to_string());

    // A user the hub creates has a password Django checks.
    app.cli_with_input(
        &[
            "user",
            "create",
            "--username",
            "hubuser",
            "--password-stdin",
        ],
        "made by the hub\n",
    );
    assert_eq!(
        django(&python, &url, &["check", "hubuser"], "made by the hub"),
        "true"
    );
    assert_eq!(
        django(&python, &url, &["check", "hubuser"], "wrong"),
        "false"
    );
}
