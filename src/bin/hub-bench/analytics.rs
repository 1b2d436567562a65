//! `analytics`: K dashboards (one user each) while an ingest stream posts E
//! events a second, spread over their users. Each event sets a metric to its
//! own send time, so an update says how old the newest event it carries is.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tokio::sync::{Mutex, Semaphore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::{Target, proc, users};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 100)]
    dashboards: usize,
    /// Events posted per second, in all.
    #[arg(long, default_value_t = 1000)]
    events_per_sec: u64,
    /// Events in one POST.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// The hub's HUB_INGEST_KEY.
    #[arg(long, env = "HUB_INGEST_KEY")]
    ingest_key: String,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

pub async fn run(target: Target, args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.duration_secs <= 600,
        "runs are bounded: --duration-secs ≤ 600"
    );
    anyhow::ensure!((1..=1000).contains(&args.batch), "--batch is 1 to 1000");
    anyhow::ensure!(
        args.dashboards >= 1 && args.dashboards <= 19_000,
        "--dashboards is 1 to 19,000"
    );
    let ids = users::ensure(args.dashboards)?;
    let codec = users::codec()?;
    let updates = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(Mutex::new(proc::histogram()));
    let end = tokio::time::Instant::now() + Duration::from_secs(args.duration_secs);
    let drain_end = end + Duration::from_secs(3);

    let mut readers = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let mut request =
            format!("ws://{}/ws/analytics/", target.server(i)).into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", users::access_token(&codec, *id)).parse()?,
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
        tokio::time::timeout(Duration::from_secs(10), ws.next()).await?; // the snapshot
        let (updates, latency) = (updates.clone(), latency.clone());
        readers.push(tokio::spawn(async move {
            let mut local = proc::histogram();
            let reading = async {
                // A ping (the hub sends one each heartbeat) is answered by
                // the client library; only a close or an error ends the read.
                while let Some(Ok(message)) = ws.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    let Ok(frame) = serde_json::from_str::<serde_json::Value>(&text) else {
                        continue;
                    };
                    if let Some(sent) = frame["metrics"]["bench.sent_us"].as_f64() {
                        updates.fetch_add(1, Relaxed);
                        // A microsecond timestamp this generator sent: whole,
                        // positive and far inside u64.
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let sent = sent as u64;
                        local.saturating_record(now_us().saturating_sub(sent));
                    }
                }
            };
            let _ = tokio::time::timeout_at(drain_end, reading).await;
            latency.lock().await.add(&local).expect("same bounds");
        }));
    }
    println!("analytics: {} dashboards connected", ids.len());

    let client = reqwest::Client::new();
    // Posts take the nodes in turn, as a backend behind a balancer would.
    let urls: Vec<String> = target
        .servers
        .iter()
        .map(|s| format!("http://{s}/api/analytics/events"))
        .collect();
    let mut posts = 0usize;
    let posts_per_sec = (args.events_per_sec as f64 / args.batch as f64).max(0.1);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / posts_per_sec));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let in_flight = Arc::new(Semaphore::new(32));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let server_cpu0 = target.pid.and_then(proc::cpu);
    let mut next_user = 0usize;
    while tokio::time::Instant::now() < end {
        tick.tick().await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            failed.fetch_add(args.batch as u64, Relaxed);
            continue;
        };
        let events: Vec<serde_json::Value> = (0..args.batch)
            .map(|_| {
                next_user = (next_user + 1) % ids.len();
                serde_json::json!({"user_id": ids[next_user], "metric": "bench.sent_us", "value": now_us(), "op": "set"})
            })
            .collect();
        posts += 1;
        let (client, url, key, sent, failed) = (
            client.clone(),
            urls[posts % urls.len()].clone(),
            args.ingest_key.clone(),
            sent.clone(),
            failed.clone(),
        );
        tokio::spawn(async move {
            let n = events.len() as u64;
            let ok = client
                .post(url)
                .header("x-hub-ingest-key", key)
                .json(&events)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                sent.fetch_add(n, Relaxed)
            } else {
                failed.fetch_add(n, Relaxed)
            };
            drop(permit);
        });
    }
    let server_cpu1 = target.pid.and_then(proc::cpu);
    for reader in readers {
        let _ = reader.await;
    }
    let (sent, failed, updates) = (
        sent.load(Relaxed),
        failed.load(Relaxed),
        updates.load(Relaxed),
    );
    println!(
        "analytics: {sent} events posted ({failed} not), {updates} updates to {} dashboards: {:.1} events per update",
        ids.len(),
        sent as f64 / updates.max(1) as f64
    );
    println!(
        "update latency (newest event to dashboard): {}",
        proc::latency_line(&*latency.lock().await)
    );
    if let (Some(a), Some(b)) = (server_cpu0, server_cpu1) {
        println!(
            "server CPU: {:.2} s over {} s",
            (b - a).as_secs_f64(),
            args.duration_secs
        );
    }
    Ok(())
}
