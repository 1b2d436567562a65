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

// Rates and ratios of counts far below 2^52: an f64 holds them exactly
// enough for a report.
#![allow(clippy::cast_precision_loss)]

mod analytics;
mod connect;
mod dns;
mod fanout;
mod proc;
mod users;

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hub-bench",
    about = "Load generator for the hub (loopback only)"
)]
pub struct Cli {
    /// The hub's address; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:8000", global = true)]
    server: SocketAddr,
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
}

/// Where the hub is and how to reach it.
#[derive(Clone, Copy)]
pub struct Target {
    pub server: SocketAddr,
    pub pid: Option<u32>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(
        cli.server.ip().is_loopback(),
        "hub-bench only targets this machine's loopback, not {}",
        cli.server
    );
    // Each socket is a file; a worker holds up to about 10,000.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let target = Target {
        server: cli.server,
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
        }
    })
}
