//! The hidden primary: nameservers (BIND, Knot, a provider's secondaries)
//! transfer the zones the panel edits from here, over DNS itself, on
//! `HUB_DNS_LISTEN`. It answers a zone's SOA (what a secondary asks before
//! each transfer) over UDP and TCP, the whole zone (AXFR, RFC 5936) and
//! the differences since a secondary's serial (IXFR, RFC 1995, from the
//! zone's history) over TCP, to the addresses `HUB_DNS_TRANSFER_ALLOW`
//! names.
//!
//! Ordinary queries (A, MX, ...) are refused. A hidden primary is asked by
//! its secondaries only; answering resolvers well (wildcards, CNAME chains,
//! delegations, negative answers, DNSSEC) is the job of the nameservers,
//! which do it from what they transferred, and serving it here would put
//! the hub's database on the path of every lookup on the internet.
//!
//! The wire is libraries' work: NLnet Labs' `domain` parses the queries,
//! reads the zone as the master file the panel exports, and builds the
//! answers with name compression; tokio-util's codec frames TCP.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::ArbiterHandle;
use bytes::Bytes;
use domain::base::iana::{Class, Opcode, Rcode, Rtype};
use domain::base::message_builder::{AnswerBuilder, MessageBuilder, PushError, TreeCompressor};
use domain::base::{Message, Serial};
use domain::rdata::Soa as SoaData;
use domain::rdata::tsig::Time48;
use domain::tsig::{Algorithm, Key, KeyName, ServerSequence};
use domain::zonefile::inplace::{Entry, ScannedRecord, Zonefile};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::zone::{self, Want};
use super::{master, validate};
use crate::config::{DnsPrimary, TsigAlgorithm, TsigKey};
use crate::db::Db;
use crate::db::dns::{Record, RecordData, Zone};
use crate::metrics::{DnsAnswer, Metrics};

/// The bytes of the records in one message of a transfer, as BIND's
/// `transfer-message-size` (20,480) keeps them: well inside TCP's 65,535,
/// with room for a signature.
const MESSAGE_BYTES: usize = 20_480;

/// A query to a primary is small (a name and a type, maybe an SOA); what
/// is longer is cut here and read as malformed.
const DATAGRAM_BYTES: usize = 4096;

/// Queries answered at once; over UDP past this a query is dropped (the
/// secondary asks again), over TCP a connection is closed at once.
const IN_FLIGHT: usize = 64;

/// How long a TCP connection may sit between queries, and how long one
/// answer may take to be read, before it is closed.
const IDLE: Duration = Duration::from_secs(10);

/// The bound sockets: bound at start, so that a port taken stops the
/// start, and port 0 is known before anything is served.
pub struct Sockets {
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
}

