//! `dns`: Z users own one zone each; N panels (`/ws/dns/` sockets) are
//! spread over those owners, so each panel receives its owner's zone's
//! pushes; one writer connection per zone creates TXT records at W writes a
//! second in all. Each record's content is its send time, so every panel
//! measures write-to-push latency, and counts the pushes it should have had.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{Target, proc, users};

#[derive(clap::Args)]
pub struct Args {
    /// Panels watching, spread evenly over the zones' owners.
    #[arg(long, default_value_t = 1000)]
    panels: usize,
    /// Zones, one per owner, each with a writer connection.
    #[arg(long, default_value_t = 100)]
    zones: usize,
    /// Changes per second, in all, spread evenly over the zones.
    #[arg(long, default_value_t = 200.0)]
    writes_per_sec: f64,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any one setup step (a handshake, a reply) may take.
const STEP: Duration = Duration::from_secs(10);

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The send time a `dns.changed` push carries: the created TXT record's
/// content, microseconds since the epoch.
fn sent_us(frame: &str) -> Option<u64> {
    if !frame.contains(r#""type":"dns.changed""#) {
        return None;
    }
    let content = frame.split(r#""content":""#).nth(1)?;
    content[..content.find('"')?].parse().ok()
}

fn zone_name(owner: usize) -> String {
    format!("bench{owner}.example")
}

pub async fn panel(server: SocketAddr, token: &str) -> anyhow::Result<Socket> {
    let mut request = format!("ws://{server}/ws/dns/").into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(request)).await??;
    Ok(ws)
}

/// Makes zone `name` for the panel's user, unless an earlier run did.
pub async fn ensure_zone(ws: &mut Socket, name: &str) -> anyhow::Result<()> {
    let made = ask(
        ws,
        serde_json::json!({"type": "dns.zone.create", "ref": 0, "name": name}),
    )
    .await?;
    anyhow::ensure!(
        made.contains(r#""type":"dns.result""#) || made.contains(r#""code":"conflict""#),
        "creating {name} failed: {made}"
    );
    Ok(())
}

/// Sends a request and waits for the frame that answers its `ref`,
/// skipping pushes; the reply's text.
pub async fn ask(ws: &mut Socket, request: serde_json::Value) -> anyhow::Result<String> {
    let reference = request["ref"].to_string();
    ws.send(Message::text(request.to_string())).await?;
    let wanted = format!(r#""ref":{reference}"#);
    let reply = async {
        while let Some(frame) = ws.next().await {
            if let Message::Text(text) = frame?
                && text.contains(&wanted)
            {
                return Ok(text.to_string());
            }
        }
        anyhow::bail!("the socket closed before the reply")
    };
    tokio::time::timeout(STEP, reply).await?
}

/// What one zone's writer did.
#[derive(Default)]
struct Written {
    /// Changes the hub applied (answered `dns.result`).
    applied: AtomicU64,
    /// Changes answered with an error frame.
    rejected: AtomicU64,
}

pub async fn run(target: Target, args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.duration_secs <= 600,
        "runs are bounded: --duration-secs ≤ 600"
    );
    anyhow::ensure!(
        args.zones >= 1 && args.panels >= 1 && args.panels + args.zones <= 19_000,
        "--zones and --panels are at least 1, and at most 19,000 sockets in all"
    );
    anyhow::ensure!(
        args.writes_per_sec > 0.0 && args.writes_per_sec <= 100_000.0,
        "--writes-per-sec is above 0 and at most 100,000"
    );
    let owners = users::ensure(args.zones)?;
    let codec = users::codec()?;
    let tokens: Vec<String> = owners
        .iter()
        .map(|id| users::access_token(&codec, *id))
        .collect();

    // Each owner's writer makes the zone (an earlier run on the same
    // database may have made it already: `conflict` is fine).
    let mut writers = Vec::with_capacity(args.zones);
    for (owner, token) in tokens.iter().enumerate() {
        let mut ws = panel(target.server(owner), token).await?;
        let reply = ask(
            &mut ws,
            serde_json::json!({"type": "dns.zone.create", "ref": 0, "name": zone_name(owner)}),
        )
        .await?;
        anyhow::ensure!(
            reply.contains(r#""type":"dns.result""#) || reply.contains(r#""code":"conflict""#),
            "creating {} failed: {reply}",
            zone_name(owner)
        );
        writers.push(ws);
    }

    // Panel i watches owner i % Z's zone. A panel counts as watching once
    // the hub has answered it: by then its session is registered for pushes.
    // A zone's panels take the nodes in turn (its writer is on one of them),
    // so with several nodes most pushes cross from one node to another.
    let mut watchers = vec![0u64; args.zones];
    let mut panels = Vec::with_capacity(args.panels);
    for i in 0..args.panels {
        let owner = i % args.zones;
        let mut ws = panel(target.server(i / args.zones), &tokens[owner]).await?;
        let reply = ask(&mut ws, serde_json::json!({"type": "dns.zones", "ref": 0})).await?;
        anyhow::ensure!(
            reply.contains(&zone_name(owner)),
            "panel {i} does not see its zone: {reply}"
        );
        watchers[owner] += 1;
        panels.push(ws);
    }
    println!(
        "dns: {} panels over {} zones connected",
        args.panels, args.zones
    );

    let received = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(Mutex::new(proc::histogram()));
    let end = tokio::time::Instant::now() + Duration::from_secs(args.duration_secs);
    // Pushes still on their way when the writers stop arrive within this.
    let drain_end = end + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for mut ws in panels {
        let (received, latency) = (received.clone(), latency.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = proc::histogram();
            let reading = async {
                // Pings are answered by the client library; only text counts.
                while let Some(Ok(message)) = ws.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    if let Some(sent) = sent_us(&text) {
                        received.fetch_add(1, Relaxed);
                        local.saturating_record(now_us().saturating_sub(sent));
                    }
                }
            };
            let _ = tokio::time::timeout_at(drain_end, reading).await;
            latency.lock().await.add(&local).expect("same bounds");
        }));
    }

