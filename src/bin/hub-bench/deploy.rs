//! `deploy`: one node of a cluster is stopped with SIGTERM under chat
//! traffic, as a deploy stops it, and its clients come back on the others.
//!
//! Sockets are spread over the nodes so that every room spans them, by
//! several worker processes (each from its own loopback source address, as
//! `connect`). One member of each room speaks at a fixed rate, each message
//! carrying its send time. When the first node is stopped, every socket it
//! held reconnects as the pages do: to another node (at random, as a load
//! balancer would pick), with `?since=` of the
//! last id it saw, after the pages' backoff (500 ms doubled at each failure
//! up to 15 s, times 0.5 to 1.5). Ids are numbered per room from 1 on a
//! fresh database, so each socket should end with every id of its room once:
//! what it lacks is lost, what it got twice is duplicated.
//!
//! Reported: how long the stopped node took to exit and until every socket
//! was back, messages lost and duplicated, and the delivery delay (send to
//! receipt, history replays included) before and after the stop.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, Write};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use crate::connect::{Socket, open};
use crate::{Target, proc, users};

#[derive(clap::Args)]
pub struct Args {
    /// Sockets in all, over every node.
    #[arg(long, default_value_t = 30_000)]
    sockets: usize,
    /// Worker processes (each from its own source address 127.0.0.2, .3, …).
    #[arg(long, default_value_t = 3)]
    processes: usize,
    /// Rooms the sockets are spread over; each spans the nodes.
    #[arg(long, default_value_t = 3000)]
    rooms: usize,
    /// Messages a second in each room.
    #[arg(long, default_value_t = 0.2)]
    rate: f64,
    /// Handshakes in flight at once while opening, over all workers.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds of traffic before the node is stopped.
    #[arg(long, default_value_t = 10)]
    before_secs: u64,
    /// Seconds of traffic after it.
    #[arg(long, default_value_t = 60)]
    after_secs: u64,
    /// The first `--server`'s process, stopped with SIGTERM.
    #[arg(long)]
    kill_pid: u32,
}

#[derive(clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    share: proc::Share,
    #[arg(long)]
    rooms: usize,
    #[arg(long)]
    rate: f64,
}

/// When the workers speak, when the node is stopped, when they stop
/// speaking: milliseconds since the Unix epoch, sent to each worker's stdin.
#[derive(Serialize, Deserialize, Clone, Copy)]
struct Go {
    stop_node_ms: u64,
    quiet_ms: u64,
}

/// How long deliveries may still arrive once the speakers are quiet: what
/// has not come by then counts as lost. Far beyond the delays measured
/// under the storm on two shared cores (p99.9 about 10 s).
const SETTLE: Duration = Duration::from_secs(30);

/// A worker's account, printed as one line when it is done.
#[derive(Serialize, Deserialize, Default)]
struct Report {
    /// Sockets open before the stop.
    opened: usize,
    open_failures: BTreeMap<String, usize>,
    /// Per room, the highest id any of this worker's sockets saw.
    newest: BTreeMap<usize, i64>,
    /// What each socket got.
    sockets: Vec<Account>,
    duplicates: u64,
    /// Sockets the stop closed, how long each took to be back (ms), and
    /// those never back.
    dropped: usize,
    back_ms: Vec<u64>,
    last_back_ms: u64,
    never_back: usize,
    reconnect_failures: BTreeMap<String, usize>,
    published: u64,
    /// Delivery delays in µs, as (value, count), per [`WINDOWS`].
    delays: [Vec<(u64, u64)>; 3],
}

/// What the delivery delays are told apart by: messages sent before the
/// stop; after it, to sockets still on their first node; and to sockets
/// that had moved (history replays included).
const WINDOWS: [&str; 3] = [
    "before the stop",
    "after the stop, to sockets that stayed",
    "after the stop, to sockets that moved (replays included)",
];

/// One socket's room, whether it moved, and the ids it got, as ranges.
#[derive(Serialize, Deserialize)]
struct Account {
    room: usize,
    moved: bool,
    got: Vec<(i64, i64)>,
}

