//! `soak`: everything at once for a while (sockets opened and closed,
//! cleanly or dropped, chat, dashboards, ingest and DNS changes), then
//! nothing; the hub must come back to where it was. A warm-up round of the
//! same load comes first, so that pools and caches filled once are part of
//! the baseline and only what grows with the load counts.
//!
//! Compared after the load, with the baseline: open sockets, rooms, bus
//! topics and database connections in use (`/metrics`; the pool's open
//! connections are shown, since it keeps idle ones for minutes by design),
//! the process's open descriptors, with `--redis` the
//! keys in Redis (each must be back where it was), and resident memory
//! (it may stay above the baseline by what the allocator keeps, within
//! `--rss-slack-mib`). It exits 1 when any of them did not come back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::{Target, proc, users};

#[derive(clap::Args)]
pub struct Args {
    /// Seconds of load after the warm-up (at most an hour).
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// Seconds of the same load first, before the baseline is read.
    #[arg(long, default_value_t = 10)]
    warmup_secs: u64,
    /// Loops opening and closing chat sockets at once.
    #[arg(long, default_value_t = 40)]
    churners: usize,
    /// Chat sockets opened per second, over all churners. A socket the
    /// client drops leaves its port in TIME_WAIT for a minute, and one
    /// source address has about 28,000 ports: faster than this, a long
    /// run would run out of ports, not the hub of anything.
    #[arg(long, default_value_t = 300)]
    sockets_per_sec: u32,
    /// Chat rooms the churners spread over.
    #[arg(long, default_value_t = 20)]
    rooms: usize,
    /// Users (each churner, dashboard and DNS writer is one of them, or a
    /// guest).
    #[arg(long, default_value_t = 20)]
    users: usize,
    /// The hub's HUB_INGEST_KEY.
    #[arg(long, env = "HUB_INGEST_KEY")]
    ingest_key: String,
    /// The hub's Redis, to count its keys before and after.
    #[arg(long)]
    redis: Option<String>,
    /// How far resident memory may stay above the baseline, in MiB.
    #[arg(long, default_value_t = 64)]
    rss_slack_mib: u64,
}

/// How often resident memory is shown during the load.
const MEMORY_EVERY_SECS: u64 = 300;

/// What is compared before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Sample {
    sockets: i64,
    rooms: i64,
    topics: i64,
    db_open: i64,
    db_in_use: i64,
    descriptors: Option<u64>,
    redis_keys: Option<u64>,
    rss_kib: Option<u64>,
}

/// Open descriptors of a process.
fn descriptors(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(dir.count() as u64)
}

/// The value of an unlabelled metric, or the sum of a labelled one's.
fn metric(text: &str, name: &str) -> i64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        .sum()
}

async fn sample(
    target: &Target,
    client: &reqwest::Client,
    redis: Option<&str>,
) -> anyhow::Result<Sample> {
    let text = client
        .get(format!("http://{}/metrics", target.server(0)))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let redis_keys = match redis {
        Some(url) => {
            let mut conn = redis::Client::open(url)?
                .get_multiplexed_async_connection()
                .await?;
            Some(redis::cmd("DBSIZE").query_async(&mut conn).await?)
        }
        None => None,
    };
    Ok(Sample {
        sockets: metric(&text, "hub_connections"),
        rooms: metric(&text, "hub_rooms"),
        topics: metric(&text, "hub_bus_topics"),
        db_open: metric(&text, "hub_db_connections"),
        db_in_use: metric(&text, "hub_db_connections_in_use"),
        descriptors: target.pid.and_then(descriptors),
        redis_keys,
        rss_kib: target.pid.and_then(proc::rss_kib),
    })
}

/// The users the load speaks as. A token is minted for every socket: a
/// run outlasts an access token's lifetime (5 minutes by default).
struct People {
    ids: Vec<i32>,
    codec: hub::auth::jwt::TokenCodec,
}

impl People {
    /// A fresh token of the `i`-th user (in turn).
    fn token(&self, i: usize) -> String {
        users::access_token(&self.codec, self.ids[i % self.ids.len()])
    }
}

