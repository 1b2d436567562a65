//! DNS zones, records and their history (`hub_dns_zone`, `hub_dns_record`,
//! `hub_dns_change`). Plain reads and writes; the rules and the transactions
//! that keep a zone consistent live with the DNS endpoint.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use diesel::connection::SimpleConnection;

use super::schema::{
    auth_user, hub_dns_catalog, hub_dns_change, hub_dns_deleted_zone, hub_dns_record, hub_dns_zone,
};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = hub_dns_zone)]
pub struct Zone {
    pub id: i64,
    /// Lower-case ASCII (punycode), without the trailing dot.
    pub name: String,
    pub owner_id: i32,
    pub serial: i64,
}

/// A zone and its owner's username.
pub type ZoneRow = (Zone, String);

/// What a record holds, as stored: `name` relative to its zone (`@` for the
/// apex), `content` in its canonical presentation form.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = hub_dns_record, treat_none_as_null = true)]
pub struct RecordData {
    pub name: String,
    pub kind: String,
    pub content: String,
    pub ttl: i32,
    pub priority: Option<i32>,
    pub weight: Option<i32>,
    pub port: Option<i32>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = hub_dns_record)]
pub struct Record {
    pub id: i64,
    pub zone_id: i64,
    #[diesel(embed)]
    pub data: RecordData,
    pub version: i64,
}

/// One entry of a zone's history.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = hub_dns_change)]
pub struct NewChange {
    pub zone_id: i64,
    pub record_id: Option<i64>,
    pub user_id: i32,
    pub username: String,
    pub at: NaiveDateTime,
    pub serial: i64,
    pub action: String,
    /// The record before and after, as JSON text.
    pub old: Option<String>,
    pub new: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = hub_dns_change)]
pub struct Change {
    pub id: i64,
    #[diesel(embed)]
    pub change: NewChange,
}

pub fn zone_by_name(conn: &mut DbConnection, name: &str) -> QueryResult<Option<ZoneRow>> {
    hub_dns_zone::table
        .inner_join(auth_user::table)
        .filter(hub_dns_zone::name.eq(name))
        .select((Zone::as_select(), auth_user::username))
        .first(conn)
        .optional()
}

pub fn zone_by_id(conn: &mut DbConnection, id: i64) -> QueryResult<Option<ZoneRow>> {
    hub_dns_zone::table
        .inner_join(auth_user::table)
        .filter(hub_dns_zone::id.eq(id))
        .select((Zone::as_select(), auth_user::username))
        .first(conn)
        .optional()
}

/// Zones by name: those of `owner`, or every zone when `None`.
pub fn zones(conn: &mut DbConnection, owner: Option<i32>, limit: i64) -> QueryResult<Vec<ZoneRow>> {
    let mut query = hub_dns_zone::table
        .inner_join(auth_user::table)
        .select((Zone::as_select(), auth_user::username))
        .order(hub_dns_zone::name)
        .limit(limit)
        .into_boxed();
    if let Some(owner) = owner {
        query = query.filter(hub_dns_zone::owner_id.eq(owner));
    }
    query.load(conn)
}

/// A stored zone that holds `name` or lies inside it (`name` itself
/// included): given `sub.example.com`, finds `example.com`, `com`, or
/// `a.sub.example.com`.
pub fn overlapping_zone(conn: &mut DbConnection, name: &str) -> QueryResult<Option<String>> {
    let mut enclosing: Vec<&str> = vec![name];
    enclosing.extend(name.match_indices('.').map(|(at, _)| &name[at + 1..]));
    hub_dns_zone::table
        .filter(
            hub_dns_zone::name
                .eq_any(enclosing)
                .or(hub_dns_zone::name.like(format!("%.{name}"))),
        )
        .select(hub_dns_zone::name)
        .first(conn)
        .optional()
}

/// Makes zone creations take turns, as the first statement of their
/// transaction: whether a name overlaps a zone, and how many zones an
/// owner has, are read and then acted on, and two creations that both read
/// before either wrote would both pass (`n.test` and `x.n.test` at once).
/// On PostgreSQL a transaction-scoped advisory lock, held until commit;
/// on SQLite a write that touches nothing, which takes the database's one
/// write lock before anything is read.
pub fn lock_zone_creation(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Pg(c) => c.batch_execute("SELECT pg_advisory_xact_lock(7261627)"),
        DbConnection::Sqlite(c) => c.batch_execute("UPDATE hub_dns_zone SET id = id WHERE 0"),
    }
}

