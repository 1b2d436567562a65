//! Dashboard metrics (`hub_metric`): one current value per user and name.

use chrono::{NaiveDateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::query_dsl::methods::LoadQuery;
use diesel::sqlite::SqliteConnection;
use diesel::upsert::excluded;

use super::DbConnection;
use super::schema::hub_metric;

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
#[derive(Debug, Clone, PartialEq)]
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

/// Applies events in order, in one transaction; returns each metric's value
/// and version after its event.
pub fn apply(conn: &mut DbConnection, events: &[Event]) -> QueryResult<Vec<Current>> {
    let now = Utc::now().naive_utc();
    conn.transaction(|conn| {
        events
            .iter()
            .map(|event| upsert(conn, event, now))
            .collect()
    })
}

/// Creates or changes one metric in a single statement, so two first events
/// for the same metric cannot both try to create it, and concurrent adds add
/// up.
fn upsert(conn: &mut DbConnection, event: &Event, now: NaiveDateTime) -> QueryResult<Current> {
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
    let (value, version) = match event.op {
        Op::Add => one_row(
            conn,
            insert
                .set((
                    hub_metric::value.eq(hub_metric::value + excluded(hub_metric::value)),
                    touched,
                ))
                .returning((hub_metric::value, hub_metric::version)),
        )?,
        Op::Set => one_row(
            conn,
            insert
                .set((hub_metric::value.eq(excluded(hub_metric::value)), touched))
                .returning((hub_metric::value, hub_metric::version)),
        )?,
    };
    Ok(Current {
        user_id: event.user_id,
        metric: event.metric.clone(),
        value,
        version,
    })
}

/// Runs a statement on the connection's own backend: diesel's
/// `MultiConnection` backend has no `ON CONFLICT`, while each real backend
/// does. One statement value, built once, serves both.
fn one_row<'q, Q, U>(conn: &mut DbConnection, query: Q) -> QueryResult<U>
where
    Q: LoadQuery<'q, SqliteConnection, U> + LoadQuery<'q, PgConnection, U>,
{
    match conn {
        DbConnection::Sqlite(c) => RunQueryDsl::get_result(query, c),
        DbConnection::Pg(c) => RunQueryDsl::get_result(query, c),
    }
}

/// A user's metrics, by name; at most `limit` of them.
pub fn for_user(
    conn: &mut DbConnection,
    user_id: i32,
    limit: i64,
) -> QueryResult<Vec<(String, f64)>> {
    hub_metric::table
        .filter(hub_metric::user_id.eq(user_id))
        .order(hub_metric::name)
        .limit(limit)
        .select((hub_metric::name, hub_metric::value))
        .load(conn)
}

/// Totals over all users, for the given names or (with `None`) all of them.
pub fn totals(
    conn: &mut DbConnection,
    names: Option<&[String]>,
    limit: i64,
) -> QueryResult<Vec<(String, f64)>> {
    let mut query = hub_metric::table
        .group_by(hub_metric::name)
        .order(hub_metric::name)
        .limit(limit)
        .select((hub_metric::name, diesel::dsl::sum(hub_metric::value)))
        .into_boxed();
    if let Some(names) = names {
        query = query.filter(hub_metric::name.eq_any(names));
    }
    let rows: Vec<(String, Option<f64>)> = query.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(n, v)| (n, v.unwrap_or(0.0)))
        .collect())
}