/// What the load did, counted as it goes.
#[derive(Default)]
struct Done {
    sockets: AtomicU64,
    messages: AtomicU64,
    events: AtomicU64,
    dns_changes: AtomicU64,
    failures: AtomicU64,
}

impl Done {
    fn line(&self) -> String {
        format!(
            "{} sockets, {} chat messages, {} ingested events, {} DNS changes, {} failures",
            self.sockets.load(Relaxed),
            self.messages.load(Relaxed),
            self.events.load(Relaxed),
            self.dns_changes.load(Relaxed),
            self.failures.load(Relaxed)
        )
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(
    server: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<Socket> {
    let mut request = format!("ws://{server}{path}").into_client_request()?;
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    let (ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(request)).await??;
    Ok(ws)
}

/// The longest one step (a handshake, a reply) may take.
const STEP: Duration = Duration::from_secs(10);

/// Reads until a text frame holding `wanted`.
async fn until(ws: &mut Socket, wanted: &str) -> anyhow::Result<()> {
    let read = async {
        while let Some(frame) = ws.next().await {
            if let Message::Text(text) = frame?
                && text.contains(wanted)
            {
                return Ok(());
            }
        }
        anyhow::bail!("closed before {wanted}")
    };
    tokio::time::timeout(STEP, read).await?
}

/// One churner's round: a chat socket (a user's or a guest's) that joins,
/// speaks, and leaves cleanly or by dropping the connection.
async fn chat_round(
    target: &Target,
    token: Option<&str>,
    round: usize,
    room: usize,
) -> anyhow::Result<u64> {
    let path = format!("/ws/chat/soak-{room}/");
    let mut ws = open(target.server(round), &path, token).await?;
    until(&mut ws, "chat.history").await?;
    let said = json!({"type": "chat.message", "ref": round, "message": format!("soak {round}")});
    ws.send(Message::text(said.to_string())).await?;
    until(&mut ws, &format!(r#""ref":{round}"#)).await?;
    if round.is_multiple_of(2) {
        ws.close(None).await?;
        while ws.next().await.is_some() {}
    }
    Ok(1)
}

/// One dashboard's round: a snapshot, a moment, a close.
async fn dashboard_round(target: &Target, token: &str, round: usize) -> anyhow::Result<()> {
    let mut ws = open(target.server(round), "/ws/analytics/", Some(token)).await?;
    until(&mut ws, "analytics.snapshot").await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    ws.close(None).await?;
    while ws.next().await.is_some() {}
    Ok(())
}

/// One DNS writer's round: a panel that adds a record and takes it away.
async fn dns_round(
    target: &Target,
    token: &str,
    owner: usize,
    round: usize,
) -> anyhow::Result<u64> {
    let mut ws = open(target.server(round), "/ws/dns/", Some(token)).await?;
    let zone = format!("soak{owner}.example");
    let create = json!({"type": "dns.zone.create", "ref": "z", "name": zone});
    ws.send(Message::text(create.to_string())).await?;
    until(&mut ws, r#""ref":"z""#).await?;
    let record = json!({"name": format!("r{round}"), "type": "A", "content": "192.0.2.1"});
    let add = json!({"type": "dns.create", "ref": "a", "zone": zone, "record": record});
    ws.send(Message::text(add.to_string())).await?;
    let mut id = None;
    let read = async {
        while let Some(frame) = ws.next().await {
            if let Message::Text(text) = frame?
                && text.contains(r#""ref":"a""#)
            {
                let reply: serde_json::Value = serde_json::from_str(&text)?;
                id = reply["record"]["id"].as_i64();
                return Ok(());
            }
        }
        anyhow::bail!("closed before the record was made")
    };
    tokio::time::timeout(STEP, read).await??;
    let id = id.ok_or_else(|| anyhow::anyhow!("the record was refused"))?;
    let delete = json!({"type": "dns.delete", "ref": "d", "zone": zone, "id": id});
    ws.send(Message::text(delete.to_string())).await?;
    until(&mut ws, r#""ref":"d""#).await?;
    ws.close(None).await?;
    while ws.next().await.is_some() {}
    Ok(2)
}

/// Every kind of load until `end`.
async fn load(target: &Target, args: &Args, people: &Arc<People>, end: Instant, done: &Arc<Done>) {
    let mut tasks = Vec::new();
    let count =
        |done: &Done, result: anyhow::Result<u64>, counter: fn(&Done) -> &AtomicU64| match result {
            Ok(n) => {
                counter(done).fetch_add(n, Relaxed);
            }
            Err(_) => {
                done.failures.fetch_add(1, Relaxed);
            }
        };
    // Churner c does rounds c, c + n, c + 2n… (n churners), each churner
    // its share of the sockets a second.
    let stride = args.churners;
    let pace = Duration::from_secs_f64(stride as f64 / f64::from(args.sockets_per_sec));
    for c in 0..args.churners {
        let (target, people, done, rooms) =
            (target.clone(), people.clone(), done.clone(), args.rooms);
        tasks.push(tokio::spawn(async move {
            let mut round = c;
            let mut tick = tokio::time::interval(pace);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while Instant::now() < end {
                tick.tick().await;
                // Every third socket is a guest's.
                let token = (!round.is_multiple_of(3)).then(|| people.token(round));
                let result = chat_round(&target, token.as_deref(), round, round % rooms).await;
                done.sockets.fetch_add(1, Relaxed);
                count(&done, result, |d| &d.messages);
                round += stride;
            }
        }));
    }
    for d in 0..4 {
        let (target, people, done) = (target.clone(), people.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut round = d;
            while Instant::now() < end {
                let result = dashboard_round(&target, &people.token(round), round).await;
                done.sockets.fetch_add(1, Relaxed);
                count(&done, result.map(|()| 0), |d| &d.messages);
                round += 4;
            }
        }));
    }
    for owner in 0..4.min(people.ids.len()) {
        let (target, people, done) = (target.clone(), people.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut round = 0;
            while Instant::now() < end {
                let result = dns_round(&target, &people.token(owner), owner, round).await;
                done.sockets.fetch_add(1, Relaxed);
                count(&done, result, |d| &d.dns_changes);
                round += 1;
            }
        }));
    }
    let (client, key) = (reqwest::Client::new(), args.ingest_key.clone());
    let ids = people.ids.clone();
    let (target_ingest, done_ingest) = (target.clone(), done.clone());
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut round = 0usize;
        while Instant::now() < end {
            tick.tick().await;
            let events: Vec<_> = (0..10)
                .map(|i| json!({"user_id": ids[(round + i) % ids.len()], "metric": "soak.events", "value": 1, "op": "add"}))
                .collect();
            let url = format!("http://{}/api/analytics/events", target_ingest.server(round));
            let posted = client.post(url).header("x-hub-ingest-key", &key).json(&events).send().await;
            let result = match posted {
                Ok(r) if r.status().is_success() => Ok(10),
                _ => Err(anyhow::anyhow!("ingest failed")),
            };
            count(&done_ingest, result, |d| &d.events);
            round += 1;
        }
    }));
    for task in tasks {
        let _ = task.await;
    }
}

/// Waits until the hub holds no socket and no room, or `wait` passes; then
/// the allocator and the keepers have a moment more to settle.
async fn settled(
    target: &Target,
    client: &reqwest::Client,
    redis: Option<&str>,
    wait: Duration,
) -> anyhow::Result<Sample> {
    let deadline = Instant::now() + wait;
    loop {
        let now = sample(target, client, redis).await?;
        if (now.sockets == 0 && now.rooms == 0) || Instant::now() >= deadline {
            tokio::time::sleep(Duration::from_secs(2)).await;
            return sample(target, client, redis).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn run(target: Target, args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.duration_secs <= 3600 && args.warmup_secs <= 600,
        "runs are bounded: --duration-secs ≤ 3600, --warmup-secs ≤ 600"
    );
    anyhow::ensure!(
        (1..=2000).contains(&args.churners)
            && (1..=1000).contains(&args.rooms)
            && (1..=1000).contains(&args.users),
        "--churners is 1 to 2,000, --rooms and --users 1 to 1,000"
    );
    anyhow::ensure!(
        (1..=2000).contains(&args.sockets_per_sec),
        "--sockets-per-sec is 1 to 2,000"
    );
    let ids = users::ensure(args.users)?;
    let codec = users::codec()?;
    let people = Arc::new(People { ids, codec });
    let client = reqwest::Client::new();
    let redis = args.redis.as_deref();
    // Past the client timeout, a socket dropped without a close is gone.
    let settle = Duration::from_secs(60);

    let warmup = Arc::new(Done::default());
    load(
        &target,
        &args,
        &people,
        Instant::now() + Duration::from_secs(args.warmup_secs),
        &warmup,
    )
    .await;
    let before = settled(&target, &client, redis, settle).await?;
    println!("soak: warm-up: {}", warmup.line());
    println!("soak: baseline {before:?}");

    let done = Arc::new(Done::default());
    let started = Instant::now();
    // Resident memory through the run: a leak climbs with the load, while
    // what the allocator keeps levels off.
    let memory = target.pid.map(|pid| {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(MEMORY_EVERY_SECS));
            every.tick().await;
            loop {
                every.tick().await;
                if let Some(kib) = proc::rss_kib(pid) {
                    let secs = started.elapsed().as_secs();
                    println!(
                        "soak: {secs} s: resident memory {:.1} MiB",
                        kib as f64 / 1024.0
                    );
                }
            }
        })
    });
    load(
        &target,
        &args,
        &people,
        started + Duration::from_secs(args.duration_secs),
        &done,
    )
    .await;
    if let Some(memory) = memory {
        memory.abort();
    }
    let secs = started.elapsed().as_secs_f64();
    println!("soak: {secs:.0} s: {}", done.line());
    let after = settled(&target, &client, redis, settle).await?;
    println!("soak: after    {after:?}");