impl Sockets {
    /// Binds UDP and TCP on one port; with port 0 the kernel picks the TCP
    /// port, and UDP takes the same (tried again if that one is taken).
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let attempts = if addr.port() == 0 { 20 } else { 1 };
        let mut last = None;
        for _ in 0..attempts {
            let tcp = std::net::TcpListener::bind(addr)?;
            match std::net::UdpSocket::bind(tcp.local_addr()?) {
                Ok(udp) => {
                    tcp.set_nonblocking(true)?;
                    udp.set_nonblocking(true)?;
                    return Ok(Self { udp, tcp });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no port for both UDP and TCP")))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

pub struct Primary {
    db: Db,
    settings: DnsPrimary,
    metrics: Arc<Metrics>,
    keys: Keys,
    /// `HUB_DNS_DEFAULT_NS` as the records served at the apex of a zone
    /// that names no name servers of its own.
    default_ns: Vec<RecordData>,
}

/// The TSIG keys queries may be signed with, by name and algorithm.
type Keys = HashMap<(KeyName, Algorithm), Arc<Key>>;

/// A key of the settings as the DNS library signs with it.
pub fn tsig_key(key: &TsigKey) -> Arc<Key> {
    let algorithm = match key.algorithm {
        TsigAlgorithm::HmacSha256 => Algorithm::Sha256,
        TsigAlgorithm::HmacSha384 => Algorithm::Sha384,
        TsigAlgorithm::HmacSha512 => Algorithm::Sha512,
    };
    let name = key
        .name
        .parse()
        .expect("the settings checked the key's name");
    Arc::new(
        Key::new(algorithm, key.secret.as_bytes(), name, None, None)
            .expect("a key of full-length signatures"),
    )
}

/// Signs each message of an answer to a signed query: every message of a
/// transfer, each signature chained to the one before (RFC 8945, 5.3.1),
/// which both BIND and Knot require of at least the first and the last.
struct Signer(Option<ServerSequence<Arc<Key>>>);

impl Signer {
    fn finish(
        &mut self,
        answer: AnswerBuilder<TreeCompressor<Vec<u8>>>,
    ) -> Result<Vec<u8>, ServeError> {
        let mut additional = answer.additional();
        // The records are in; the signature goes past their limit.
        additional.clear_push_limit();
        if let Some(sequence) = &mut self.0 {
            sequence
                .answer(&mut additional, Time48::now())
                .map_err(ServeError::Push)?;
        }
        Ok(additional.finish().into_target())
    }
}

/// Why a zone could not be served.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error("the database: {0}")]
    Db(#[from] crate::db::DbError),
    #[error("the zone does not read back as a master file: {0}")]
    Text(String),
    #[error("a record does not fit a message: {0}")]
    Push(PushError),
}

impl Primary {
    pub fn new(db: Db, settings: DnsPrimary, metrics: Arc<Metrics>) -> Self {
        let keys = settings
            .tsig_keys
            .iter()
            .map(|k| {
                let key = tsig_key(k);
                ((key.name().clone(), key.algorithm()), key)
            })
            .collect();
        let default_ns = settings
            .default_ns
            .iter()
            .map(|ns| RecordData {
                name: "@".into(),
                kind: "NS".into(),
                content: ns.clone(),
                ttl: validate::DEFAULT_TTL,
                priority: None,
                weight: None,
                port: None,
                comment: None,
            })
            .collect();
        Self {
            db,
            settings,
            metrics,
            keys,
            default_ns,
        }
    }

    /// Serves UDP and TCP on the arbiter's thread; database reads run on
    /// the blocking pool.
    pub fn start(self, sockets: Sockets, arbiter: &ArbiterHandle) {
        // Built on the arbiter's own thread, where its tasks stay.
        arbiter.spawn_fn(move || {
            actix_web::rt::spawn(self.run(sockets));
        });
    }

    async fn run(self, sockets: Sockets) {
        let primary = Rc::new(self);
        let (udp, tcp) = match (
            tokio::net::UdpSocket::from_std(sockets.udp),
            tokio::net::TcpListener::from_std(sockets.tcp),
        ) {
            (Ok(udp), Ok(tcp)) => (udp, tcp),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "the DNS listener could not start");
                return;
            }
        };
        let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
        actix_web::rt::spawn(primary.clone().serve_udp(udp, in_flight.clone()));
        primary.serve_tcp(tcp, in_flight).await;
    }

    async fn serve_udp(self: Rc<Self>, udp: tokio::net::UdpSocket, in_flight: Arc<Semaphore>) {
        let udp = Rc::new(udp);
        loop {
            let mut buf = vec![0; DATAGRAM_BYTES];
            let (len, peer) = match udp.recv_from(&mut buf).await {
                Ok(got) => got,
                Err(e) => {
                    tracing::debug!(error = %e, "DNS over UDP: a read failed");
                    continue;
                }
            };
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                self.metrics.dns_answered(DnsAnswer::Dropped);
                continue;
            };
            buf.truncate(len);
            let (primary, udp) = (self.clone(), udp.clone());
            actix_web::rt::spawn(async move {
                for reply in primary.answer(buf, peer.ip(), false).await {
                    let _ = udp.send_to(&reply, peer).await;
                }
                drop(permit);
            });
        }
    }

    async fn serve_tcp(self: Rc<Self>, tcp: tokio::net::TcpListener, in_flight: Arc<Semaphore>) {
        loop {
            let (stream, peer) = match tcp.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!(error = %e, "DNS over TCP: an accept failed");
                    // Out of descriptors, most likely: a moment for some to close.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                self.metrics.dns_answered(DnsAnswer::Dropped);
                continue;
            };
            let primary = self.clone();
            actix_web::rt::spawn(async move {
                primary.connection(stream, peer.ip()).await;
                drop(permit);
            });
        }
    }

