//! What /proc says about a process, and latency summaries.

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
