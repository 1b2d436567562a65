//! `axfr`: a zone of R records, made through the DNS panel, transferred
//! whole from the hub's DNS listener (`HUB_DNS_LISTEN`) as a secondary
//! does, several times: how long a transfer takes, in how many messages and
//! bytes, and the server CPU it costs. Then one record more, and the same
//! for an IXFR from the serial before it and for the SOA.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use domain::base::iana::{Class, Rcode, Rtype};
use domain::base::{Message, MessageBuilder, Name, ParsedName, Serial, Ttl};
use domain::rdata::Soa;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::dns::{ask, ensure_zone, panel};
use crate::{Target, proc, users};

#[derive(clap::Args)]
pub struct Args {
    /// The hub's DNS listener (its `HUB_DNS_LISTEN`).
    #[arg(long, default_value = "127.0.0.1:5353")]
    dns: SocketAddr,
    /// Records in the zone (the hub's `HUB_DNS_MAX_RECORDS` must allow
    /// them).
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    /// Transfers timed, one after another.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

/// The zone transferred, owned by the first benchmark user.
const ZONE: &str = "axfr-bench.example";

/// Changes per `dns.batch` (the hub takes at most 1,000).
const BATCH: usize = 1000;

pub async fn run(target: Target, args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.dns.ip().is_loopback(),
        "hub-bench only targets this machine's loopback, not {}",
        args.dns
    );
    anyhow::ensure!(
        (1..=100_000).contains(&args.records) && (1..=100).contains(&args.runs),
        "--records is 1 to 100,000 and --runs 1 to 100"
    );
    let owner = users::ensure(1)?[0];
    let token = users::access_token(&users::codec()?, owner);
    let mut ws = panel(target.server(0), &token).await?;
    fill(&mut ws, args.dns, args.records).await?;

    let axfr = query(Rtype::AXFR, None)?;
    let (messages, bytes, records) = timed("axfr", &target, &args, &axfr).await?;
    println!(
        "axfr: {records} records (the SOA twice) in {messages} messages, {bytes} bytes ({:.1} bytes a record)",
        bytes as f64 / records.max(1) as f64
    );
    // One record more: a secondary that held the zone before it asks for
    // the difference; one that holds it now asks for the SOA.
    let held = serial(args.dns).await?;
    let record = serde_json::json!({"type": "dns.create", "ref": 3, "zone": ZONE,
        "record": {"name": format!("ixfr-{held}"), "type": "A", "content": "192.0.2.1", "ttl": 300}});
    let reply = ask(&mut ws, record).await?;
    anyhow::ensure!(
        reply.contains(r#""type":"dns.result""#),
        "the change failed: {reply}"
    );
    let (messages, bytes, records) =
        timed("ixfr", &target, &args, &query(Rtype::IXFR, Some(held))?).await?;
    println!("ixfr: {records} records (the SOA four times) in {messages} messages, {bytes} bytes");
    timed("soa", &target, &args, &query(Rtype::SOA, None)?).await?;
    Ok(())
}

/// `args.runs` answers to `query`, one after another: prints their times
/// and the server's CPU for each; the last answer's shape.
async fn timed(
    what: &str,
    target: &Target,
    args: &Args,
    query: &[u8],
) -> anyhow::Result<(usize, usize, usize)> {
    let mut times = Vec::with_capacity(args.runs);
    let server_cpu0 = target.pid.and_then(proc::cpu);
    let mut shape = (0, 0, 0);
    for _ in 0..args.runs {
        let started = Instant::now();
        shape = transfer(args.dns, query).await?;
        times.push(started.elapsed());
    }
    let server_cpu1 = target.pid.and_then(proc::cpu);
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    print!(
        "{what}: {} runs, median {:.2} ms, fastest {:.2} ms, slowest {:.2} ms",
        args.runs,
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
    if let (Some(a), Some(b)) = (server_cpu0, server_cpu1) {
        print!(
            ", server CPU {:.2} ms an answer",
            ms(b - a) / args.runs as f64
        );
    }
    println!();
    Ok(shape)
}

/// A query for the zone; an IXFR names the serial it holds (RFC 1995, 3).
fn query(rtype: Rtype, held: Option<u32>) -> anyhow::Result<Vec<u8>> {
    let name = Name::<Vec<u8>>::from_str(&format!("{ZONE}."))?;
    let mut question = MessageBuilder::new_vec().question();
    question.push((&name, rtype))?;
    let Some(held) = held else {
        return Ok(question.finish());
    };
    let mut authority = question.authority();
    let ttl = Ttl::from_secs(0);
    let soa = Soa::new(&name, &name, Serial(held), ttl, ttl, ttl, ttl);
    authority.push((&name, Class::IN, 0, soa))?;
    Ok(authority.finish())
}

/// The zone's serial now.
async fn serial(dns: SocketAddr) -> anyhow::Result<u32> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    socket.send_to(&query(Rtype::SOA, None)?, dns).await?;
    let mut buf = vec![0; 4096];
    let len = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf)).await??;
    let answer = Message::from_octets(&buf[..len])?;
    let soa = answer
        .answer()?
        .limit_to::<Soa<ParsedName<_>>>()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no SOA for {ZONE}"))??;
    Ok(soa.data().serial().into_int())
}

