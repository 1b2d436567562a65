//! Dashboard metrics (`hub_metric`): one current value per user and name,
//! and the last hour of each, a value per minute (`hub_metric_sample`).

use std::collections::BTreeMap;

use chrono::{DurationRound, NaiveDateTime, TimeDelta, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::query_dsl::methods::{self, ExecuteDsl};
use diesel::sqlite::SqliteConnection;
use diesel::upsert::excluded;

use super::schema::{hub_metric, hub_metric_sample};
use super::{DbConnection, first_row};

/// Minutes of samples kept per metric, the current one included.
pub const SAMPLE_MINUTES: u16 = 60;

/// Sample rows in one statement, at most: four bound parameters a row stay
/// far below either backend's limit on them.
const SAMPLE_ROWS_PER_STATEMENT: usize = 1000;

/// The start of the minute `at` falls in: the key of its sample.
pub fn minute_of(at: NaiveDateTime) -> NaiveDateTime {
    at.duration_trunc(TimeDelta::minutes(1))
        .expect("a minute divides any time the hub stores")
}

/// The first minute whose samples are still kept when `minute` is the
/// current one.
pub fn oldest_kept(minute: NaiveDateTime) -> NaiveDateTime {
    minute - TimeDelta::minutes(i64::from(SAMPLE_MINUTES) - 1)
}

/// How an event changes a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Add,
    Set,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub user_id: i32,
    pub metric: String,
    pub value: f64,
    pub op: Op,
}

/// A metric's value after an event.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Current {
    pub user_id: i32,
    pub metric: String,
    pub value: f64,
    /// The row's change counter after this event. Every change bumps it in
    /// the statement that makes the change, under the row's lock, so it rises
    /// strictly in the order changes commit: of two values of one metric, the
    /// one with the higher version is the newer, whatever order they arrive in.
    pub version: i64,
}

/// An `add` that would take a metric past the largest finite number; the
/// batch it came in was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event {index}: adding its value would overflow the metric")]
pub struct Overflow {
    /// The event's place in its batch, from 0.
    pub index: usize,
}

/// Why a batch's transaction is rolled back.
enum Abort {
    Overflow(Overflow),
    Query(diesel::result::Error),
}

impl From<diesel::result::Error> for Abort {
    fn from(err: diesel::result::Error) -> Self {
        Self::Query(err)
    }
}

/// Applies events in order, in one transaction; returns each metric's value
/// and version after its event. An event that would overflow its metric
/// rolls the whole batch back and is named in the `Overflow`. The same
/// transaction records the changed metrics' samples.
pub fn apply(
    conn: &mut DbConnection,
    events: &[Event],
) -> QueryResult<Result<Vec<Current>, Overflow>> {
    let now = Utc::now().naive_utc();
    let stored = conn.transaction(|conn| {
        let current = events
            .iter()
            .enumerate()
            .map(|(index, event)| {
                upsert(conn, event, now)?.ok_or(Abort::Overflow(Overflow { index }))
            })
            .collect::<Result<Vec<_>, Abort>>()?;
        record_samples(conn, &current, minute_of(now))?;
        Ok(current)
    });
    match stored {
        Ok(current) => Ok(Ok(current)),
        Err(Abort::Overflow(overflow)) => Ok(Err(overflow)),
        Err(Abort::Query(err)) => Err(err),
    }
}

