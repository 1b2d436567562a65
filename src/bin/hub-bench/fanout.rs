//! `fanout`: R rooms × M members, P publishers in each. Every message carries
//! its send time; every member measures its delivery latency. Open loop sends
//! at a fixed rate; closed loop keeps a bounded window of a publisher's
//! messages in flight (sent, not yet echoed back to it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::{Target, proc, users};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 10)]
    rooms: usize,
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Publishers per room (they are members too).
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Messages per second per publisher; 0 runs the closed loop.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Closed loop: a publisher's messages in flight at most.
    #[arg(long, default_value_t = 32)]
    window: u64,
    /// Measured seconds, after the warm-up.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The send time a chat.message frame carries: its text is `"<seq> <nanos>"`.
fn sent_ns(frame: &str) -> Option<u64> {
    if !frame.contains(r#""type":"chat.message""#) {
        return None;
    }
    let text = frame.split(r#""message":""#).nth(1)?;
    let text = &text[..text.find('"')?];
    text.split(' ').nth(1)?.parse().ok()
}

struct Shared {
    measuring: AtomicBool,
    publishing: AtomicBool,
    delivered: AtomicU64,
    measured: AtomicU64,
    published: AtomicU64,
    /// Publishes the hub answered with an error frame (rate, busy room).
    rejected: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

pub async fn run(target: Target, args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.publishers <= args.members,
        "--publishers is at most --members"
    );
    anyhow::ensure!(
        args.rooms * args.members <= 19_000,
        "at most 19,000 sockets in one generator process"
    );
    anyhow::ensure!(
        args.duration_secs <= 600 && args.warmup_secs <= 60,
        "runs are bounded: --duration-secs ≤ 600"
    );
    let ids = users::ensure(args.rooms * args.members)?;
    let codec = users::codec()?;
    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(false),
        publishing: AtomicBool::new(true),
        delivered: AtomicU64::new(0),
        measured: AtomicU64::new(0),
        published: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        latency: Mutex::new(proc::histogram()),
    });

    // Connect everyone and wait for their join frames before anyone speaks.
    let mut sockets = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let (room, member) = (i % args.rooms, i / args.rooms);
        // A room's members (its publishers first) take the nodes in turn,
        // so with several nodes each room spans them.
        let mut request = format!("ws://{}/ws/chat/fanout-{room}/", target.server(member))
            .into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", users::access_token(&codec, *id)).parse()?,
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
        for _ in 0..2 {
            tokio::time::timeout(Duration::from_secs(10), ws.next()).await?;
        }
        sockets.push(ws);
    }
    println!(
        "fanout: {} rooms × {} members connected",
        args.rooms, args.members
    );

    let end =
        tokio::time::Instant::now() + Duration::from_secs(args.warmup_secs + args.duration_secs);
    let drain_end = end + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        let (mut sink, mut stream) = ws.split();
        let echoed = Arc::new(AtomicU64::new(0));
        let publisher = i / args.rooms < args.publishers;
        let (shared_r, echoed_r) = (shared.clone(), echoed.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = proc::histogram();
            let own = format!(r#""message":"{i}-"#);
            let reading = async {
                // A ping (the hub sends one each heartbeat) is answered by
                // the client library; only a close or an error ends the read.
                while let Some(Ok(message)) = stream.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    if publisher && text.starts_with(r#"{"type":"error""#) {
                        shared_r.rejected.fetch_add(1, Relaxed);
                        echoed_r.fetch_add(1, Relaxed);
                        continue;
                    }
                    let Some(sent) = sent_ns(&text) else { continue };
                    shared_r.delivered.fetch_add(1, Relaxed);
                    if publisher && text.contains(&own) {
                        echoed_r.fetch_add(1, Relaxed);
                    }
                    if shared_r.measuring.load(Relaxed) {
                        shared_r.measured.fetch_add(1, Relaxed);
                        local.saturating_record(now_ns().saturating_sub(sent) / 1000);
                    }
                }
            };
            let _ = tokio::time::timeout_at(drain_end, reading).await;
            shared_r
                .latency
                .lock()
                .await
                .add(&local)
                .expect("same bounds");
        }));
        if !publisher {
            continue;
        }
        let (shared_p, rate, window) = (shared.clone(), args.rate, args.window);
        tasks.push(tokio::spawn(async move {
            let mut seq = 0u64;
            let mut tick = (rate > 0.0).then(|| {
                let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            while shared_p.publishing.load(Relaxed) && tokio::time::Instant::now() < end {
                match &mut tick {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => {
                        while seq.saturating_sub(echoed.load(Relaxed)) >= window {
                            if tokio::time::Instant::now() >= end {
                                return;
                            }
                            tokio::time::sleep(Duration::from_micros(200)).await;
                        }
                    }
                }
                seq += 1;
                let frame = format!(
                    r#"{{"type":"chat.message","message":"{i}-{seq} {}"}}"#,
                    now_ns()
                );
                if sink.send(Message::text(frame)).await.is_err() {
                    return;
                }
                shared_p.published.fetch_add(1, Relaxed);
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(args.warmup_secs)).await;
    let (server_cpu0, own_cpu0) = (target.pid.and_then(proc::cpu), proc::own_cpu());
    shared.measuring.store(true, Relaxed);
    tokio::time::sleep(Duration::from_secs(args.duration_secs)).await;
    shared.measuring.store(false, Relaxed);
    let (server_cpu1, own_cpu1) = (target.pid.and_then(proc::cpu), proc::own_cpu());
    shared.publishing.store(false, Relaxed);
    for task in tasks {
        let _ = task.await;
    }

    let measured = shared.measured.load(Relaxed);
    let rejected = shared.rejected.load(Relaxed);
    let published = shared.published.load(Relaxed) - rejected;
    let expected = published * args.members as u64;
    let delivered = shared.delivered.load(Relaxed);
    let per_sec = measured as f64 / args.duration_secs as f64;
    println!(
        "fanout: {} publishers/room, {}: {per_sec:.0} deliveries/s; published {published} ({rejected} more rejected), delivered {delivered} of {expected} (loss {:.4}%)",
        args.publishers,
        if args.rate > 0.0 {
            format!("open loop at {} msg/s each", args.rate)
        } else {
            format!("closed loop, window {}", args.window)
        },
        100.0 * expected.saturating_sub(delivered) as f64 / expected.max(1) as f64
    );
    println!(
        "delivery latency: {}",
        proc::latency_line(&*shared.latency.lock().await)
    );
    let million = measured as f64 / 1e6;
    if let (Some(a), Some(b)) = (server_cpu0, server_cpu1) {
        let cpu = (b - a).as_secs_f64();
        println!(
            "server CPU: {cpu:.2} s over {} s = {:.2} CPU-s per million deliveries",
            args.duration_secs,
            cpu / million.max(1e-9)
        );
    }
    let own = (own_cpu1 - own_cpu0).as_secs_f64();
    println!("generator CPU: {own:.2} s over {} s", args.duration_secs);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_send_time_is_read_from_a_chat_message_frame() {
        let frame =
            r#"{"type":"chat.message","id":1,"room":"r","message":"3-17 1234567","user":{}}"#;
        assert_eq!(super::sent_ns(frame), Some(1_234_567));
        assert_eq!(
            super::sent_ns(r#"{"type":"presence","message":"3-1 5"}"#),
            None
        );
    }
}
