//! Counters for `GET /metrics`, in Prometheus' text format. Plain atomics:
//! they are bumped on hot paths (every frame) and read rarely.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::auth::refusal::Refusal;
use crate::db::PoolGauges;

#[derive(Default)]
pub struct Metrics {
    connections: Mutex<BTreeMap<&'static str, i64>>,
    refused: [AtomicU64; Refusal::ALL.len()],
    /// Handshakes refused at a cap: `overloaded`, `too_many_connections`.
    capped: [AtomicU64; 2],
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    dropped: AtomicU64,
    slow_closed: AtomicU64,
    close_timeouts: AtomicU64,
    rooms: AtomicI64,
    bus: BusCounters,
    dns: [AtomicU64; DnsAnswer::ALL.len()],
    notifies: [AtomicU64; Notified::ALL.len()],
}

/// What became of a NOTIFY, for `hub_dns_notifies_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notified {
    /// Sent to a secondary (each retry counts).
    Sent,
    /// Answered by the secondary.
    Answered,
    /// Never sent: changes came faster than NOTIFYs went out.
    Dropped,
    /// Not answered within an hour.
    GivenUp,
}

impl Notified {
    /// In the order declared: a counter's index is its discriminant.
    pub const ALL: [Self; 4] = [Self::Sent, Self::Answered, Self::Dropped, Self::GivenUp];

    fn label(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Answered => "answered",
            Self::Dropped => "dropped",
            Self::GivenUp => "given_up",
        }
    }
}

/// How the DNS listener answered a query, for
/// `hub_dns_queries_total{answer}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsAnswer {
    /// A zone's SOA.
    Soa,
    /// A zone, whole: to an AXFR, or to an IXFR from a serial the history
    /// does not reach (or whose differences outweigh the zone).
    Whole,
    /// The differences since the serial an IXFR names.
    Incremental,
    /// The SOA alone, to an IXFR from a secondary that is current.
    Current,
    /// From an address `HUB_DNS_TRANSFER_ALLOW` does not list: `REFUSED`.
    NotAllowed,
    /// Not a zone held here, or not a question for a primary: `REFUSED`
    /// or `NOTAUTH`.
    NotOurs,
    /// Not a query (NOTIFY, UPDATE), or AXFR over UDP: `NOTIMP`.
    NotImplemented,
    /// Not a DNS message, or not one question: `FORMERR` or nothing.
    Malformed,
    /// A transfer not signed, when keys are set: `REFUSED`.
    Unsigned,
    /// A signature that does not verify (unknown key, wrong MAC, a clock
    /// off by more than its fudge): `NOTAUTH` with the TSIG error.
    BadSignature,
    /// Dropped unanswered: too many at once.
    Dropped,
    /// The database failed: `SERVFAIL`.
    Failed,
}

impl DnsAnswer {
    /// In the order declared: a counter's index is its discriminant.
    pub const ALL: [Self; 12] = [
        Self::Soa,
        Self::Whole,
        Self::Incremental,
        Self::Current,
        Self::NotAllowed,
        Self::NotOurs,
        Self::NotImplemented,
        Self::Malformed,
        Self::Unsigned,
        Self::BadSignature,
        Self::Dropped,
        Self::Failed,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Soa => "soa",
            Self::Whole => "axfr",
            Self::Incremental => "ixfr",
            Self::Current => "current",
            Self::NotAllowed => "not_allowed",
            Self::Unsigned => "unsigned",
            Self::BadSignature => "bad_signature",
            Self::NotOurs => "not_ours",
            Self::NotImplemented => "not_implemented",
            Self::Malformed => "malformed",
            Self::Dropped => "dropped",
            Self::Failed => "failed",
        }
    }
}

/// The bus between nodes: whether it is up and what crosses it.
#[derive(Default)]
struct BusCounters {
    up: AtomicI64,
    state_changes: AtomicU64,
    published: AtomicU64,
    received: AtomicU64,
    topics: AtomicI64,
    gap_fills: AtomicU64,
    presence_errors: AtomicU64,
}

impl Metrics {
    pub fn dns_answered(&self, answer: DnsAnswer) {
        self.dns[answer as usize].fetch_add(1, Relaxed);
    }

    pub fn notified(&self, result: Notified) {
        self.notifies[result as usize].fetch_add(1, Relaxed);
    }

