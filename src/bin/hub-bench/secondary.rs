//! `secondary`: how soon a change made in the DNS panel is answered by the
//! nameservers that follow the hub (`HUB_DNS_NOTIFY`): C records made one
//! after another, each timed from the panel's reply (the change committed)
//! to the first answer that holds it at each nameserver, asked over UDP
//! every 2 ms. `bench/secondary.sh` starts BIND and Knot for it.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use domain::base::iana::{Rcode, Rtype};
use domain::base::{Message, MessageBuilder, Name};

use crate::dns::{ask, ensure_zone, panel};
use crate::{Target, proc, users};

#[derive(clap::Args)]
pub struct Args {
    /// A nameserver following the hub, which serves the zones in its
    /// catalog (`HUB_DNS_CATALOG`); once for each.
    #[arg(long = "secondary", required = true)]
    secondaries: Vec<SocketAddr>,
    /// Changes timed, one after another.
    #[arg(long, default_value_t = 200)]
    changes: usize,
}

/// The zone changed, owned by the first benchmark user.
const ZONE: &str = "secondary-bench.example";

/// How long a nameserver may take to serve the zone, or a change.
const LIMIT: Duration = Duration::from_secs(30);

/// How often a nameserver is asked while a change is awaited.
const POLL: Duration = Duration::from_millis(2);

pub async fn run(target: Target, args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.secondaries.iter().all(|s| s.ip().is_loopback()),
        "hub-bench only asks nameservers on this machine's loopback"
    );
    anyhow::ensure!(
        (1..=10_000).contains(&args.changes),
        "--changes is 1 to 10,000"
    );
    let owner = users::ensure(1)?[0];
    let token = users::access_token(&users::codec()?, owner);
    let mut ws = panel(target.server(0), &token).await?;
    ensure_zone(&mut ws, ZONE).await?;
    // Names no earlier run used; the first change warms up and is not
    // timed (a secondary's first transfer of the zone is whole).
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut delays = vec![proc::histogram(); args.secondaries.len()];
    for i in 0..=args.changes {
        let name = format!("c{run}-{i}");
        let record = serde_json::json!({"type": "dns.create", "ref": 1, "zone": ZONE,
            "record": {"name": name, "type": "A", "content": "192.0.2.1", "ttl": 300}});
        let reply = ask(&mut ws, record).await?;
        anyhow::ensure!(
            reply.contains(r#""type":"dns.result""#),
            "the change failed: {reply}"
        );
        let committed = Instant::now();
        let fqdn = format!("{name}.{ZONE}.");
        let waits = args.secondaries.iter().map(|&s| until_answered(s, &fqdn));
        for (delay, all) in futures_util::future::try_join_all(waits)
            .await?
            .into_iter()
            .zip(&mut delays)
        {
            if i > 0 {
                let us = u64::try_from((delay - committed).as_micros())?;
                all.record(us.max(1))?;
            }
        }
    }
    for (secondary, all) in args.secondaries.iter().zip(delays) {
        let slow = all.count_between(100_001, all.max().max(100_001));
        println!(
            "secondary {secondary}: change to answer {}; {slow} over 100 ms",
            proc::latency_line(&all)
        );
    }
    Ok(())
}

/// When `secondary` first answers `fqdn` with an address.
async fn until_answered(secondary: SocketAddr, fqdn: &str) -> anyhow::Result<Instant> {
    let mut question = MessageBuilder::new_vec().question();
    question.push((Name::<Vec<u8>>::from_str(fqdn)?, Rtype::A))?;
    let query = question.finish();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let deadline = Instant::now() + LIMIT;
    let mut buf = vec![0; 4096];
    while Instant::now() < deadline {
        socket.send_to(&query, secondary).await?;
        if let Ok(Ok(len)) =
            tokio::time::timeout(Duration::from_millis(100), socket.recv(&mut buf)).await
        {
            let answered = Instant::now();
            let reply = Message::from_octets(&buf[..len])?;
            if reply.header().rcode() == Rcode::NOERROR && reply.header_counts().ancount() > 0 {
                return Ok(answered);
            }
        }
        tokio::time::sleep(POLL).await;
    }
    anyhow::bail!("{secondary} did not answer {fqdn} within {LIMIT:?}")
}