/// Makes the rest of a read-only transaction see one snapshot: on
/// PostgreSQL every statement of a `READ COMMITTED` transaction sees what
/// was committed when it began, so a zone's serial and its records, read
/// one after the other, could straddle a change. On SQLite a transaction's
/// reads already see one state of the database.
pub fn read_snapshot(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Pg(c) => {
            c.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        }
        DbConnection::Sqlite(_) => Ok(()),
    }
}

/// The serial a deleted zone of this name had reached, if one was deleted.
pub fn deleted_serial(conn: &mut DbConnection, name: &str) -> QueryResult<Option<i64>> {
    hub_dns_deleted_zone::table
        .find(name)
        .select(hub_dns_deleted_zone::serial)
        .first(conn)
        .optional()
}

/// Keeps the serial a zone reached as it is deleted (see
/// [`deleted_serial`]); called under the zone's lock.
fn remember_serial(conn: &mut DbConnection, name: &str, serial: i64) -> QueryResult<()> {
    diesel::delete(hub_dns_deleted_zone::table.find(name)).execute(conn)?;
    diesel::insert_into(hub_dns_deleted_zone::table)
        .values((
            hub_dns_deleted_zone::name.eq(name),
            hub_dns_deleted_zone::serial.eq(serial),
        ))
        .execute(conn)
        .map(drop)
}

pub fn zones_owned(conn: &mut DbConnection, owner: i32) -> QueryResult<i64> {
    hub_dns_zone::table
        .filter(hub_dns_zone::owner_id.eq(owner))
        .count()
        .get_result(conn)
}

pub fn create_zone(
    conn: &mut DbConnection,
    name: &str,
    owner_id: i32,
    serial: i64,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    diesel::insert_into(hub_dns_zone::table)
        .values((
            hub_dns_zone::name.eq(name),
            hub_dns_zone::owner_id.eq(owner_id),
            hub_dns_zone::serial.eq(serial),
            hub_dns_zone::created_at.eq(now),
            hub_dns_zone::updated_at.eq(now),
        ))
        .returning((hub_dns_zone::id,))
        .get_result::<(i64,)>(conn)
        .map(|(id,)| id)
        .and_then(|id| bump_catalog(conn).map(|()| id))
}

/// Deletes a zone with its records and history, keeping the serial it
/// reached for a zone of the same name created later.
pub fn delete_zone(conn: &mut DbConnection, zone: &Zone) -> QueryResult<()> {
    let id = zone.id;
    bump_catalog(conn)?;
    remember_serial(conn, &zone.name, zone.serial)?;
    diesel::delete(hub_dns_record::table.filter(hub_dns_record::zone_id.eq(id))).execute(conn)?;
    diesel::delete(hub_dns_change::table.filter(hub_dns_change::zone_id.eq(id))).execute(conn)?;
    diesel::delete(hub_dns_zone::table.find(id)).execute(conn)?;
    Ok(())
}

/// Moves the catalog's serial on: a zone was made or deleted (in the same
/// transaction).
fn bump_catalog(conn: &mut DbConnection) -> QueryResult<()> {
    diesel::update(hub_dns_catalog::table.find(1))
        .set(hub_dns_catalog::serial.eq(hub_dns_catalog::serial + 1))
        .execute(conn)
        .map(drop)
}

/// The catalog's serial, and every zone's id and name, by name.
pub fn catalog(conn: &mut DbConnection) -> QueryResult<(i64, Vec<(i64, String)>)> {
    let serial = hub_dns_catalog::table
        .find(1)
        .select(hub_dns_catalog::serial)
        .first(conn)?;
    let zones = hub_dns_zone::table
        .order(hub_dns_zone::name)
        .select((hub_dns_zone::id, hub_dns_zone::name))
        .load(conn)?;
    Ok((serial, zones))
}

/// Which zone to lock: by name, or the zone holding a record.
#[derive(Debug, Clone, Copy)]
pub enum ZoneKey<'a> {
    Name(&'a str),
    RecordOf(i64),
}

/// Writes the zone's row as the first statement of a transaction, so that
/// changes to one zone take turns from the start (a row lock on
/// PostgreSQL; on SQLite the write lock, taken before any read so no
/// transaction has to upgrade a read lock and fail as busy). Returns the
/// zone's id, `None` when there is no such zone.
pub fn lock_zone(
    conn: &mut DbConnection,
    key: ZoneKey<'_>,
    now: NaiveDateTime,
) -> QueryResult<Option<i64>> {
    let touched = match key {
        ZoneKey::Name(name) => diesel::update(hub_dns_zone::table)
            .filter(hub_dns_zone::name.eq(name))
            .set(hub_dns_zone::updated_at.eq(now))
            .returning((hub_dns_zone::id,))
            .get_result::<(i64,)>(conn),
        ZoneKey::RecordOf(id) => diesel::update(hub_dns_zone::table)
            .filter(
                hub_dns_zone::id.eq_any(
                    hub_dns_record::table
                        .filter(hub_dns_record::id.eq(id))
                        .select(hub_dns_record::zone_id),
                ),
            )
            .set(hub_dns_zone::updated_at.eq(now))
            .returning((hub_dns_zone::id,))
            .get_result::<(i64,)>(conn),
    };
    touched.map(|(id,)| id).optional()
}

