//! What /proc says about a process, latency summaries, and the worker
//! processes a scenario spreads its sockets over.

use std::time::Duration;

use hdrhistogram::Histogram;

fn status_field(pid: &str, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
}

/// Resident memory in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field(&pid.to_string(), "VmRSS:")
}

/// User plus system CPU time; `children` adds reaped children's.
fn cpu_of(pid: &str, children: bool) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may itself hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    let mut ticks = tick(11)? + tick(12)?;
    if children {
        ticks += tick(13)? + tick(14)?;
    }
    // SAFETY: sysconf only reads a configuration value.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(Duration::from_secs_f64(ticks as f64 / per_sec))
}

pub fn cpu(pid: u32) -> Option<Duration> {
    cpu_of(&pid.to_string(), false)
}

/// This generator's CPU time, its reaped workers included.
pub fn own_cpu() -> Duration {
    cpu_of("self", true).unwrap_or_default()
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds")
}

/// `p50 … max` of a histogram of microseconds, in milliseconds.
pub fn latency_line(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        h.len()
    )
}

/// A worker's share of a scenario's sockets, as [`spawn_workers`] gives it.
#[derive(clap::Args)]
pub struct Share {
    #[arg(long)]
    pub first: usize,
    #[arg(long)]
    pub count: usize,
    #[arg(long)]
    pub total: usize,
    #[arg(long)]
    pub source: std::net::Ipv4Addr,
    #[arg(long)]
    pub concurrency: usize,
}

/// Starts `processes` worker processes of this program (subcommand
/// `worker`) that share `sockets` between them, each from its own loopback
/// source address (127.0.0.2, .3, …) with its share of `concurrency`,
/// then `extra`; their stdin and stdout piped.
pub fn spawn_workers(
    target: &crate::Target,
    worker: &str,
    sockets: usize,
    processes: usize,
    concurrency: usize,
    extra: &[String],
) -> anyhow::Result<Vec<std::process::Child>> {
    let exe = std::env::current_exe()?;
    let per = sockets.div_ceil(processes);
    let mut children = Vec::new();
    for k in 0..processes {
        let first = k * per;
        let count = per.min(sockets.saturating_sub(first));
        if count == 0 {
            break;
        }
        let nodes = target
            .servers
            .iter()
            .flat_map(|s| ["--server".to_owned(), s.to_string()]);
        let child = std::process::Command::new(&exe)
            .args(nodes)
            .args(["--threads", "1", worker])
            .args(["--first", &first.to_string(), "--count", &count.to_string()])
            .args(["--total", &sockets.to_string()])
            .args(["--source", &format!("127.0.0.{}", 2 + k)])
            .args([
                "--concurrency",
                &(concurrency / processes).max(1).to_string(),
            ])
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        children.push(child);
    }
    Ok(children)
}
