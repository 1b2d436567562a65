//! Against the peer the hub replaces: a real Django with
//! djangorestframework-simplejwt (tests/django/interop.py) owning the
//! database and the key, and the hub joining it.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::helpers::{Backend, KEY, TestApp, in_ci, join};
use crate::on_both_backends;

on_both_backends!(
    unless (skip_django_tests)
    django_and_the_hub_share_users_tokens_and_passwords,
    the_token_api_answers_as_simplejwt_does,
);

/// The Python that has tests/django/requirements.txt installed, from
/// `HUB_TEST_DJANGO_PYTHON`. Missing is a skip on a developer's machine and a
/// failure in CI.
fn django_python() -> Option<String> {
    match std::env::var("HUB_TEST_DJANGO_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
    {
        Some(python) => Some(python),
        None if in_ci() => {
            panic!("in CI HUB_TEST_DJANGO_PYTHON must be set: the Django interop test must run")
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

/// One request, as interop.py's `http` command takes it.
fn request(method: &str, path: &str, content_type: Option<&str>, body: &str) -> Value {
    let mut r = json!({"method": method, "path": path, "body": body});
    if let Some(ct) = content_type {
        r["content_type"] = json!(ct);
    }
    r
}

fn with_origin(mut r: Value, origin: &str, preflight: bool) -> Value {
    r["headers"] = json!({"Origin": origin});
    if preflight {
        r["headers"]["Access-Control-Request-Method"] = json!("POST");
    }
    r
}

/// The hub's answer in the shape interop.py prints Django's.
async fn hub_answer(app: &TestApp, client: &reqwest::Client, r: &Value) -> Value {
    let method = reqwest::Method::from_bytes(r["method"].as_str().unwrap().as_bytes()).unwrap();
    let mut req = client
        .request(method, app.http(r["path"].as_str().unwrap()))
        .body(r["body"].as_str().unwrap().to_owned());
    if let Some(ct) = r["content_type"].as_str() {
        req = req.header("content-type", ct);
    }
    if let Some(headers) = r["headers"].as_object() {
        for (k, v) in headers {
            req = req.header(k, v.as_str().unwrap());
        }
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers: serde_json::Map<String, Value> = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap())))
        .collect();
    let bytes = resp.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    json!({"status": status, "headers": headers, "body": body})
}

async fn the_token_api_answers_as_simplejwt_does(backend: Backend) {
    let Some(python) = django_python() else {
        return;
    };
    let app = TestApp::spawn_prepared(
        backend,
        &[("CORS_ALLOWED_ORIGINS", "https://app.example")],
        |url| {
            django(&python, url, &["setup"], "");
        },
    )
    .await;
    let url = app.database_url.clone();
    let json_ct = Some("application/json");
    let login = |body: Value| request("POST", "/api/token/", json_ct, &body.to_string());
    let refresh = |token: &str| {
        request(
            "POST",
            "/api/token/refresh/",
            json_ct,
            &json!({"refresh": token}).to_string(),
        )
    };
    let sam = django(&python, &url, &["mint", "sam"], "");
    let cases = vec![
        login(json!({"username": "alice", "password": "django pass"})),
        login(json!({"username": "  alice ", "password": "django pass"})),
        request(
            "POST",
            "/api/token/",
            Some("application/x-www-form-urlencoded"),
            "username=alice&password=django+pass",
        ),
        request(
            "POST",
            "/api/token/",
            Some("multipart/form-data; boundary=B0und"),
            "--B0und\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n\
             --B0und\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\ndjango pass\r\n\
             --B0und--\r\n",
        ),
        login(json!({"username": "alice", "password": "wrong"})),
        login(json!({"username": "nobody", "password": "wrong"})),
        login(json!({})),
        login(json!({"username": " ", "password": ""})),
        login(json!({"username": null, "password": 5})),
        login(json!({"username": "al\u{0}ice", "password": "x"})),
        login(json!(["alice"])),
        request("POST", "/api/token/", json_ct, "{oops"),
        request("POST", "/api/token/", Some("text/plain"), "alice"),
        request("POST", "/api/token/", None, ""),
        request("GET", "/api/token/", None, ""),
        request("PUT", "/api/token/refresh/", json_ct, "{}"),
        request("HEAD", "/api/token/", None, ""),
        request("POST", "/api/token", json_ct, "{}"),
        request("POST", "/api/token/refresh", json_ct, "{}"),
        refresh("not-a-token"),
        refresh(&sam),
        refresh(""),
        with_origin(
            request("OPTIONS", "/api/token/", None, ""),
            "https://app.example",
            true,
        ),
        with_origin(
            request("OPTIONS", "/api/token/", None, ""),
            "https://evil.example",
            true,
        ),
        with_origin(login(json!({})), "https://app.example", false),
        with_origin(login(json!({})), "https://evil.example", false),
    ];
    let django_answers: Vec<Value> = serde_json::from_str(&django(
        &python,
        &url,
        &["http"],
        &Value::from(cases.clone()).to_string(),
    ))
    .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // One answer per case, or the zip below would compare fewer.
    assert_eq!(django_answers.len(), cases.len());
    for (case, theirs) in cases.iter().zip(&django_answers) {
        let ours = hub_answer(&app, &client, case).await;
        let what = format!("{case}\n django: {theirs}\n hub:    {ours}");
        assert_eq!(ours["status"], theirs["status"], "{what}");
        // An answer with a body says what it is, as Django's does; an
        // empty one's type (Django's default text/html) tells nothing.
        let compared: &[&str] = if theirs["body"].is_null() {
            &["location", "access-control-allow-origin"]
        } else {
            &["location", "access-control-allow-origin", "content-type"]
        };
        for header in compared {
            assert_eq!(
                ours["headers"][header], theirs["headers"][header],
                "{header}: {what}"
            );
        }
        if theirs["status"] == 405 {
            assert_eq!(
                ours["headers"]["allow"], theirs["headers"]["allow"],
                "{what}"
            );
        }
        let Some(fields) = theirs["body"].as_object() else {
            continue;
        };
        for (key, value) in fields {
            let detail = value.as_str().unwrap_or_default();
            if theirs["status"] == 200 {
                // Tokens differ; each side's must be there.
                assert!(ours["body"][key].is_string(), "{key}: {what}");
            } else if let Some((parser, _)) = detail.split_once(" parse error - ") {
                // The parser's own words follow; Python's and serde's differ.
                let prefix = format!("{parser} parse error - ");
                assert!(
                    ours["body"][key].as_str().unwrap().starts_with(&prefix),
                    "{key}: {what}"
                );
            } else {
                assert_eq!(&ours["body"][key], value, "{key}: {what}");
            }
        }
    }
}