    /// One TCP connection: queries one after another (a secondary may ask
    /// the SOA and then transfer on the same connection), until it closes
    /// or sits idle.
    async fn connection(&self, stream: tokio::net::TcpStream, peer: IpAddr) {
        let codec = LengthDelimitedCodec::builder()
            .length_field_type::<u16>()
            .max_frame_length(usize::from(u16::MAX))
            .new_codec();
        let mut framed = Framed::new(stream, codec);
        while let Ok(Some(Ok(query))) = tokio::time::timeout(IDLE, framed.next()).await {
            for reply in self.answer(query.to_vec(), peer, true).await {
                let sent = tokio::time::timeout(IDLE, framed.send(Bytes::from(reply))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    return;
                }
            }
        }
    }

    /// The messages that answer `query` (none for what is not a query).
    async fn answer(&self, query: Vec<u8>, peer: IpAddr, tcp: bool) -> Vec<Vec<u8>> {
        let Ok(query) = Message::from_octets(query) else {
            self.metrics.dns_answered(DnsAnswer::Malformed);
            return Vec::new();
        };
        if query.header().qr() {
            return Vec::new();
        }
        let (answer, replies) = self.reply(query, peer, tcp).await;
        self.metrics.dns_answered(answer);
        replies
    }

    async fn reply(
        &self,
        mut query: Message<Vec<u8>>,
        peer: IpAddr,
        tcp: bool,
    ) -> (DnsAnswer, Vec<Vec<u8>>) {
        if !self.settings.transfer_allow.contains(peer) {
            return (
                DnsAnswer::NotAllowed,
                refusal(&query, Rcode::REFUSED, &mut Signer(None)),
            );
        }
        // The signature is checked, and taken off the query, before
        // anything else is read of it.
        let mut signer = match ServerSequence::request(&self.keys, &mut query, Time48::now()) {
            Ok(sequence) => Signer(sequence),
            Err(refused) => {
                let answer = refused
                    .build_message(&query, MessageBuilder::new_vec())
                    .map(|m| vec![m.finish()])
                    .unwrap_or_default();
                return (DnsAnswer::BadSignature, answer);
            }
        };
        let query = &query;
        let (asked, name) = match self.asked(query, tcp) {
            Ok(asked) => asked,
            Err((answer, rcode)) => return (answer, refusal(query, rcode, &mut signer)),
        };
        if matches!(asked, Asked::Transfer(_)) && !self.keys.is_empty() && signer.0.is_none() {
            return (
                DnsAnswer::Unsigned,
                refusal(query, Rcode::REFUSED, &mut signer),
            );
        }
        let served = self.answer_of(name, asked).await.and_then(|found| {
            let Some((answer, records)) = found else {
                return Ok(None);
            };
            let replies = match answer {
                DnsAnswer::Soa | DnsAnswer::Current => {
                    vec![soa_only(query, &records[0], &mut signer)?]
                }
                _ => send(query, &records, &mut signer)?,
            };
            Ok(Some((answer, replies)))
        });
        match served {
            Ok(Some(replies)) => replies,
            Ok(None) => (
                DnsAnswer::NotOurs,
                refusal(query, Rcode::NOTAUTH, &mut signer),
            ),
            Err(e) => {
                tracing::error!(error = %e, "a DNS query could not be answered");
                (
                    DnsAnswer::Failed,
                    refusal(query, Rcode::SERVFAIL, &mut signer),
                )
            }
        }
    }