    let mut problems = Vec::new();
    for (what, was, is) in [
        ("open sockets", before.sockets, after.sockets),
        ("rooms", before.rooms, after.rooms),
        ("bus topics", before.topics, after.topics),
        (
            "database connections in use",
            before.db_in_use,
            after.db_in_use,
        ),
    ] {
        if is != was {
            problems.push(format!("{what}: {was} before, {is} after"));
        }
    }
    println!(
        "soak: database connections open {} before, {} after",
        before.db_open, after.db_open
    );
    if let (Some(was), Some(is)) = (before.descriptors, after.descriptors)
        && is > was
    {
        problems.push(format!("open descriptors: {was} before, {is} after"));
    }
    if let (Some(was), Some(is)) = (before.redis_keys, after.redis_keys)
        && is != was
    {
        problems.push(format!("Redis keys: {was} before, {is} after"));
    }
    if let (Some(was), Some(is)) = (before.rss_kib, after.rss_kib) {
        println!(
            "soak: resident memory {:.1} MiB before, {:.1} MiB after",
            was as f64 / 1024.0,
            is as f64 / 1024.0
        );
        if is > was + args.rss_slack_mib * 1024 {
            problems.push(format!(
                "resident memory grew by {:.1} MiB, more than {} MiB",
                (is - was) as f64 / 1024.0,
                args.rss_slack_mib
            ));
        }
    }
    let total = done.sockets.load(Relaxed);
    let failed = done.failures.load(Relaxed);
    // A handful of rounds may fail on a loaded machine (a step's timeout);
    // more than one in a hundred is a hub that stopped serving.
    if failed * 100 > total.max(1) {
        problems.push(format!("{failed} of {total} rounds failed"));
    }
    if problems.is_empty() {
        println!("soak: everything came back");
        Ok(())
    } else {
        for p in &problems {
            println!("soak: NOT BACK: {p}");
        }
        anyhow::bail!("{} measures did not come back", problems.len())
    }
}

#[cfg(test)]
mod tests {
    use super::metric;

    #[test]
    fn a_labelled_metric_is_summed_and_a_longer_name_is_not_taken_for_it() {
        let text = "# HELP hub_rooms x\nhub_rooms 3\nhub_rooms_total 9\n\
                    hub_connections{endpoint=\"chat\"} 2\nhub_connections{endpoint=\"dns\"} 5\n";
        assert_eq!(metric(text, "hub_rooms"), 3);
        assert_eq!(metric(text, "hub_connections"), 7);
        assert_eq!(metric(text, "hub_bus_topics"), 0);
    }
}
