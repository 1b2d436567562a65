//! The hub behind a real nginx, configured exactly as `docs/nginx.conf`
//! (the README shows the same file), with TLS ending at nginx: chat,
//! dashboard and DNS sockets over `wss://`, the token API over `https://`,
//! and the hub seeing the client's address, not nginx's, through
//! `X-Forwarded-For` and `HUB_TRUSTED_PROXIES`.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::helpers::{Backend, HubProcess, TestApp, WAIT, in_ci};

/// Where the client connects from: not nginx's 127.0.0.1, so the hub's
/// view of the client can be told apart.
const CLIENT: &str = "127.0.0.2";
const PASSWORD: &str = "behind-the-proxy";

/// A running nginx, stopped with the test.
struct Nginx {
    child: Child,
    port: u16,
    /// The certificate nginx serves, for the clients to trust.
    certificate: native_tls::Certificate,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `docs/nginx.conf` with its example values made this test's: the port
/// nginx listens on, the hub's port, and a fresh self-signed certificate.
fn configured(dir: &Path, port: u16, hub_port: u16) -> String {
    let shipped = include_str!("../../docs/nginx.conf");
    let mut conf = shipped.to_owned();
    for (example, ours) in [
        ("listen 443 ssl;", format!("listen 127.0.0.1:{port} ssl;")),
        (
            "server 127.0.0.1:8000;",
            format!("server 127.0.0.1:{hub_port};"),
        ),
        (
            "/etc/ssl/certs/hub.example.com.pem",
            dir.join("cert.pem").display().to_string(),
        ),
        (
            "/etc/ssl/private/hub.example.com.key",
            dir.join("key.pem").display().to_string(),
        ),
    ] {
        assert!(
            conf.contains(example),
            "docs/nginx.conf no longer has {example}"
        );
        conf = conf.replace(example, &ours);
    }
    // What a packaged nginx.conf around conf.d/ provides.
    format!(
        "pid {dir}/nginx.pid;\nerror_log {dir}/error.log;\nevents {{}}\nhttp {{\n\
         access_log {dir}/access.log;\nclient_body_temp_path {dir};\nproxy_temp_path {dir};\n\
         fastcgi_temp_path {dir};\nuwsgi_temp_path {dir};\nscgi_temp_path {dir};\n{conf}\n}}\n",
        dir = dir.display()
    )
}

impl Nginx {
    /// Starts nginx in front of the hub on `hub_port`, or `None` (after a
    /// note) where nginx or openssl is missing outside CI.
    async fn start(hub_port: u16) -> Option<Self> {
        let missing: Vec<&str> = ["nginx", "openssl"]
            .into_iter()
            .filter(|p| Command::new(p).arg("-v").output().is_err())
            .collect();
        if !missing.is_empty() {
            assert!(
                !in_ci(),
                "in CI {missing:?} must be installed: the nginx test must run"
            );
            eprintln!("skipping the nginx test: install {missing:?} (.ci/run does)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost",
            ])
            .arg("-keyout")
            .arg(dir.path().join("key.pem"))
            .arg("-out")
            .arg(dir.path().join("cert.pem"))
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(made.success(), "openssl made no certificate");
        let port = free_port();
        std::fs::write(
            dir.path().join("nginx.conf"),
            configured(dir.path(), port, hub_port),
        )
        .unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            // One process, so that ending it ends nginx.
            .args(["-g", "daemon off; master_process off;"])
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts");
        let pem = std::fs::read(dir.path().join("cert.pem")).unwrap();
        let nginx = Self {
            child,
            port,
            certificate: native_tls::Certificate::from_pem(&pem).unwrap(),
            _dir: dir,
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nginx did not listen; its log: {}",
                std::fs::read_to_string(nginx._dir.path().join("error.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(nginx)
    }

    fn tls(&self) -> native_tls::TlsConnector {
        native_tls::TlsConnector::builder()
            .add_root_certificate(self.certificate.clone())
            .build()
            .unwrap()
    }

    /// A `wss://` socket through nginx, from [`CLIENT`].
    async fn open(
        &self,
        path: &str,
        bearer: Option<&str>,
    ) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        let mut request = format!("wss://localhost:{}{path}", self.port)
            .into_client_request()
            .unwrap();
        if let Some(token) = bearer {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(format!("{CLIENT}:0").parse().unwrap()).unwrap();
        let stream = socket
            .connect(format!("127.0.0.1:{}", self.port).parse().unwrap())
            .await
            .unwrap();
        let (ws, _) = tokio_tungstenite::client_async_tls_with_config(
            request,
            stream,
            None,
            Some(Connector::NativeTls(self.tls())),
        )
        .await
        .expect("the upgrade passes nginx");
        ws
    }
}

async fn next_json(ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>) -> Value {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

async fn next_of(ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>, kind: &str) -> Value {
    loop {
        let frame = next_json(ws).await;
        if frame["type"] == kind {
            return frame;
        }
    }
}

#[test]
fn the_readme_shows_the_configuration_the_test_runs() {
    let readme = include_str!("../../README.md");
    let conf = include_str!("../../docs/nginx.conf");
    assert!(
        readme.contains(&format!("```nginx\n{conf}```")),
        "README.md's nginx block differs from docs/nginx.conf"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    skip_nginx_tests,
    ignore = "nginx or openssl is missing (README, Test)"
)]
async fn sockets_pages_and_tokens_work_through_nginx_over_tls_and_the_hub_sees_the_client() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.cli_with_input(
        &["user", "create", "--username", "alice", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    let mut hub = HubProcess::serve(&app.database_url, &[("HUB_TRUSTED_PROXIES", "127.0.0.1")]);
    // The hub's log, read as it comes, for its access lines.
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let lines = hub.take_stderr();
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in lines.lines().map_while(Result::ok) {
            kept.lock().unwrap().push(line);
        }
    });
    let Some(nginx) = Nginx::start(hub.port).await else {
        return;
    };

    // The token API and a page, over https.
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_der(&nginx.certificate.to_der().unwrap()).unwrap(),
        )
        .local_address(CLIENT.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", nginx.port);
    let tokens: Value = client
        .post(format!("{base}/api/token/"))
        // What a client may write itself; nginx adds the address it saw.
        .header("x-forwarded-for", "203.0.113.66")
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access"]
        .as_str()
        .expect("an access token")
        .to_owned();
    let page = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);

    // Chat with the frontend's ?token=, a dashboard, and a DNS panel with
    // the header.
    let mut chat = nginx
        .open(&format!("/ws/chat/lobby/?token={access}"), None)
        .await;
    next_of(&mut chat, "chat.history").await;
    chat.send(Message::Text(
        json!({"type": "chat.message", "message": "through nginx"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(
        next_of(&mut chat, "chat.message").await["message"],
        "through nginx"
    );
    let mut dashboard = nginx
        .open(&format!("/ws/analytics/?token={access}"), None)
        .await;
    next_json(&mut dashboard).await;
    let mut dns = nginx.open("/ws/dns/", Some(&access)).await;
    dns.send(Message::Text(
        json!({"type": "dns.zones", "ref": 1}).to_string().into(),
    ))
    .await
    .unwrap();
    let zones = next_of(&mut dns, "dns.result").await;
    assert_eq!(zones["zones"], json!([]));

    // Every request reached the hub from nginx (127.0.0.1); the hub logs
    // the client's address. A socket's line is written as it ends.
    for mut ws in [chat, dashboard, dns] {
        ws.close(None).await.unwrap();
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, ws.next()).await {}
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen: Vec<String> = log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("/ws/") || l.contains("/api/token/"))
            .cloned()
            .collect();
        if seen.len() >= 4 {
            for line in &seen {
                assert!(line.contains(&format!("{CLIENT} \\\"")), "{line}");
                assert!(!line.contains(&access), "a token in the log: {line}");
                assert!(
                    !line.contains("203.0.113.66"),
                    "a forged address believed: {line}"
                );
            }
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every access line: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