    pub fn connection_opened(&self, endpoint: &'static str) {
        *self.lock().entry(endpoint).or_default() += 1;
    }

    pub fn connection_closed(&self, endpoint: &'static str) {
        *self.lock().entry(endpoint).or_default() -= 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, i64>> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn open_connections(&self, endpoint: &'static str) -> i64 {
        self.lock().get(endpoint).copied().unwrap_or(0)
    }

    /// Open connections by endpoint, as `/api/stats/` shows them to staff.
    pub fn connections(&self) -> BTreeMap<&'static str, i64> {
        self.lock().clone()
    }

    pub fn rooms(&self) -> i64 {
        self.rooms.load(Relaxed)
    }

    pub fn refused(&self, refusal: Refusal) {
        self.refused[refusal.index()].fetch_add(1, Relaxed);
    }

    /// A handshake refused because the node is at its socket or handshake
    /// cap.
    pub fn overloaded(&self) {
        self.capped[0].fetch_add(1, Relaxed);
    }

    /// A handshake refused because its user, or its address's guests, hold
    /// all the sockets they may.
    pub fn too_many_connections(&self) {
        self.capped[1].fetch_add(1, Relaxed);
    }

    pub fn frame_in(&self) {
        self.frames_in.fetch_add(1, Relaxed);
    }

    pub fn frame_out(&self) {
        self.frames_out.fetch_add(1, Relaxed);
    }

    /// A frame that could not be queued for a member too slow to read.
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Relaxed);
    }

    /// A member closed (1013) because it could not keep up.
    pub fn slow_closed(&self) {
        self.slow_closed.fetch_add(1, Relaxed);
    }

    /// A connection reset because its close was not answered within the
    /// close timeout.
    pub fn close_timed_out(&self) {
        self.close_timeouts.fetch_add(1, Relaxed);
    }

    pub fn room_opened(&self) {
        self.rooms.fetch_add(1, Relaxed);
    }

    pub fn room_closed(&self) {
        self.rooms.fetch_sub(1, Relaxed);
    }

    /// Chat rooms open on this node.
    pub fn rooms_open(&self) -> i64 {
        self.rooms.load(Relaxed)
    }

    /// The bus went up or down.
    pub fn bus_state(&self, up: bool) {
        self.bus.up.store(i64::from(up), Relaxed);
        self.bus.state_changes.fetch_add(1, Relaxed);
    }

    pub fn bus_published(&self, messages: u64) {
        self.bus.published.fetch_add(messages, Relaxed);
    }

    pub fn bus_received(&self) {
        self.bus.received.fetch_add(1, Relaxed);
    }

    pub fn bus_topic_subscribed(&self) {
        self.bus.topics.fetch_add(1, Relaxed);
    }

    pub fn bus_topic_unsubscribed(&self) {
        self.bus.topics.fetch_sub(1, Relaxed);
    }

    /// A subscriber caught up on what it missed while the bus was down.
    pub fn bus_gap_filled(&self) {
        self.bus.gap_fills.fetch_add(1, Relaxed);
    }

    /// A presence command to Redis that failed or timed out (it is tried
    /// again: at once with backoff for a read the roster needs, or at the
    /// next refresh).
    pub fn presence_failed(&self) {
        self.bus.presence_errors.fetch_add(1, Relaxed);
    }

    /// The text served; `writeln!` into a `String` cannot fail, so its
    /// results here are let go.
    pub fn render(&self, pool: PoolGauges) -> String {
        let mut out = String::with_capacity(2048);
        let _ = writeln!(out, "# HELP hub_connections Open WebSocket connections.");
        let _ = writeln!(out, "# TYPE hub_connections gauge");
        for (endpoint, n) in self.lock().iter() {
            let _ = writeln!(out, "hub_connections{{endpoint=\"{endpoint}\"}} {n}");
        }
        let codes = Refusal::ALL.iter().map(|r| r.code());
        let codes = codes.chain(["overloaded", "too_many_connections"]);
        let counts = self.refused.iter().chain(&self.capped);
        labelled(
            &mut out,
            ("hub_handshakes_refused_total", "code"),
            "Handshakes refused, by code.",
            codes.zip(counts),
        );
        labelled(
            &mut out,
            ("hub_dns_queries_total", "answer"),
            "DNS queries to the hidden primary, by how they were answered.",
            DnsAnswer::ALL.iter().map(|a| a.label()).zip(&self.dns),
        );
        labelled(
            &mut out,
            ("hub_dns_notifies_total", "result"),
            "NOTIFY messages to secondaries, by what became of them.",
            Notified::ALL.iter().map(|r| r.label()).zip(&self.notifies),
        );
        let counters = [
            (
                "hub_frames_in_total",
                "Frames received from clients.",
                &self.frames_in,
            ),
            (
                "hub_frames_out_total",
                "Frames sent to clients.",
                &self.frames_out,
            ),
            (
                "hub_messages_dropped_total",
                "Frames not queued for a member too slow to read them.",
                &self.dropped,
            ),
            (
                "hub_slow_consumers_closed_total",
                "Members closed for not keeping up.",
                &self.slow_closed,
            ),
            (
                "hub_close_timeouts_total",
                "Connections reset because the client did not answer a close within the close timeout.",
                &self.close_timeouts,
            ),
            (
                "hub_bus_state_changes_total",
                "Times the bus between nodes went up or down.",
                &self.bus.state_changes,
            ),
            (
                "hub_bus_published_total",
                "Messages published on the bus.",
                &self.bus.published,
            ),
            (
                "hub_bus_received_total",
                "Messages received from the bus for local subscribers.",
                &self.bus.received,
            ),
            (
                "hub_bus_gap_fills_total",
                "Catch-ups after the bus was down (a room, a dashboard set, a panel set).",
                &self.bus.gap_fills,
            ),
            (
                "hub_presence_errors_total",
                "Presence reads and writes in Redis that failed or timed out, to be tried again.",
                &self.bus.presence_errors,
            ),
        ];
        for (name, help, value) in counters {
            family(&mut out, "counter", name, help, value.load(Relaxed));
        }
        let gauges = [
            (
                "hub_rooms",
                "Chat rooms with members on this node.",
                self.rooms(),
            ),
            (
                "hub_bus_up",
                "1 while this node reaches the other nodes over the bus.",
                self.bus.up.load(Relaxed),
            ),
            (
                "hub_bus_topics",
                "Topics this node is subscribed to.",
                self.bus.topics.load(Relaxed),
            ),
            (
                "hub_db_connections",
                "Database connections the pool holds open.",
                i64::from(pool.open),
            ),
            (
                "hub_db_connections_in_use",
                "Database connections checked out of the pool; one never given back is a leak.",
                i64::from(pool.open.saturating_sub(pool.idle)),
            ),
        ];
        for (name, help, value) in gauges {
            family(&mut out, "gauge", name, help, value);
        }
        out
    }
}

