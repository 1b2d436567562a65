//! Dashboard metrics (`hub_metric`): one current value per user and name.

use chrono::Utc;
use diesel::prelude::*;

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
}

/// Applies events in order, in one transaction; returns each metric's value
/// after its event. Each change is one atomic UPDATE, so concurrent ingests of
/// the same metric add up instead of overwriting each other.
pub fn apply(conn: &mut DbConnection, events: &[Event]) -> QueryResult<Vec<Current>> {
    conn.transaction(|conn| {
        let now = Utc::now().naive_utc();
        events
            .iter()
            .map(|e| {
                let row = hub_metric::table
                    .filter(hub_metric::user_id.eq(e.user_id))
                    .filter(hub_metric::name.eq(&e.metric));
                let updated = match e.op {
                    Op::Add => diesel::update(row)
                        .set((
                            hub_metric::value.eq(hub_metric::value + e.value),
                            hub_metric::updated_at.eq(now),
                        ))
                        .returning((hub_metric::value,))
                        .get_result::<(f64,)>(conn)
                        .optional()?,
                    Op::Set => diesel::update(row)
                        .set((
                            hub_metric::value.eq(e.value),
                            hub_metric::updated_at.eq(now),
                        ))
                        .returning((hub_metric::value,))
                        .get_result::<(f64,)>(conn)
                        .optional()?,
                };
                let value = match updated {
                    Some((v,)) => v,
                    None => {
                        diesel::insert_into(hub_metric::table)
                            .values((
                                hub_metric::user_id.eq(e.user_id),
                                hub_metric::name.eq(&e.metric),
                                hub_metric::value.eq(e.value),
                                hub_metric::updated_at.eq(now),
                            ))
                            .execute(conn)?;
                        e.value
                    }
                };
                Ok(Current {
                    user_id: e.user_id,
                    metric: e.metric.clone(),
                    value,
                })
            })
            .collect()
    })
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