/// Creates or changes one metric in a single statement, so two first events
/// for the same metric cannot both try to create it, and concurrent adds add
/// up. `None` when an `add` would overflow: the statement then leaves the row
/// as it was, decided by the database on the locked row, not on a stale read.
fn upsert(
    conn: &mut DbConnection,
    event: &Event,
    now: NaiveDateTime,
) -> QueryResult<Option<Current>> {
    let insert = diesel::insert_into(hub_metric::table)
        .values((
            hub_metric::user_id.eq(event.user_id),
            hub_metric::name.eq(&event.metric),
            hub_metric::value.eq(event.value),
            hub_metric::updated_at.eq(now),
            hub_metric::version.eq(1),
        ))
        .on_conflict((hub_metric::user_id, hub_metric::name))
        .do_update();
    let touched = (
        hub_metric::updated_at.eq(excluded(hub_metric::updated_at)),
        hub_metric::version.eq(hub_metric::version + 1),
    );
    let row = match event.op {
        Op::Add => {
            let (low, high) = addable_range(event.value);
            let add = insert.set((
                hub_metric::value.eq(hub_metric::value + excluded(hub_metric::value)),
                touched,
            ));
            // `DO UPDATE ... WHERE`: named in full, as `QueryDsl::filter` is in scope too.
            let guarded = methods::FilterDsl::filter(add, hub_metric::value.between(low, high));
            first_row(
                conn,
                guarded.returning((hub_metric::value, hub_metric::version)),
            )?
        }
        Op::Set => first_row(
            conn,
            insert
                .set((hub_metric::value.eq(excluded(hub_metric::value)), touched))
                .returning((hub_metric::value, hub_metric::version)),
        )?,
    };
    Ok(row.map(|(value, version)| Current {
        user_id: event.user_id,
        metric: event.metric.clone(),
        value,
        version,
    }))
}

/// `first_row` for a statement that returns no rows.
fn execute<Q>(conn: &mut DbConnection, query: Q) -> QueryResult<usize>
where
    Q: RunQueryDsl<SqliteConnection>
        + ExecuteDsl<SqliteConnection>
        + RunQueryDsl<PgConnection>
        + ExecuteDsl<PgConnection>,
{
    match conn {
        DbConnection::Sqlite(c) => ExecuteDsl::execute(query, c),
        DbConnection::Pg(c) => ExecuteDsl::execute(query, c),
    }
}

/// Makes each changed metric's value its sample for `minute` (of several
/// changes of one metric, the last), and deletes that metric's samples that
/// have aged out by then. In `apply`, only metrics whose row its transaction
/// has just changed, and so holds locked, are touched: recording samples
/// never waits on another ingest, nor makes one wait.
pub fn record_samples(
    conn: &mut DbConnection,
    changes: &[Current],
    minute: NaiveDateTime,
) -> QueryResult<()> {
    // One row per metric: a statement may not upsert one row twice.
    let last: BTreeMap<(i32, &str), f64> = changes
        .iter()
        .map(|c| ((c.user_id, c.metric.as_str()), c.value))
        .collect();
    let rows: Vec<_> = last
        .iter()
        .map(|(&(user_id, name), &value)| {
            (
                hub_metric_sample::user_id.eq(user_id),
                hub_metric_sample::name.eq(name),
                hub_metric_sample::minute.eq(minute),
                hub_metric_sample::value.eq(value),
            )
        })
        .collect();
    for chunk in rows.chunks(SAMPLE_ROWS_PER_STATEMENT) {
        let upsert = diesel::insert_into(hub_metric_sample::table)
            .values(chunk)
            .on_conflict((
                hub_metric_sample::user_id,
                hub_metric_sample::name,
                hub_metric_sample::minute,
            ))
            .do_update()
            .set(hub_metric_sample::value.eq(excluded(hub_metric_sample::value)));
        execute(conn, upsert)?;
    }
    let mut names_by_user: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
    for &(user_id, name) in last.keys() {
        names_by_user.entry(user_id).or_default().push(name);
    }
    for (user_id, names) in names_by_user {
        diesel::delete(
            hub_metric_sample::table
                .filter(hub_metric_sample::user_id.eq(user_id))
                .filter(hub_metric_sample::name.eq_any(names))
                .filter(hub_metric_sample::minute.lt(oldest_kept(minute))),
        )
        .execute(conn)?;
    }
    Ok(())
}

/// The stored values that `add` can be added to with a finite result. The
/// bounds are computed here, exactly, so the database only compares: on
/// PostgreSQL an overflowing sum is an error (even inside a guard), on
/// SQLite an infinity that later turns into NULL.
fn addable_range(add: f64) -> (f64, f64) {
    if add >= 0.0 {
        (f64::MIN, addable_ceiling(add))
    } else {
        (-addable_ceiling(-add), f64::MAX)
    }
}