/// A counter with one label: its help and type lines, then a line for
/// each value of the label.
fn labelled<'a>(
    out: &mut String,
    (name, label): (&str, &str),
    help: &str,
    counts: impl Iterator<Item = (&'a str, &'a AtomicU64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (value, n) in counts {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {}", n.load(Relaxed));
    }
}

/// One metric with its help and type lines.
fn family(out: &mut String, kind: &str, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_dns_counter_is_shown_under_its_own_label() {
        let metrics = Metrics::default();
        for (n, answer) in (1..).zip(DnsAnswer::ALL) {
            for _ in 0..n {
                metrics.dns_answered(answer);
            }
        }
        for (n, result) in (1..).zip(Notified::ALL) {
            for _ in 0..n {
                metrics.notified(result);
            }
        }
        let text = metrics.render(PoolGauges { open: 0, idle: 0 });
        for (n, answer) in (1..).zip(DnsAnswer::ALL) {
            let line = format!(
                "hub_dns_queries_total{{answer=\"{}\"}} {n}\n",
                answer.label()
            );
            assert!(text.contains(&line), "{line} in {text}");
        }
        for (n, result) in (1..).zip(Notified::ALL) {
            let line = format!(
                "hub_dns_notifies_total{{result=\"{}\"}} {n}\n",
                result.label()
            );
            assert!(text.contains(&line), "{line} in {text}");
        }
    }

    #[test]
    fn the_pool_is_shown_as_connections_open_and_in_use() {
        let text = Metrics::default().render(PoolGauges { open: 5, idle: 2 });
        assert!(text.contains("\nhub_db_connections 5\n"), "{text}");
        assert!(text.contains("\nhub_db_connections_in_use 3\n"), "{text}");
    }
}