    /// What a query asks of a primary and of which zone (lower case, no
    /// final dot), or why it is refused.
    fn asked(
        &self,
        query: &Message<Vec<u8>>,
        tcp: bool,
    ) -> Result<(Asked, String), (DnsAnswer, Rcode)> {
        if query.header().opcode() != Opcode::QUERY {
            return Err((DnsAnswer::NotImplemented, Rcode::NOTIMP));
        }
        let Ok(question) = query.sole_question() else {
            return Err((DnsAnswer::Malformed, Rcode::FORMERR));
        };
        let asked = match (question.qtype(), tcp) {
            (Rtype::SOA, _) => Asked::Soa,
            (Rtype::AXFR, true) => Asked::Transfer(None),
            (Rtype::IXFR, true) => Asked::Transfer(held_serial(query)),
            // A client that cannot take the whole zone gets the SOA, so
            // that it asks again over TCP if it is behind (RFC 1995, 2).
            (Rtype::IXFR, false) => Asked::Soa,
            (Rtype::AXFR, false) => return Err((DnsAnswer::NotImplemented, Rcode::NOTIMP)),
            _ => return Err((DnsAnswer::NotOurs, Rcode::REFUSED)),
        };
        if question.qclass() != Class::IN {
            return Err((DnsAnswer::NotOurs, Rcode::REFUSED));
        }
        Ok((
            asked,
            validate::stored_zone_name(&question.qname().to_string()),
        ))
    }

    /// What answers `asked` of zone `name`, or of the catalog: its kind and
    /// its records in the order sent (the SOA alone, the whole zone with its
    /// SOA first and last, or the differences). `None`: no such zone.
    async fn answer_of(
        &self,
        name: String,
        asked: Asked,
    ) -> Result<Option<(DnsAnswer, Vec<ScannedRecord>)>, ServeError> {
        if self.settings.catalog.as_deref() == Some(&format!("{name}.")) {
            let (serial, zones) = self.db.run(zone::catalog).await?;
            let whole = read_records(&catalog_text(&name, serial, &zones))?;
            let current = matches!(asked, Asked::Transfer(Some(held)) if zone::holds(held.into_int(), serial));
            return Ok(Some(match soa_answer(asked, current) {
                Some(answer) => (answer, whole),
                None => (DnsAnswer::Whole, with_soa_again(whole)),
            }));
        }
        let want = match asked {
            Asked::Transfer(held) => Want::Zone(held.map(Serial::into_int)),
            Asked::Soa => Want::Soa,
        };
        let Some(found) = self
            .db
            .run(move |conn| zone::snapshot(conn, &name, want))
            .await?
        else {
            return Ok(None);
        };
        let now = self.served(&found.zone, &found.records);
        let soa = read_records(&now.head)?;
        if let Some(answer) = soa_answer(asked, found.soa_only) {
            return Ok(Some((answer, soa)));
        }
        if let Some((serial, records)) = &found.then {
            let zone = Zone {
                serial: *serial,
                ..found.zone.clone()
            };
            if let Some(sequence) = differences(&self.served(&zone, records), &now)? {
                return Ok(Some((DnsAnswer::Incremental, sequence)));
            }
        }
        let whole = read_records(&now.text(&now.records))?;
        Ok(Some((DnsAnswer::Whole, with_soa_again(whole))))
    }

