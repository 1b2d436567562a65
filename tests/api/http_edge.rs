//! What every route answers besides its own work: HEAD and 405, CORS on the
//! APIs browsers call across origins, the pages' security headers, and the
//! token checks PyJWT makes, at the socket.

use reqwest::Method;
use reqwest::header::{HeaderMap, ORIGIN};
use serde_json::json;

use crate::helpers::{Backend, KEY, TestApp, join};
use crate::on_both_backends;

on_both_backends!(
    head_answers_wherever_get_does_and_other_methods_get_405_with_allow,
    the_apis_answer_cors_for_listed_origins_only,
    pages_carry_a_content_security_policy_and_referrer_policy,
    tokens_are_checked_at_the_socket_as_pyjwt_checks_them,
);

const GET_PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/chat.html",
    "/conn.js",
    "/hub.css",
    "/badge-hostadvice-2026.svg",
    "/vendor/uplot/uPlot.esm.js",
    "/healthz",
    "/readyz",
    "/metrics",
];

async fn head_answers_wherever_get_does_and_other_methods_get_405_with_allow(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = reqwest::Client::new();
    for &path in GET_PATHS {
        let get = client.get(app.http(path)).send().await.unwrap();
        let head = client.head(app.http(path)).send().await.unwrap();
        assert_eq!(get.status(), 200, "GET {path}");
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert_eq!(
            head.headers()["content-type"],
            get.headers()["content-type"],
            "{path}"
        );
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} has no body"
        );
    }
    // Socket paths answer a plain GET (not an upgrade) with 400; HEAD alike.
    for path in ["/ws/chat/lobby/", "/ws/analytics/"] {
        let get = client.get(app.http(path)).send().await.unwrap().status();
        let head = client.head(app.http(path)).send().await.unwrap().status();
        assert_ne!(get, 404, "GET {path}");
        assert_eq!(head, get, "HEAD {path}");
    }
    for &path in GET_PATHS
        .iter()
        .chain(&["/ws/chat/lobby/", "/ws/analytics"])
    {
        for method in [Method::POST, Method::DELETE] {
            let resp = client
                .request(method.clone(), app.http(path))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 405, "{method} {path}");
            assert_eq!(resp.headers()["allow"], "GET, HEAD", "{method} {path}");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["error"], "method_not_allowed");
        }
    }
    let resp = client
        .get(app.http("/api/analytics/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST, OPTIONS");
    let missing = client.get(app.http("/nothing-here")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

const LISTED: &str = "https://app.example";

async fn the_apis_answer_cors_for_listed_origins_only(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            (
                "CORS_ALLOWED_ORIGINS",
                &format!("{LISTED}, https://other.example"),
            ),
            ("HUB_INGEST_KEY", "ingest-key"),
        ],
    )
    .await;
    app.create_user_with_hash(
        "django",
        false,
        "pbkdf2_sha256$1000$Qw3rTyS4lt$tzUK+8ACebcxqBShRpGFIw4fOeaMho8NaTL8iAsFO0E=",
    );
    let client = reqwest::Client::new();
    let allow_origin = |h: &HeaderMap| {
        h.get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    for path in [
        "/api/token/",
        "/api/token/refresh/",
        "/api/analytics/events",
    ] {
        for (origin, allowed) in [(LISTED, true), ("https://evil.example", false)] {
            let preflight = client
                .request(Method::OPTIONS, app.http(path))
                .header(ORIGIN, origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type")
                .send()
                .await
                .unwrap();
            assert_eq!(preflight.status(), 200, "preflight {path} from {origin}");
            let h = preflight.headers();
            assert_eq!(
                allow_origin(h),
                allowed.then(|| origin.to_owned()),
                "preflight {path} from {origin}"
            );
            if allowed {
                assert!(
                    h["access-control-allow-methods"]
                        .to_str()
                        .unwrap()
                        .contains("POST")
                );
                assert!(
                    h["access-control-allow-headers"]
                        .to_str()
                        .unwrap()
                        .contains("content-type")
                );
            }
            assert!(h["vary"].to_str().unwrap().contains("origin"));
            // The answer itself, a success or an error, carries it too.
            let post = client
                .post(app.http(path))
                .header(ORIGIN, origin)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(
                post.status(),
                if path.contains("events") { 401 } else { 400 }
            );
            assert_eq!(
                allow_origin(post.headers()),
                allowed.then(|| origin.to_owned()),
                "POST {path} from {origin}"
            );
        }
    }
    let login = client
        .post(app.http("/api/token/"))
        .header(ORIGIN, LISTED)
        .json(&json!({"username": "django", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert_eq!(allow_origin(login.headers()).as_deref(), Some(LISTED));
    // Pages and operators' endpoints are not for other origins.
    let page = client
        .get(app.http("/healthz"))
        .header(ORIGIN, LISTED)
        .send()
        .await
        .unwrap();
    assert_eq!(allow_origin(page.headers()), None);
}

async fn pages_carry_a_content_security_policy_and_referrer_policy(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/", "/index.html", "/dns.html", "/conn.js", "/hub.css"] {
        let resp = reqwest::get(app.http(path)).await.unwrap();
        let h = resp.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'self'",
            "frame-ancestors 'self'",
            &format!("connect-src 'self' ws://127.0.0.1:{}", app.port),
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
    }
    // A Host that is not a plain host cannot write into the policy.
    let resp = reqwest::Client::new()
        .get(app.http("/"))
        .header("host", "x; script-src *")
        .send()
        .await
        .unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(!csp.contains("script-src *"), "{csp}");
}

fn signed(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes()),
    )
    .unwrap()
}

async fn tokens_are_checked_at_the_socket_as_pyjwt_checks_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("alice", false);
    let now = hub::auth::jwt::now_secs();
    let claims = |extra: serde_json::Value| {
        let mut c = json!({"token_type": "access", "exp": now + 300, "iat": now,
                           "jti": "abc", "user_id": id.to_string()});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        signed(c)
    };
    for (what, token) in [
        ("iat in the future", claims(json!({"iat": now + 600}))),
        ("nbf in the future", claims(json!({"nbf": now + 600}))),
        ("a text iat", claims(json!({"iat": "now"}))),
    ] {
        // A dashboard, which refuses what a public room seats as a guest.
        let refused = app
            .refused(app.request(&format!("/ws/analytics/?token={token}")))
            .await;
        assert_eq!(
            (refused.status, refused.code()),
            (401, "token_invalid"),
            "{what}"
        );
    }
    let float_exp = claims(json!({"exp": now as f64 + 300.5}));
    let (mut c, _, _) = join(&app, &format!("/ws/chat/lobby/?token={float_exp}")).await;
    c.send(json!({"type": "auth.refresh", "ref": "r", "token": claims(json!({"iat": now + 600}))}))
        .await;
    let err = c.recv_type("error").await;
    assert_eq!(err["code"], "validation");
    assert!(
        err["detail"].as_str().unwrap().starts_with("token_invalid"),
        "{err}"
    );
    c.send(json!({"type": "auth.refresh", "ref": "f", "token": claims(json!({"exp": now as f64 + 600.25}))}))
        .await;
    assert_eq!(c.recv_type("auth.refreshed").await["exp"], now + 600);
}