/// Makes the zone (an earlier run may have) and fills it up to `records`.
async fn fill(ws: &mut crate::dns::Socket, dns: SocketAddr, records: usize) -> anyhow::Result<()> {
    ensure_zone(ws, ZONE).await?;
    let listed: serde_json::Value =
        serde_json::from_str(&ask(ws, serde_json::json!({"type": "dns.zones", "ref": 1})).await?)?;
    let zone = listed["zones"]
        .as_array()
        .and_then(|zones| zones.iter().find(|z| z["name"] == ZONE))
        .ok_or_else(|| anyhow::anyhow!("{ZONE} is not listed: {listed}"))?;
    let mut serial = zone["serial"].clone();
    // What it holds already: a transfer's records but the SOA, sent twice.
    let mut held = u64::try_from(transfer(dns, &query(Rtype::AXFR, None)?).await?.2 - 2)?;
    let wanted = u64::try_from(records)?;
    while held < wanted {
        let count = usize::try_from((wanted - held).min(BATCH as u64))?;
        let changes: Vec<serde_json::Value> = (0..count)
            .map(|i| {
                let n = held + u64::try_from(i).unwrap_or(0);
                serde_json::json!({"op": "create", "record": {"name": format!("host-{n}"), "type": "A",
                    "content": format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255), "ttl": 300}})
            })
            .collect();
        let reply: serde_json::Value = serde_json::from_str(
            &ask(
                ws,
                serde_json::json!({"type": "dns.batch", "ref": 2, "zone": ZONE, "serial": serial, "changes": changes}),
            )
            .await?,
        )?;
        anyhow::ensure!(reply["type"] == "dns.result", "filling {ZONE}: {reply}");
        serial = reply["serial"].clone();
        held += u64::try_from(count)?;
    }
    Ok(())
}

/// One answer over TCP, up to the SOA that ends it: its messages, bytes
/// and records. It holds the SOA once (an SOA query), twice (a whole
/// zone) or four times (one difference).
async fn transfer(dns: SocketAddr, query: &[u8]) -> anyhow::Result<(usize, usize, usize)> {
    let ends_at = match Message::from_octets(query)?.sole_question()?.qtype() {
        Rtype::SOA => 1,
        Rtype::IXFR => 4,
        _ => 2,
    };
    let mut stream = tokio::net::TcpStream::connect(dns).await?;
    stream
        .write_all(&u16::try_from(query.len())?.to_be_bytes())
        .await?;
    stream.write_all(query).await?;
    let (mut messages, mut bytes, mut records, mut soas) = (0, 0, 0, 0);
    while soas < ends_at {
        let mut len = [0; 2];
        stream.read_exact(&mut len).await?;
        let mut buf = vec![0; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).await?;
        bytes += buf.len() + 2;
        messages += 1;
        let message = Message::from_octets(buf)?;
        anyhow::ensure!(
            message.header().rcode() == Rcode::NOERROR,
            "the transfer was refused: {}",
            message.header().rcode()
        );
        for record in message.answer()? {
            let record = record?;
            records += 1;
            if record.rtype() == Rtype::SOA {
                soas += 1;
            }
        }
    }
    Ok((messages, bytes, records))
}