impl Account {
    /// The ids from 1 to `newest` this socket lacks.
    fn missing(&self, newest: i64) -> Vec<i64> {
        let mut missing = Vec::new();
        let mut next = 1;
        for &(first, last) in &self.got {
            missing.extend(next..first.min(newest + 1));
            next = next.max(last + 1);
        }
        missing.extend(next..=newest);
        missing
    }
}

/// Ids as sorted ranges of consecutive ids.
fn ranges(ids: &HashSet<i64>) -> Vec<(i64, i64)> {
    let mut sorted: Vec<i64> = ids.iter().copied().collect();
    sorted.sort_unstable();
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for id in sorted {
        match ranges.last_mut() {
            Some((_, last)) if *last + 1 == id => *last = id,
            _ => ranges.push((id, id)),
        }
    }
    ranges
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The instant a wall-clock time falls at, on this process's clock.
fn at(unix_ms: u64) -> tokio::time::Instant {
    let ahead = unix_ms.saturating_sub(now_ms());
    tokio::time::Instant::now() + Duration::from_millis(ahead)
}

fn buckets(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

pub async fn run(target: Target, args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        target.servers.len() >= 2,
        "deploy needs two --server or more"
    );
    anyhow::ensure!(
        (1..=100_000).contains(&args.sockets) && (1..=200).contains(&args.processes),
        "--sockets is 1 to 100,000 and --processes 1 to 200"
    );
    anyhow::ensure!(
        args.rooms >= 1 && args.rate > 0.0 && args.rate <= 100.0,
        "--rooms is at least 1 and --rate above 0, at most 100"
    );
    anyhow::ensure!(
        args.before_secs <= 600 && args.after_secs <= 600,
        "runs are bounded: --before-secs and --after-secs ≤ 600"
    );
    // Created here, once, so the workers only read them.
    users::ensure(args.sockets)?;
    let extra = [
        "--rooms".to_owned(),
        args.rooms.to_string(),
        "--rate".to_owned(),
        args.rate.to_string(),
    ];
    let mut children = proc::spawn_workers(
        &target,
        "deploy-worker",
        args.sockets,
        args.processes,
        args.concurrency,
        &extra,
    )?;
    // Each worker says how many it opened once its sockets are open.
    let mut outs = Vec::new();
    let mut opened = 0usize;
    let mut open_failures: BTreeMap<String, usize> = BTreeMap::new();
    for child in &mut children {
        let mut out = std::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        out.read_line(&mut line)?;
        let (n, failures): (usize, BTreeMap<String, usize>) = serde_json::from_str(&line)?;
        opened += n;
        for (k, v) in failures {
            *open_failures.entry(k).or_default() += v;
        }
        outs.push(out);
    }
    println!(
        "deploy: {opened} of {} sockets open over {} nodes in {} rooms; failures {open_failures:?}",
        args.sockets,
        target.servers.len(),
        args.rooms
    );

    let start = now_ms() + 500;
    let go = Go {
        stop_node_ms: start + args.before_secs * 1000,
        quiet_ms: start + (args.before_secs + args.after_secs) * 1000,
    };
    let line = serde_json::to_string(&go)? + "\n";
    for child in &mut children {
        child
            .stdin
            .as_mut()
            .expect("piped")
            .write_all(line.as_bytes())?;
    }
    tokio::time::sleep_until(at(go.stop_node_ms)).await;
    let stopped = std::time::Instant::now();
    // SAFETY: kill(2) with a pid and a signal number has no memory effects.
    let sent = unsafe { libc::kill(i32::try_from(args.kill_pid)?, libc::SIGTERM) };
    anyhow::ensure!(sent == 0, "could not signal process {}", args.kill_pid);
    println!("deploy: SIGTERM sent to process {}", args.kill_pid);
    let proc_dir = format!("/proc/{}", args.kill_pid);
    let mut exited = None;
    while stopped.elapsed() < Duration::from_secs(args.after_secs) {
        // Gone, or a zombie its parent has not reaped: it has exited.
        let state = std::fs::read_to_string(format!("{proc_dir}/stat")).unwrap_or_default();
        if state.is_empty() || state.split(' ').nth(2) == Some("Z") {
            exited = Some(stopped.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut total = Report::default();
    let mut delays = [proc::histogram(), proc::histogram(), proc::histogram()];
    for mut out in outs {
        let mut line = String::new();
        out.read_line(&mut line)?;
        let report: Report = serde_json::from_str(&line)?;
        for (room, id) in report.newest {
            let newest = total.newest.entry(room).or_default();
            *newest = (*newest).max(id);
        }
        total.sockets.extend(report.sockets);
        total.duplicates += report.duplicates;
        total.dropped += report.dropped;
        total.back_ms.extend(report.back_ms);
        total.last_back_ms = total.last_back_ms.max(report.last_back_ms);
        total.never_back += report.never_back;
        for (k, v) in report.reconnect_failures {
            *total.reconnect_failures.entry(k).or_default() += v;
        }
        total.published += report.published;
        for (window, buckets) in delays.iter_mut().zip(report.delays) {
            for (us, n) in buckets {
                window.saturating_record_n(us, n);
            }
        }
    }
    for mut child in children {
        child.wait()?;
    }

    // Every socket joined before the first message: it should hold every
    // id of its room, from 1 to the newest any socket saw.
    let (mut expected, mut lost, mut lost_moved) = (0i64, 0usize, 0usize);
    let mut examples = Vec::new();
    for socket in &total.sockets {
        let newest = total.newest.get(&socket.room).copied().unwrap_or(0);
        expected += newest;
        let missing = socket.missing(newest);
        lost += missing.len();
        if socket.moved {
            lost_moved += missing.len();
        }
        if !missing.is_empty() && examples.len() < 5 {
            examples.push(format!(
                "room {} ({}, newest {newest}): {:?}",
                socket.room,
                if socket.moved { "moved" } else { "stayed" },
                &missing[..missing.len().min(8)]
            ));
        }
    }
    match exited {
        Some(after) => println!(
            "deploy: the node exited {:.2} s after SIGTERM",
            after.as_secs_f64()
        ),
        None => println!(
            "deploy: the node had not exited {} s after SIGTERM",
            args.after_secs
        ),
    }
    total.back_ms.sort_unstable();
    // The socket at `permille` of the way through, in seconds.
    let quantile = |permille: usize| {
        let n = total.back_ms.len();
        (n > 0).then(|| total.back_ms[(n - 1) * permille / 1000] as f64 / 1000.0)
    };
    println!(
        "deploy: {} sockets dropped, {} back, {} never; every socket back {:.2} s after SIGTERM (per socket: p50 {:.2} s, p99 {:.2} s); reconnect failures {:?}",
        total.dropped,
        total.back_ms.len(),
        total.never_back,
        total.last_back_ms.saturating_sub(go.stop_node_ms) as f64 / 1000.0,
        quantile(500).unwrap_or(0.0),
        quantile(990).unwrap_or(0.0),
        total.reconnect_failures
    );
    println!(
        "deploy: {} messages published, {expected} deliveries due: {lost} lost ({lost_moved} to sockets that moved), {} duplicated",
        total.published, total.duplicates
    );
    for example in examples {
        println!("deploy: lost, for example, in {example}");
    }
    for (name, window) in WINDOWS.iter().zip(&delays) {
        println!("delivery delay {name}: {}", proc::latency_line(window));
    }
    Ok(())
}

/// One socket: its room, whether it is the room's speaker, its connection.
struct Member {
    room: usize,
    speaks: bool,
    ws: Socket,
}

/// What a worker's sockets add up to, and what they all follow.
struct Tally {
    report: Mutex<Report>,
    /// Delivery delays, µs, per [`WINDOWS`]: one set for the worker (a
    /// histogram of this range is about 230 KB, too much to keep one per
    /// socket).
    delays: std::sync::Mutex<[Histogram<u64>; 3]>,
    go: Go,
    source: Ipv4Addr,
    rate: f64,
    target: Target,
}

pub async fn worker(target: Target, args: WorkerArgs) -> anyhow::Result<()> {
    let ids = users::ensure(args.share.total)?;
    let codec = users::codec()?;
    let per_room = args.share.total.div_ceil(args.rooms.max(1));
    let nodes = target.servers.len();
    let limit = Arc::new(tokio::sync::Semaphore::new(args.share.concurrency.max(1)));
    let mut opening = Vec::new();
    for i in (args.share.first..args.share.total).take(args.share.count) {
        let (room, seat) = (i % args.rooms, i / args.rooms);
        // Seat k of a room is on node k mod N, so every room spans the
        // nodes; the room's speaker sits on a node of its own choosing.
        let server = seat % nodes;
        let speaks = seat == room % nodes.min(per_room);
        let token = users::access_token(&codec, ids[i]);
        let (limit, target, source) = (limit.clone(), target.clone(), args.share.source);
        opening.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await.expect("never closed");
            let path = format!("/ws/chat/deploy-{room}/");
            let ws = open(target.servers[server], source, &path, &token).await?;
            Ok::<_, String>((room, speaks, server, token, ws))
        }));
    }
    let mut members = Vec::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for task in opening {
        match task.await? {
            Ok(member) => members.push(member),
            Err(why) => *failures.entry(why).or_default() += 1,
        }
    }
    println!("{}", serde_json::to_string(&(members.len(), &failures))?);

    let mut line = String::new();
    tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await?;
    let go: Go = serde_json::from_str(&line)?;
    let tally = Arc::new(Tally {
        report: Mutex::new(Report {
            opened: members.len(),
            open_failures: failures,
            ..Report::default()
        }),
        delays: std::sync::Mutex::new([proc::histogram(), proc::histogram(), proc::histogram()]),
        go,
        source: args.share.source,
        rate: args.rate,
        target,
    });
    let tasks: Vec<_> = members
        .into_iter()
        .map(|(room, speaks, server, token, ws)| {
            let member = Member { room, speaks, ws };
            tokio::spawn(live(tally.clone(), member, server, token))
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let mut report = std::mem::take(&mut *tally.report.lock().await);
    {
        let delays = tally.delays.lock().unwrap_or_else(|p| p.into_inner());
        report.delays = [
            buckets(&delays[0]),
            buckets(&delays[1]),
            buckets(&delays[2]),
        ];
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// What one socket saw.
#[derive(Default)]
struct Seen {
    ids: HashSet<i64>,
    newest: i64,
    duplicates: u64,
    published: u64,
    /// The socket's first node went away.
    moved: bool,
}

impl Seen {
    /// Counts a message and its delay, from its id and its text
    /// (`"<room>-<n> <sent µs>"`).
    fn message(&mut self, message: &serde_json::Value, tally: &Tally) {
        let Some(id) = message["id"].as_i64() else {
            return;
        };
        if !self.ids.insert(id) {
            self.duplicates += 1;
            return;
        }
        self.newest = self.newest.max(id);
        let sent = message["message"]
            .as_str()
            .and_then(|t| t.split(' ').nth(1))
            .and_then(|us| us.parse::<u64>().ok());
        if let Some(sent) = sent {
            let delay = now_us().saturating_sub(sent);
            let mut delays = tally.delays.lock().unwrap_or_else(|p| p.into_inner());
            let window = match (sent / 1000 < tally.go.stop_node_ms, self.moved) {
                (true, _) => 0,
                (false, false) => 1,
                (false, true) => 2,
            };
            delays[window].saturating_record(delay);
        }
    }
}

/// One socket's life: it listens (and speaks, if it is its room's
/// speaker) until the quiet has settled, and comes back after its node goes.
async fn live(tally: Arc<Tally>, member: Member, home: usize, token: String) {
    let go = tally.go;
    let (quiet, end) = (at(go.quiet_ms), at(go.quiet_ms) + SETTLE);
    let mut seen = Seen::default();
    // Speakers start at random points of their period, so rooms do not
    // speak in step.
    let period = Duration::from_secs_f64(1.0 / tally.rate);
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + period.mul_f64(rand::random_range(0.0..1.0)),
        period,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ws = Some(member.ws);
    let mut server = home;
    let mut dropped_at: Option<u64> = None;
    let (mut back, mut never) = (None, false);
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut n = 0u64;
    while let Some(mut socket) = ws.take() {
        let closed = loop {
            tokio::select! {
                frame = socket.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        let Ok(frame) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
                        match frame["type"].as_str() {
                            Some("chat.message") => seen.message(&frame, &tally),
                            Some("chat.history") => {
                                for message in frame["messages"].as_array().into_iter().flatten() {
                                    seen.message(message, &tally);
                                }
                            }
                            _ => {}
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break true,
                },
                _ = tick.tick(), if member.speaks && tokio::time::Instant::now() < quiet => {
                    n += 1;
                    let text = format!(
                        r#"{{"type":"chat.message","message":"{}-{n} {}"}}"#,
                        member.room,
                        now_us()
                    );
                    if socket.send(Message::text(text)).await.is_err() {
                        break true;
                    }
                    seen.published += 1;
                }
                () = tokio::time::sleep_until(end) => break false,
            }
        };
        if !closed {
            break;
        }
        // The node went away: back on the next one, as the pages come back.
        let since = dropped_at.get_or_insert_with(now_ms);
        seen.moved = true;
        let mut retry = 0u32;
        while tokio::time::Instant::now() < end {
            let doubled = 500u64.saturating_mul(1 << retry.min(5)).min(15_000);
            let wait = Duration::from_millis(doubled).mul_f64(rand::random_range(0.5..1.5));
            tokio::time::sleep(wait).await;
            retry += 1;
            // Another node, at random, as a load balancer would pick
            // among those left.
            let others = tally.target.servers.len() - 1;
            server = (server + 1 + rand::random_range(0..others)) % (others + 1);
            let path = match seen.newest {
                0 => format!("/ws/chat/deploy-{}/", member.room),
                id => format!("/ws/chat/deploy-{}/?since={id}", member.room),
            };
            match open(tally.target.servers[server], tally.source, &path, &token).await {
                Ok(socket) => {
                    back = Some(now_ms().saturating_sub(*since));
                    ws = Some(socket);
                    break;
                }
                Err(why) => *failures.entry(why).or_default() += 1,
            }
        }
        if ws.is_none() {
            never = true;
        }
    }
    let mut report = tally.report.lock().await;
    let newest = report.newest.entry(member.room).or_default();
    *newest = (*newest).max(seen.newest);
    report.sockets.push(Account {
        room: member.room,
        moved: seen.moved,
        got: ranges(&seen.ids),
    });
    report.duplicates += seen.duplicates;
    report.published += seen.published;
    if dropped_at.is_some() {
        report.dropped += 1;
        if never {
            report.never_back += 1;
        }
    }
    if let Some(ms) = back {
        report.back_ms.push(ms);
        report.last_back_ms = report.last_back_ms.max(dropped_at.unwrap_or(0) + ms);
    }
    for (k, v) in failures {
        *report.reconnect_failures.entry(k).or_default() += v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sockets_missing_ids_are_the_gaps_and_the_tail_of_its_ranges() {
        let ids: HashSet<i64> = [1, 2, 3, 5, 6, 9].into_iter().collect();
        let socket = Account {
            room: 0,
            moved: true,
            got: ranges(&ids),
        };
        assert_eq!(socket.got, [(1, 3), (5, 6), (9, 9)]);
        assert_eq!(socket.missing(11), [4, 7, 8, 10, 11]);
        let none = Account {
            room: 0,
            moved: false,
            got: Vec::new(),
        };
        assert_eq!(none.missing(2), [1, 2]);
    }
}
