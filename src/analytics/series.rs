//! The recent past of a dashboard's metrics, as its snapshot carries it: a
//! value per minute for each metric, all on one time axis, so a dashboard
//! opened or reloaded draws the last hour before its live points.

use std::collections::BTreeMap;

use chrono::{NaiveDateTime, TimeDelta};
use serde::Serialize;

use crate::db::DbConnection;
use crate::db::metrics::{self as store, SAMPLE_MINUTES};
use crate::ws::frames::wire_time;

/// Points in one snapshot's series, over all its metrics, at most.
pub const MAX_POINTS: usize = 10_000;
/// Seconds between two points: a sample is a minute.
const STEP_SECS: u32 = 60;

#[derive(Debug, PartialEq, Serialize)]
pub struct Series {
    /// The minute of every metric's first point.
    pub from: String,
    pub step: u32,
    /// Per metric, its value at the end of each minute from `from` on (the
    /// last one: now); `None` before its first change in that span, where
    /// the value it had is no longer kept.
    pub points: BTreeMap<String, Vec<Option<f64>>>,
}

/// Minutes per metric for a snapshot of `metrics` metrics: the hour, or
/// fewer, the same for all, so that the points stay within `MAX_POINTS`.
fn minutes_for(metrics: usize) -> u16 {
    u16::try_from(MAX_POINTS / metrics.max(1))
        .unwrap_or(u16::MAX)
        .clamp(1, SAMPLE_MINUTES)
}

/// The series of a user's snapshot, `current` being its metrics by name
/// with their values, read at `now`.
pub fn load(
    conn: &mut DbConnection,
    user_id: i32,
    current: &BTreeMap<String, f64>,
    now: NaiveDateTime,
) -> diesel::QueryResult<Series> {
    let minutes = minutes_for(current.len());
    let last = store::minute_of(now);
    let from = last - TimeDelta::minutes(i64::from(minutes) - 1);
    let samples = match (current.keys().next(), current.keys().next_back()) {
        (Some(first), Some(last)) => store::samples(conn, user_id, (first, last), from)?,
        _ => Vec::new(),
    };
    Ok(build(current, samples, from, minutes))
}

/// Lays `samples` (by name, then minute) out on the minutes from `from` on.
/// A minute without a sample held the value of the one before it; a metric
/// without any did not change in the span, so it had its current value
/// throughout.
fn build(
    current: &BTreeMap<String, f64>,
    samples: Vec<(String, NaiveDateTime, f64)>,
    from: NaiveDateTime,
    minutes: u16,
) -> Series {
    let mut points: BTreeMap<String, Vec<Option<f64>>> = current
        .keys()
        .map(|name| (name.clone(), vec![None; usize::from(minutes)]))
        .collect();
    for (name, minute, value) in samples {
        let index = usize::try_from((minute - from).num_minutes()).ok();
        if let (Some(line), Some(index)) = (points.get_mut(&name), index)
            && let Some(point) = line.get_mut(index)
        {
            *point = Some(value);
        }
    }
    for (name, line) in &mut points {
        if line.iter().all(Option::is_none) {
            line.fill(current.get(name).copied());
            continue;
        }
        let mut before = None;
        for point in line.iter_mut() {
            before = point.or(before);
            *point = before;
        }
    }
    Series {
        from: wire_time(from),
        step: STEP_SECS,
        points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: u32) -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 12, 9)
            .unwrap()
            .and_hms_opt(10, minute, 0)
            .unwrap()
    }

    #[test]
    fn the_points_of_all_metrics_stay_within_the_bound_and_an_hour() {
        assert_eq!(minutes_for(0), 60);
        assert_eq!(minutes_for(20), 60);
        assert_eq!(minutes_for(166), 60);
        assert_eq!(minutes_for(167), 59);
        assert_eq!(minutes_for(1000), 10);
        let most = usize::try_from(crate::analytics::SNAPSHOT_LIMIT).unwrap();
        for metrics in 1..=most {
            assert!(metrics * usize::from(minutes_for(metrics)) <= MAX_POINTS);
        }
    }

    #[test]
    fn minutes_between_samples_keep_the_value_before_and_a_quiet_metric_its_own() {
        let current = BTreeMap::from([("cpu_pct".to_owned(), 30.0), ("quiet".to_owned(), 5.0)]);
        let samples = vec![
            ("cpu_pct".to_owned(), at(1), 10.0),
            ("cpu_pct".to_owned(), at(3), 30.0),
            ("gone".to_owned(), at(2), 1.0),
            ("cpu_pct".to_owned(), at(9), 99.0),
        ];
        let series = build(&current, samples, at(0), 5);
        assert_eq!(series.from, "2026-12-09T10:00:00.000Z");
        assert_eq!(series.step, 60);
        assert_eq!(
            series.points,
            BTreeMap::from([
                (
                    "cpu_pct".to_owned(),
                    vec![None, Some(10.0), Some(10.0), Some(30.0), Some(30.0)]
                ),
                ("quiet".to_owned(), vec![Some(5.0); 5]),
            ])
        );
    }
}