pub fn set_serial(conn: &mut DbConnection, id: i64, serial: i64) -> QueryResult<()> {
    diesel::update(hub_dns_zone::table.find(id))
        .set(hub_dns_zone::serial.eq(serial))
        .execute(conn)
        .map(drop)
}

pub fn records(conn: &mut DbConnection, zone_id: i64) -> QueryResult<Vec<Record>> {
    hub_dns_record::table
        .filter(hub_dns_record::zone_id.eq(zone_id))
        .order((
            hub_dns_record::name,
            hub_dns_record::kind,
            hub_dns_record::id,
        ))
        .select(Record::as_select())
        .load(conn)
}

/// The zone's own name servers (`NS` at the apex), in the order of
/// [`records`]: all that shapes its SOA.
pub fn apex_ns(conn: &mut DbConnection, zone_id: i64) -> QueryResult<Vec<Record>> {
    hub_dns_record::table
        .filter(hub_dns_record::zone_id.eq(zone_id))
        .filter(hub_dns_record::name.eq("@"))
        .filter(hub_dns_record::kind.eq("NS"))
        .order(hub_dns_record::id)
        .select(Record::as_select())
        .load(conn)
}

pub fn record(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Record>> {
    hub_dns_record::table
        .find(id)
        .select(Record::as_select())
        .first(conn)
        .optional()
}

/// Stores a new record at version 1; returns its id.
pub fn insert_record(conn: &mut DbConnection, zone_id: i64, data: &RecordData) -> QueryResult<i64> {
    diesel::insert_into(hub_dns_record::table)
        .values((
            data,
            hub_dns_record::zone_id.eq(zone_id),
            hub_dns_record::version.eq(1_i64),
        ))
        .returning((hub_dns_record::id,))
        .get_result::<(i64,)>(conn)
        .map(|(id,)| id)
}

pub fn update_record(
    conn: &mut DbConnection,
    id: i64,
    data: &RecordData,
    version: i64,
) -> QueryResult<()> {
    diesel::update(hub_dns_record::table.find(id))
        .set((data, hub_dns_record::version.eq(version)))
        .execute(conn)
        .map(drop)
}

pub fn delete_record(conn: &mut DbConnection, id: i64) -> QueryResult<()> {
    diesel::delete(hub_dns_record::table.find(id))
        .execute(conn)
        .map(drop)
}

pub fn insert_changes(conn: &mut DbConnection, changes: &[NewChange]) -> QueryResult<()> {
    // One row at a time: multi-row inserts are not portable through the
    // connection enum, and a change set is small.
    for change in changes {
        diesel::insert_into(hub_dns_change::table)
            .values(change)
            .execute(conn)?;
    }
    Ok(())
}

/// A zone's history, newest first, before the change `before` when given.
pub fn history(
    conn: &mut DbConnection,
    zone_id: i64,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<Change>> {
    let mut query = hub_dns_change::table
        .filter(hub_dns_change::zone_id.eq(zone_id))
        .order(hub_dns_change::id.desc())
        .limit(limit)
        .select(Change::as_select())
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(hub_dns_change::id.lt(before));
    }
    query.load(conn)
}

/// Whether any change of the zone was made at `serial`: a state that was
/// served, from which a secondary may be brought up by differences.
pub fn served_serial(conn: &mut DbConnection, zone_id: i64, serial: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        hub_dns_change::table
            .filter(hub_dns_change::zone_id.eq(zone_id))
            .filter(hub_dns_change::serial.eq(serial)),
    ))
    .get_result(conn)
}

/// The zone's changes made after `serial`, oldest first.
pub fn changes_after(
    conn: &mut DbConnection,
    zone_id: i64,
    serial: i64,
) -> QueryResult<Vec<NewChange>> {
    hub_dns_change::table
        .filter(hub_dns_change::zone_id.eq(zone_id))
        .filter(hub_dns_change::serial.gt(serial))
        .order(hub_dns_change::id.asc())
        .select(NewChange::as_select())
        .load(conn)
}
