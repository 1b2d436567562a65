//! The real `hub` binary as operators run it: what it logs.

use std::io::BufRead;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Backend, HubProcess, KEY, TestApp};
use crate::on_both_backends;

on_both_backends!(
    a_token_in_the_query_never_reaches_the_log,
    sigterm_closes_every_socket_with_1012_then_exits,
);

async fn a_token_in_the_query_never_reaches_the_log(backend: Backend) {
    // The TestApp provides the database (and drops it); the hub under test is the binary.
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let token = app.token(alice);
    let mut hub = HubProcess::serve(&app.database_url, &[]);
    let port = hub.port;

    let url = format!("ws://127.0.0.1:{port}/ws/chat/lobby/?since=0&token={token}");
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    drop(ws);
    let refused = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{port}/ws/analytics/?token={token}x"
    ))
    .await;
    assert!(refused.is_err());
    // The socket's line is logged when its connection ends, the refusal's
    // at once: read until both are there.
    let mut stderr = hub.take_stderr();
    let reading = tokio::task::spawn_blocking(move || {
        let mut log = String::new();
        while !(log.contains("GET /ws/analytics/") && log.contains("GET /ws/chat/lobby/")) {
            if stderr.read_line(&mut log).unwrap() == 0 {
                break;
            }
        }
        log
    });
    let log = tokio::time::timeout(std::time::Duration::from_secs(10), reading)
        .await
        .expect("the access log in time")
        .unwrap();

    assert!(
        log.contains("GET /ws/chat/lobby/?since=0&token=[redacted]"),
        "{log}"
    );
    assert!(!log.contains(&token), "a token reached the log:\n{log}");
    assert!(!log.contains(KEY), "the signing key reached the log");
}

async fn sigterm_closes_every_socket_with_1012_then_exits(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", false);
    let mut hub = HubProcess::serve(&app.database_url, &[]);
    let base = format!("ws://127.0.0.1:{}", hub.port);
    let (mut guest, _) = tokio_tungstenite::connect_async(format!("{base}/ws/chat/lobby/"))
        .await
        .unwrap();
    let (mut dashboard, _) = tokio_tungstenite::connect_async(format!(
        "{base}/ws/analytics/?token={}",
        app.token(alice)
    ))
    .await
    .unwrap();
    // Both are fully joined once their first frames arrive.
    for socket in [&mut guest, &mut dashboard] {
        assert!(matches!(socket.next().await, Some(Ok(Message::Text(_)))));
    }

    // SAFETY: kill only sends a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(hub.pid() as i32, libc::SIGTERM) }, 0);
    for socket in [&mut guest, &mut dashboard] {
        let code = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                    Some(Ok(_)) => continue,
                    other => panic!("no close frame before the end: {other:?}"),
                }
            }
        })
        .await
        .expect("closed in time");
        assert_eq!(code, 1012);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = hub.child().try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the hub did not exit after draining"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}
