//! `connect`: many authenticated chat sockets, opened at a bounded
//! concurrency by several worker processes, each from its own loopback source
//! address (one process holds at most about 19,900 files, and one source
//! address reaches about 28,000 ports of one destination).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::{Target, proc, users};

#[derive(clap::Args)]
pub struct Args {
    /// Sockets to open in all.
    #[arg(long, default_value_t = 1000)]
    sockets: usize,
    /// Handshakes in flight at once, over all workers.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Worker processes (each from its own source address 127.0.0.2, .3, …).
    #[arg(long, default_value_t = 2)]
    processes: usize,
    /// How long to hold the sockets idle after they are open.
    #[arg(long, default_value_t = 20)]
    hold_secs: u64,
    /// Rooms the sockets are spread over.
    #[arg(long, default_value_t = 100)]
    rooms: usize,
}

#[derive(clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    share: proc::Share,
    #[arg(long)]
    hold_secs: u64,
    #[arg(long)]
    rooms: usize,
}

/// What a worker reports once all its handshakes are done.
#[derive(Serialize, Deserialize, Default)]
struct Report {
    opened: usize,
    failures: BTreeMap<String, usize>,
    elapsed_secs: f64,
    /// Handshake latencies, microseconds.
    latencies_us: Vec<u64>,
}

pub async fn run(target: Target, args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.processes >= 1 && args.processes <= 200,
        "--processes is 1 to 200"
    );
    anyhow::ensure!(
        args.sockets >= 1 && args.sockets <= 100_000,
        "--sockets is 1 to 100,000"
    );
    // Created here, once, so the workers only read them.
    users::ensure(args.sockets)?;
    let rss_before = target.pid.and_then(proc::rss_kib);
    let cpu_before = target.pid.and_then(proc::cpu);

    let extra = [
        "--hold-secs".to_owned(),
        args.hold_secs.to_string(),
        "--rooms".to_owned(),
        args.rooms.to_string(),
    ];
    let mut children = proc::spawn_workers(
        &target,
        "connect-worker",
        args.sockets,
        args.processes,
        args.concurrency,
        &extra,
    )?;

    // Each worker prints one report line once its handshakes are done.
    let mut total = Report::default();
    let mut hist = proc::histogram();
    for child in &mut children {
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let report: Report = serde_json::from_str(&line)?;
        total.opened += report.opened;
        for (k, v) in report.failures {
            *total.failures.entry(k).or_default() += v;
        }
        total.elapsed_secs = total.elapsed_secs.max(report.elapsed_secs);
        for us in report.latencies_us {
            hist.saturating_record(us);
        }
    }
    let cpu_open = target.pid.and_then(proc::cpu);
    let workers_cpu: std::time::Duration = children.iter().filter_map(|c| proc::cpu(c.id())).sum();
    let rss_open = target.pid.and_then(proc::rss_kib);
    println!(
        "connect: {} of {} sockets open in {:.2} s: {:.0} handshakes/s; failures {:?}",
        total.opened,
        args.sockets,
        total.elapsed_secs,
        total.opened as f64 / total.elapsed_secs.max(1e-9),
        total.failures
    );
    println!("handshake latency: {}", proc::latency_line(&hist));
    if let (Some(before), Some(after)) = (cpu_before, cpu_open) {
        let per_k = (after - before).as_secs_f64() * 1000.0 / total.opened.max(1) as f64 * 1000.0;
        println!(
            "server CPU: {:.2} s for the handshakes, {per_k:.1} ms per 1,000; generator CPU: {:.2} s",
            (after - before).as_secs_f64(),
            workers_cpu.as_secs_f64()
        );
    }
    report_memory("open", rss_before, rss_open, total.opened);

    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    let rss_idle = target.pid.and_then(proc::rss_kib);
    report_memory(
        &format!("after {} s idle", args.hold_secs),
        rss_before,
        rss_idle,
        total.opened,
    );
    for mut child in children {
        drop(child.stdin.take());
        child.wait()?;
    }
    Ok(())
}

fn report_memory(when: &str, before: Option<u64>, after: Option<u64>, sockets: usize) {
    if let (Some(before), Some(after)) = (before, after) {
        let grown = after.saturating_sub(before);
        println!(
            "server memory {when}: {after} KiB resident, +{grown} KiB for {sockets} sockets = {:.2} KiB per socket",
            grown as f64 / sockets.max(1) as f64
        );
    }
}

pub async fn worker(target: Target, args: WorkerArgs) -> anyhow::Result<()> {
    let ids = users::ensure(args.share.total)?;
    let codec = users::codec()?;
    let limit = Arc::new(Semaphore::new(args.share.concurrency.max(1)));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<Duration, String>>();
    let started = Instant::now();
    for (i, id) in ids
        .iter()
        .enumerate()
        .skip(args.share.first)
        .take(args.share.count)
    {
        let token = users::access_token(&codec, *id);
        let (limit, tx) = (limit.clone(), tx.clone());
        let path = format!("/ws/chat/bench-{}/", i % args.rooms.max(1));
        // Socket i goes to node i mod N, whichever worker opens it.
        let (server, source) = (target.server(i), args.share.source);
        tokio::spawn(async move {
            let permit = limit.acquire_owned().await.expect("never closed");
            let began = Instant::now();
            let opened = open(server, source, &path, &token).await;
            drop(permit);
            match opened {
                Ok(mut ws) => {
                    let _ = tx.send(Ok(began.elapsed()));
                    // Keep reading, so pings are answered, until the process ends.
                    while let Some(Ok(_)) = ws.next().await {}
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
    }
    drop(tx);

    let mut report = Report::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    for _ in 0..args.share.count {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Ok(latency))) => {
                report.opened += 1;
                report
                    .latencies_us
                    .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
            }
            Ok(Some(Err(reason))) => *report.failures.entry(reason).or_default() += 1,
            Ok(None) | Err(_) => break,
        }
    }
    report.elapsed_secs = started.elapsed().as_secs_f64();
    println!("{}", serde_json::to_string(&report)?);
    // Hold the sockets until the parent closes our stdin (or an hour passes).
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(args.hold_secs + 3600), async {
        use tokio::io::AsyncReadExt;
        while stdin.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    Ok(())
}

pub type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A chat socket from `source`, authenticated with `token`.
pub async fn open(
    server: SocketAddr,
    source: Ipv4Addr,
    path: &str,
    token: &str,
) -> Result<Socket, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {}", e.kind()))?;
    socket
        .bind(SocketAddr::new(IpAddr::V4(source), 0))
        .map_err(|e| format!("bind: {}", e.kind()))?;
    let stream = socket
        .connect(server)
        .await
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let mut request = format!("ws://{server}{path}")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ASCII token"),
    );
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) => Err(format!("http {}", resp.status().as_u16())),
        Err(e) => Err(format!("ws: {e}")),
    }
}