    /// The zone as it is served: the master file the panel exports (so
    /// that what secondaries hold is what a customer's export shows), with
    /// the default name servers when the zone names none.
    fn served<'a>(&'a self, zone: &Zone, records: &'a [Record]) -> Served<'a> {
        let origin = zone::origin_of(zone);
        let soa = master::served_soa(&self.settings, records);
        let defaults = if master::has_own_ns(records) {
            &[][..]
        } else {
            &self.default_ns[..]
        };
        Served {
            head: master::head(&origin, &soa, zone.serial, records),
            records: records.iter().map(|r| &r.data).chain(defaults).collect(),
        }
    }
}

/// A zone as served, in the master file's words: its head (`$ORIGIN`,
/// `$TTL`, the SOA) and its records.
struct Served<'a> {
    head: String,
    records: Vec<&'a RecordData>,
}

impl Served<'_> {
    /// The master file of the head and `records`, read back by the DNS
    /// library: that, and not the hub's own encoding, is what is sent.
    fn text<'r>(&self, records: impl IntoIterator<Item = &'r &'r RecordData>) -> String {
        let mut text = self.head.clone();
        for record in records {
            text.push_str(&master::written_line(record));
            text.push('\n');
        }
        text
    }
}

/// What the DNS answers of a record, whatever its comment.
fn served_as(d: &RecordData) -> impl Eq + std::hash::Hash + '_ {
    (
        &d.name, &d.kind, &d.content, d.ttl, d.priority, d.weight, d.port,
    )
}

/// The answer that is the SOA alone, when the query asks no more: an SOA
/// query, or an IXFR from a secondary that is `current`.
fn soa_answer(asked: Asked, current: bool) -> Option<DnsAnswer> {
    match asked {
        Asked::Soa => Some(DnsAnswer::Soa),
        Asked::Transfer(_) if current => Some(DnsAnswer::Current),
        Asked::Transfer(_) => None,
    }
}

/// A whole zone as a transfer sends it (RFC 5936, 2.2): the SOA, every
/// other record, the SOA again.
fn with_soa_again(mut records: Vec<ScannedRecord>) -> Vec<ScannedRecord> {
    records.push(records[0].clone());
    records
}

/// What a secondary holding the zone `then` needs to hold `now`, as an
/// IXFR sends it (RFC 1995, 4): the new SOA, the old SOA and the records
/// gone, the new SOA and the records added, the new SOA. One difference
/// however many changes lie between, as RFC 1995 allows; only the records
/// that differ are read back. `None` when it would hold more records than
/// the whole zone.
fn differences(
    then: &Served<'_>,
    now: &Served<'_>,
) -> Result<Option<Vec<ScannedRecord>>, ServeError> {
    let held: HashSet<_> = then.records.iter().map(|r| served_as(r)).collect();
    let kept: HashSet<_> = now.records.iter().map(|r| served_as(r)).collect();
    let gone: Vec<_> = then
        .records
        .iter()
        .filter(|r| !kept.contains(&served_as(r)))
        .collect();
    let added: Vec<_> = now
        .records
        .iter()
        .filter(|r| !held.contains(&served_as(r)))
        .collect();
    if gone.len() + added.len() > now.records.len() {
        return Ok(None);
    }
    // The old SOA and the records gone, the new SOA and the records added.
    let old = read_records(&then.text(gone))?;
    let new = read_records(&now.text(added))?;
    let soa = new[0].clone();
    let mut sequence = vec![soa.clone()];
    sequence.extend(old);
    sequence.extend(new);
    sequence.push(soa);
    Ok(Some(sequence))
}

/// The catalog zone (RFC 9432, version 2): every zone held, each a member
/// whose label is its id, so that a zone deleted and made again is a new
/// member (secondaries start it afresh).
fn catalog_text(name: &str, serial: i64, zones: &[(i64, String)]) -> String {
    let mut text = format!(
        "$ORIGIN {name}.\n@\t0\tIN\tSOA\tinvalid. invalid. {serial} 3600 600 2147483646 0\n\
         @\t0\tIN\tNS\tinvalid.\nversion\t0\tIN\tTXT\t\"2\"\n"
    );
    for (id, zone) in zones {
        text.push_str(&format!("z{id}.zones\t0\tIN\tPTR\t{zone}.\n"));
    }
    text
}