/// The largest value that a non-negative `add` keeps finite. `MAX - add` is
/// rounded, so the edge is found by bisection instead: over non-negative
/// doubles the bit patterns are ordered as the numbers are, and the sum stays
/// finite up to some value and no further (at most 63 steps).
fn addable_ceiling(add: f64) -> f64 {
    let finite = |bits: u64| (f64::from_bits(bits) + add).is_finite();
    let (mut fits, mut overflows) = (0u64, f64::MAX.to_bits());
    if finite(overflows) {
        return f64::MAX;
    }
    while overflows - fits > 1 {
        let mid = fits + (overflows - fits) / 2;
        if finite(mid) {
            fits = mid;
        } else {
            overflows = mid;
        }
    }
    f64::from_bits(fits)
}

/// A user's metrics, by name, with their versions; at most `limit` of them.
pub fn for_user(
    conn: &mut DbConnection,
    user_id: i32,
    limit: i64,
) -> QueryResult<Vec<(String, f64, i64)>> {
    hub_metric::table
        .filter(hub_metric::user_id.eq(user_id))
        .order(hub_metric::name)
        .limit(limit)
        .select((hub_metric::name, hub_metric::value, hub_metric::version))
        .load(conn)
}

/// A user's samples of the metrics named `first` to `last` (in name order)
/// from the minute `since` on, by name then minute.
pub fn samples(
    conn: &mut DbConnection,
    user_id: i32,
    (first, last): (&str, &str),
    since: NaiveDateTime,
) -> QueryResult<Vec<(String, NaiveDateTime, f64)>> {
    hub_metric_sample::table
        .filter(hub_metric_sample::user_id.eq(user_id))
        .filter(hub_metric_sample::name.between(first, last))
        .filter(hub_metric_sample::minute.ge(since))
        .order((hub_metric_sample::name, hub_metric_sample::minute))
        .select((
            hub_metric_sample::name,
            hub_metric_sample::minute,
            hub_metric_sample::value,
        ))
        .load(conn)
}

/// A metric summed over all users.
#[derive(Debug, Clone, PartialEq)]
pub struct Total {
    pub name: String,
    pub sum: f64,
    /// How many users have the metric: what an average divides by.
    pub users: i64,
}

/// Totals over all users, for the given names or (with `None`) all of them.
pub fn totals(
    conn: &mut DbConnection,
    names: Option<&[String]>,
    limit: i64,
) -> QueryResult<Vec<Total>> {
    let mut query = hub_metric::table
        .group_by(hub_metric::name)
        .order(hub_metric::name)
        .limit(limit)
        .select((
            hub_metric::name,
            diesel::dsl::sum(hub_metric::value),
            diesel::dsl::count(hub_metric::user_id),
        ))
        .into_boxed();
    if let Some(names) = names {
        query = query.filter(hub_metric::name.eq_any(names));
    }
    let rows: Vec<(String, Option<f64>, i64)> = query.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(name, sum, users)| Total {
            name,
            sum: sum.unwrap_or(0.0),
            users,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::addable_range;

    #[test]
    fn the_addable_range_ends_exactly_where_the_sum_would_overflow() {
        for add in [
            0.0,
            1.0,
            3.0 * 2f64.powi(970),
            1e292,
            1e308,
            f64::MAX,
            -1.0,
            -1e308,
            f64::MIN,
        ] {
            let (low, high) = addable_range(add);
            assert!((low + add).is_finite() && (high + add).is_finite(), "{add}");
            assert!(
                high == f64::MAX || !(high.next_up() + add).is_finite(),
                "{add}"
            );
            assert!(
                low == f64::MIN || !(low.next_down() + add).is_finite(),
                "{add}"
            );
        }
        assert_eq!(addable_range(0.0), (f64::MIN, f64::MAX));
    }
}
