//! `hub-bench`: the hub's load generator. It talks to a hub on this machine's
//! loopback only, and every loop in it is bounded in count and in time.
//!
//! Scenarios (see BENCHMARKS.md for the documented runs):
//! - `connect`: open N authenticated chat sockets, report handshake rate and
//!   latency, then hold them idle and report the server's memory per socket.
//! - `fanout`: R rooms of M members with P publishers each, open or closed
//!   loop; report deliveries/s, loss, delivery latency and CPU.
//! - `analytics`: K dashboards under an ingest stream; report update latency
//!   and how many events each update coalesced.
//! - `dns`: N DNS panels watching Z zones while W changes a second are
//!   written to them; report write-to-push latency, pushes lost and the
//!   server's CPU per change.
//! - `axfr`: a zone of R records transferred whole from the DNS listener, as
//!   a secondary does, then its difference after one change (IXFR) and its
//!   SOA; report the time, messages, bytes and CPU of each.
//! - `secondary`: changes made in the panel, one after another; report how
//!   soon each nameserver following the hub answers each (p50, p99).
//! - `deploy`: sockets over the nodes of a cluster under chat traffic, one
//!   node stopped with SIGTERM; report how long until every socket is back
//!   on the others, messages lost and duplicated, and the delivery delay.
//! - `soak`: every kind of load at once for a while, then none; check that
//!   sockets, rooms, topics, descriptors, Redis keys and memory come back.

// Rates and ratios of counts far below 2^52: an f64 holds them exactly
// enough for a report.
#![allow(clippy::cast_precision_loss)]

mod analytics;
mod axfr;
mod connect;
mod deploy;
mod dns;
mod fanout;
mod proc;
mod secondary;
mod soak;
mod users;

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hub-bench",
    about = "Load generator for the hub (loopback only)"
)]
pub struct Cli {
    /// A node of the hub (`127.0.0.1:8000` or `ws://127.0.0.1:8000/`); must
    /// be a loopback address. Repeated, the nodes of one cluster: sockets
    /// are spread over them in turn.
    #[arg(
        long,
        visible_alias = "url",
        default_value = "127.0.0.1:8000",
        value_parser = parse_node,
        global = true
    )]
    server: Vec<SocketAddr>,
    /// The hub's process id, to read its CPU time and memory from /proc.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Tokio worker threads of the generator.
    #[arg(long, default_value_t = 2, global = true)]
    threads: usize,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    Connect(connect::Args),
    /// One process's share of `connect` (spawned by it).
    #[command(hide = true)]
    ConnectWorker(connect::WorkerArgs),
    Fanout(fanout::Args),
    Analytics(analytics::Args),
    Dns(dns::Args),
    Axfr(axfr::Args),
    Secondary(secondary::Args),
    Deploy(deploy::Args),
    Soak(soak::Args),
    /// One process's share of `deploy` (spawned by it).
    #[command(hide = true)]
    DeployWorker(deploy::WorkerArgs),
}

/// Where the hub's nodes are and how to reach them.
#[derive(Clone)]
pub struct Target {
    /// One node, or the nodes of a cluster (at least one).
    pub servers: Vec<SocketAddr>,
    /// The process whose CPU and memory are reported: one node's.
    pub pid: Option<u32>,
}

impl Target {
    /// The node the `i`-th socket (or request) goes to: the nodes in turn.
    pub fn server(&self, i: usize) -> SocketAddr {
        self.servers[i % self.servers.len()]
    }
}

/// A node's address, given bare or as the URL a browser would use.
fn parse_node(text: &str) -> Result<SocketAddr, String> {
    let bare = ["ws://", "http://"]
        .iter()
        .find_map(|scheme| text.strip_prefix(scheme))
        .unwrap_or(text)
        .trim_end_matches('/');
    bare.parse()
        .map_err(|e| format!("{text:?} is not host:port (an IP address and a port): {e}"))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(far) = cli.server.iter().find(|s| !s.ip().is_loopback()) {
        anyhow::bail!("hub-bench only targets this machine's loopback, not {far}");
    }
    // Each socket is a file; a worker holds up to about 10,000.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let target = Target {
        servers: cli.server,
        pid: cli.server_pid,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.scenario {
            Scenario::Connect(args) => connect::run(target, args).await,
            Scenario::ConnectWorker(args) => connect::worker(target, args).await,
            Scenario::Fanout(args) => fanout::run(target, args).await,
            Scenario::Analytics(args) => analytics::run(target, args).await,
            Scenario::Dns(args) => dns::run(target, args).await,
            Scenario::Axfr(args) => axfr::run(target, args).await,
            Scenario::Secondary(args) => secondary::run(target, args).await,
            Scenario::Deploy(args) => deploy::run(target, args).await,
            Scenario::DeployWorker(args) => deploy::worker(target, args).await,
            Scenario::Soak(args) => soak::run(target, args).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Target};

    fn nodes(args: &[&str]) -> Vec<std::net::SocketAddr> {
        let cli = Cli::try_parse_from(["hub-bench"].iter().chain(args).chain(&["fanout"]))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        cli.server
    }

    #[test]
    fn one_node_is_the_default_and_several_are_given_by_repeating_the_flag() {
        assert_eq!(nodes(&[]), ["127.0.0.1:8000".parse().unwrap()]);
        assert_eq!(
            nodes(&["--server", "127.0.0.1:9000"]),
            ["127.0.0.1:9000".parse().unwrap()]
        );
        assert_eq!(
            nodes(&[
                "--url",
                "ws://127.0.0.1:9001/",
                "--url",
                "http://127.0.0.1:9002",
                "--server",
                "127.0.0.1:9003"
            ]),
            [
                "127.0.0.1:9001".parse().unwrap(),
                "127.0.0.1:9002".parse().unwrap(),
                "127.0.0.1:9003".parse().unwrap()
            ]
        );
        assert!(Cli::try_parse_from(["hub-bench", "--url", "localhost", "fanout"]).is_err());
    }

    #[test]
    fn sockets_take_the_nodes_in_turn() {
        let target = Target {
            servers: vec![
                "127.0.0.1:1".parse().unwrap(),
                "127.0.0.1:2".parse().unwrap(),
                "127.0.0.1:3".parse().unwrap(),
            ],
            pid: None,
        };
        let ports: Vec<u16> = (0..7).map(|i| target.server(i).port()).collect();
        assert_eq!(ports, [1, 2, 3, 1, 2, 3, 1]);
    }
}
