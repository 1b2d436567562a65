//! NOTIFY (RFC 1996): each secondary in `HUB_DNS_NOTIFY` is told the
//! moment a zone's serial moves, so that it transfers the zone at once
//! rather than at the SOA's next refresh. A NOTIFY not answered is sent
//! again after 1, 2, 4, ... seconds (at most a minute apart) until the
//! secondary answers, a newer serial replaces it, or an hour has passed
//! (the secondary's own refresh finds the change by then).
//!
//! The node that committed a change sends its NOTIFY (the broadcaster
//! calls [`Notifier::changed`] for the changes its own sessions publish,
//! never for those it hears from other nodes), so a cluster notifies once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::ArbiterHandle;
use domain::base::iana::{Opcode, Rcode, Rtype};
use domain::base::{Message, MessageBuilder, Name};
use domain::rdata::tsig::Time48;
use domain::tsig::{ClientTransaction, Key};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::validate;
use crate::metrics::{Metrics, Notified};

/// Zones changed faster than NOTIFYs go out wait here; past it a change is
/// not notified (the next one, or the refresh, carries it).
const QUEUE: usize = 4096;

const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(60);
const GIVE_UP_AFTER: Duration = Duration::from_secs(3600);

/// Tells the secondaries of new serials; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    changes: mpsc::Sender<(String, i64)>,
    /// The catalog zone's name, without its final dot, if one is served.
    catalog: Option<String>,
    metrics: Arc<Metrics>,
}

impl Notifier {
    /// Starts the sender on the arbiter; `None` when no secondary is
    /// configured.
    pub fn start(
        secondaries: Vec<SocketAddr>,
        key: Option<Arc<Key>>,
        catalog: Option<&str>,
        metrics: Arc<Metrics>,
        arbiter: &ArbiterHandle,
    ) -> std::io::Result<Option<Self>> {
        if secondaries.is_empty() {
            return Ok(None);
        }
        // One socket per address family the secondaries use.
        let v4 = std::net::UdpSocket::bind("0.0.0.0:0")?;
        let v6 = if secondaries.iter().any(SocketAddr::is_ipv6) {
            Some(std::net::UdpSocket::bind("[::]:0")?)
        } else {
            None
        };
        v4.set_nonblocking(true)?;
        if let Some(v6) = &v6 {
            v6.set_nonblocking(true)?;
        }
        let (changes, received) = mpsc::channel(QUEUE);
        let sender_metrics = metrics.clone();
        arbiter.spawn_fn(move || {
            actix_web::rt::spawn(async move {
                let sockets = Sockets::new(v4, v6);
                match sockets {
                    Ok(sockets) => run(secondaries, key, sockets, received, sender_metrics).await,
                    Err(e) => tracing::error!(error = %e, "NOTIFY could not start"),
                }
            });
        });
        let catalog = catalog.map(|name| name.trim_end_matches('.').to_owned());
        Ok(Some(Self {
            changes,
            catalog,
            metrics,
        }))
    }

    /// A zone was made or deleted: the catalog changed. Its serial is not
    /// known here, and none is needed: each change sends a NOTIFY of its own
    /// in place of one still unanswered.
    pub fn zones_changed(&self) {
        if let Some(catalog) = &self.catalog {
            self.changed(catalog, 0);
        }
    }

    /// Zone `zone` is at `serial` now.
    pub fn changed(&self, zone: &str, serial: i64) {
        if self.changes.try_send((zone.to_owned(), serial)).is_err() {
            self.metrics.notified(Notified::Dropped);
        }
    }
}

struct Sockets {
    v4: tokio::net::UdpSocket,
    v6: Option<tokio::net::UdpSocket>,
}

impl Sockets {
    fn new(v4: std::net::UdpSocket, v6: Option<std::net::UdpSocket>) -> std::io::Result<Self> {
        Ok(Self {
            v4: tokio::net::UdpSocket::from_std(v4)?,
            v6: v6.map(tokio::net::UdpSocket::from_std).transpose()?,
        })
    }

    fn for_peer(&self, peer: SocketAddr) -> &tokio::net::UdpSocket {
        match (&self.v6, peer.is_ipv6()) {
            (Some(v6), true) => v6,
            _ => &self.v4,
        }
    }

    /// The next answer on either socket.
    async fn recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        match &self.v6 {
            Some(v6) => {
                let mut other = vec![0; buf.len()];
                tokio::select! {
                    got = self.v4.recv_from(buf) => got,
                    got = v6.recv_from(&mut other) => {
                        let (len, from) = got?;
                        buf[..len].copy_from_slice(&other[..len]);
                        Ok((len, from))
                    }
                }
            }
            None => self.v4.recv_from(buf).await,
        }
    }
}