    let per_writer = args.writes_per_sec / args.zones as f64;
    let written: Arc<Vec<Written>> =
        Arc::new((0..args.zones).map(|_| Written::default()).collect());
    let server_cpu0 = target.pid.and_then(proc::cpu);
    for (owner, ws) in writers.into_iter().enumerate() {
        let (mut sink, mut stream) = ws.split();
        let written_r = written.clone();
        // Replies count the changes applied; the writer's own pushes are
        // read (so its queue never fills) and not counted.
        tasks.push(tokio::spawn(async move {
            let reading = async {
                while let Some(Ok(message)) = stream.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    if text.contains(r#""type":"dns.result""#) {
                        written_r[owner].applied.fetch_add(1, Relaxed);
                    } else if text.contains(r#""type":"error""#) {
                        written_r[owner].rejected.fetch_add(1, Relaxed);
                    }
                }
            };
            let _ = tokio::time::timeout_at(drain_end, reading).await;
        }));
        let zone = zone_name(owner);
        tasks.push(tokio::spawn(async move {
            // Writers start spread over one period, not all at once.
            let period = Duration::from_secs_f64(1.0 / per_writer);
            let offset = period.mul_f64(owner as f64 / args.zones as f64);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seq = 0u64;
            while tokio::time::Instant::now() < end {
                tick.tick().await;
                seq += 1;
                let sent = now_us();
                // The time in the name too keeps names unique across runs
                // on one database.
                let frame = serde_json::json!({
                    "type": "dns.create", "ref": seq, "zone": zone,
                    "record": {"name": format!("w{seq}-{sent}"), "type": "TXT", "content": sent.to_string()},
                });
                if sink.send(Message::text(frame.to_string())).await.is_err() {
                    return;
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let server_cpu1 = target.pid.and_then(proc::cpu);

    let applied: u64 = written.iter().map(|w| w.applied.load(Relaxed)).sum();
    let rejected: u64 = written.iter().map(|w| w.rejected.load(Relaxed)).sum();
    let expected: u64 = written
        .iter()
        .zip(&watchers)
        .map(|(w, panels)| w.applied.load(Relaxed) * panels)
        .sum();
    let received = received.load(Relaxed);
    println!(
        "dns: {applied} changes applied at {} writes/s ({rejected} rejected), pushes {received} of {expected} (lost {})",
        args.writes_per_sec,
        expected.saturating_sub(received)
    );
    println!(
        "write-to-push latency: {}",
        proc::latency_line(&*latency.lock().await)
    );
    if let (Some(a), Some(b)) = (server_cpu0, server_cpu1) {
        let cpu = (b - a).as_secs_f64();
        println!(
            "server CPU: {cpu:.2} s = {:.2} CPU-ms per change",
            1000.0 * cpu / applied.max(1) as f64
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_send_time_is_read_from_a_dns_changed_push() {
        let frame = r#"{"by":{"id":1},"changes":[{"action":"created","record":{"content":"1234567","type":"TXT"}}],"type":"dns.changed"}"#;
        assert_eq!(super::sent_us(frame), Some(1_234_567));
        assert_eq!(
            super::sent_us(r#"{"type":"dns.result","content":"5"}"#),
            None
        );
    }
}