/// Records from master-file text the hub wrote, SOA first.
fn read_records(text: &str) -> Result<Vec<ScannedRecord>, ServeError> {
    let mut reader = Zonefile::new();
    reader.extend_from_slice(text.as_bytes());
    let mut read = Vec::new();
    for entry in reader {
        match entry.map_err(|e| ServeError::Text(e.to_string()))? {
            Entry::Record(record) => read.push(record),
            _ => return Err(ServeError::Text("a directive the hub never writes".into())),
        }
    }
    match read.first().map(|r| r.rtype()) {
        Some(Rtype::SOA) => Ok(read),
        _ => Err(ServeError::Text("no SOA first".into())),
    }
}

/// What a query asked for; a transfer with the serial the secondary holds
/// (IXFR) or none (AXFR).
#[derive(Clone, Copy)]
enum Asked {
    Soa,
    Transfer(Option<Serial>),
}

/// The serial of the SOA an IXFR carries in its authority section: what
/// the secondary already holds.
fn held_serial(query: &Message<Vec<u8>>) -> Option<Serial> {
    let authority = query.authority().ok()?;
    authority
        .limit_to_in::<SoaData<_>>()
        .flatten()
        .next()
        .map(|soa| soa.data().serial())
}

/// A message builder for an answer to `query`, authoritative, compressing
/// names, holding at most [`MESSAGE_BYTES`].
fn start(query: &Message<Vec<u8>>) -> Result<AnswerBuilder<TreeCompressor<Vec<u8>>>, ServeError> {
    let mut builder = MessageBuilder::from_target(TreeCompressor::new(Vec::new()))
        .expect("a growing buffer takes a header");
    builder.set_push_limit(MESSAGE_BYTES);
    let mut answer = builder
        .start_answer(query, Rcode::NOERROR)
        .map_err(ServeError::Push)?;
    answer.header_mut().set_aa(true);
    Ok(answer)
}

fn soa_only(
    query: &Message<Vec<u8>>,
    soa: &ScannedRecord,
    signer: &mut Signer,
) -> Result<Vec<u8>, ServeError> {
    let mut answer = start(query)?;
    answer.push(soa).map_err(ServeError::Push)?;
    signer.finish(answer)
}

/// The records of a transfer, as many messages as they need: a whole
/// zone (RFC 5936, 2.2: the SOA, every other record, the SOA again) or its
/// differences.
fn send(
    query: &Message<Vec<u8>>,
    sequence: &[ScannedRecord],
    signer: &mut Signer,
) -> Result<Vec<Vec<u8>>, ServeError> {
    let mut messages = Vec::new();
    let mut answer = start(query)?;
    for record in sequence {
        // A push that does not fit leaves the message as it was.
        if answer.push(record).is_ok() {
            continue;
        }
        if answer.counts().ancount() == 0 {
            return Err(ServeError::Push(PushError::ShortBuf));
        }
        let full = std::mem::replace(&mut answer, start(query)?);
        messages.push(signer.finish(full)?);
        answer.push(record).map_err(ServeError::Push)?;
    }
    messages.push(signer.finish(answer)?);
    Ok(messages)
}

/// An answer with no records, only a code; signed when the query was.
fn refusal(query: &Message<Vec<u8>>, rcode: Rcode, signer: &mut Signer) -> Vec<Vec<u8>> {
    let unsigned = || {
        MessageBuilder::new_vec()
            .start_answer(query, rcode)
            .expect("a growing buffer takes the question")
            .finish()
    };
    let signed = MessageBuilder::from_target(TreeCompressor::new(Vec::new()))
        .expect("a growing buffer takes a header")
        .start_answer(query, rcode)
        .map_err(ServeError::Push)
        .and_then(|answer| signer.finish(answer));
    vec![signed.unwrap_or_else(|_| unsigned())]
}