/// A signed NOTIFY, which checks its answer's signature.
type Signed = ClientTransaction<Arc<Key>>;

/// A NOTIFY waiting for its secondary's answer.
struct Pending {
    serial: i64,
    id: u16,
    /// The signature of the NOTIFY last sent, to check the answer's by.
    signed: Option<Signed>,
    first_sent: Instant,
    wait: Duration,
    next: Instant,
}

async fn run(
    secondaries: Vec<SocketAddr>,
    key: Option<Arc<Key>>,
    sockets: Sockets,
    mut changes: mpsc::Receiver<(String, i64)>,
    metrics: Arc<Metrics>,
) {
    let mut pending: HashMap<(String, SocketAddr), Pending> = HashMap::new();
    let mut buf = vec![0; 512];
    loop {
        let due = pending.values().map(|p| p.next).min();
        tokio::select! {
            change = changes.recv() => {
                let Some((zone, serial)) = change else { return };
                let now = Instant::now();
                for &secondary in &secondaries {
                    let at = (zone.clone(), secondary);
                    if pending.get(&at).is_none_or(|p| serial >= p.serial) {
                        let (id, wait) = (rand::random(), FIRST_RETRY);
                        let fresh = Pending { serial, id, signed: None, first_sent: now, wait, next: now };
                        pending.insert(at, fresh);
                    }
                }
            }
            answer = sockets.recv(&mut buf) => {
                if let Ok((len, from)) = answer
                    && let Some((zone, mut message)) = answered(&buf[..len])
                    && let Some(p) = pending.get(&(zone.clone(), from))
                    && p.id == message.header().id()
                    // Signed, the answer must be signed by the same key.
                    && p.signed.as_ref().is_none_or(|t| t.answer(&mut message, Time48::now()).is_ok())
                {
                    pending.remove(&(zone, from));
                    metrics.notified(Notified::Answered);
                }
                continue;
            }
            () = sleep_until(due) => {}
        }
        let now = Instant::now();
        let mut given_up = Vec::new();
        for ((zone, secondary), p) in &mut pending {
            if p.next > now {
                continue;
            }
            if now.duration_since(p.first_sent) > GIVE_UP_AFTER {
                given_up.push((zone.clone(), *secondary));
                continue;
            }
            if let Some((message, signed)) = notify(zone, p.id, key.as_ref()) {
                p.signed = signed;
                let _ = sockets
                    .for_peer(*secondary)
                    .send_to(&message, secondary)
                    .await;
                metrics.notified(Notified::Sent);
            }
            p.next = now + p.wait;
            p.wait = (p.wait * 2).min(LONGEST_RETRY);
        }
        for key in given_up {
            tracing::warn!(zone = %key.0, secondary = %key.1, "a secondary did not answer NOTIFY for an hour; its refresh will find the change");
            pending.remove(&key);
            metrics.notified(Notified::GivenUp);
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// A NOTIFY for `zone` (RFC 1996, 3.7): the zone's SOA as its question,
/// signed with `key` if there is one.
fn notify(zone: &str, id: u16, key: Option<&Arc<Key>>) -> Option<(Vec<u8>, Option<Signed>)> {
    let name: Name<Vec<u8>> = format!("{zone}.").parse().ok()?;
    let mut builder = MessageBuilder::new_vec();
    let header = builder.header_mut();
    header.set_id(id);
    header.set_opcode(Opcode::NOTIFY);
    header.set_aa(true);
    let mut question = builder.question();
    question.push((name, Rtype::SOA)).ok()?;
    let mut additional = question.additional();
    let signed = match key {
        Some(key) => {
            Some(ClientTransaction::request(key.clone(), &mut additional, Time48::now()).ok()?)
        }
        None => None,
    };
    Some((additional.finish(), signed))
}

/// The zone of the NOTIFY `bytes` answer, and the answer, if they are one
/// that accepts it.
fn answered(bytes: &[u8]) -> Option<(String, Message<Vec<u8>>)> {
    let message = Message::from_octets(bytes.to_vec()).ok()?;
    let header = message.header();
    if !header.qr() || header.opcode() != Opcode::NOTIFY || header.rcode() != Rcode::NOERROR {
        return None;
    }
    let zone = validate::stored_zone_name(&message.sole_question().ok()?.qname().to_string());
    Some((zone, message))
}
