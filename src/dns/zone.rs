//! What a DNS request does to the database, each in one transaction: a
//! change locks its zone's row first, checks the records as the zone would
//! hold them afterwards, writes them, bumps the serial once and keeps the
//! history. A refusal rolls everything back.
//!
//! Runs on the blocking pool (through `Db::run`), never on an actor.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate, Utc};
use diesel::Connection;
use diesel::result::Error as DieselError;
use domain::base::Serial;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::master;
use super::validate::{self, Entry, Failures, Invalid, Origin};
use crate::config::DnsPrimary;
use crate::db::DbConnection;
use crate::db::dns::{self as store, NewChange, Record, RecordData, Zone, ZoneKey, ZoneRow};
use crate::db::users::{self, User};
use crate::ws::frames::wire_time;

/// Zones one listing shows, at most (`HUB_DNS_MAX_ZONES` stays below it,
/// so a user's own zones always fit one reply).
pub const MAX_ZONES_LISTED: i64 = 10_000;

/// Why a request changed nothing.
#[derive(Debug)]
pub enum Denied {
    /// No such zone or record, or one this user may not see.
    NotFound,
    /// Rules broken, by the index of the change (0 for a single one).
    Invalid(Failures),
    /// The record moved past the `version` the client named.
    StaleRecord(Box<RecordView>),
    /// The zone moved past the `serial` the client named.
    StaleSerial(i64),
    /// A zone of that name, or one holding it or inside it, exists.
    Taken,
    /// A limit of the settings (records per zone, zones per owner) would be
    /// passed: not the fault of any one change, so told once, never by
    /// index or line.
    OverLimit(Invalid),
}

impl Denied {
    fn one(field: &'static str, detail: impl Into<String>) -> Self {
        Self::Invalid(Failures::one(Invalid::new(field, detail)))
    }
}

/// A transaction's outcome: what it did, or why it rolled back.
pub type Outcome<T> = Result<T, Denied>;

/// Inside a transaction: a refusal rolls back like an error does.
enum Abort {
    Db(DieselError),
    Denied(Denied),
}

impl From<DieselError> for Abort {
    fn from(err: DieselError) -> Self {
        Self::Db(err)
    }
}

impl From<Denied> for Abort {
    fn from(denied: Denied) -> Self {
        Self::Denied(denied)
    }
}

/// Runs `work` in a transaction; a refusal rolls back and is returned as
/// the outcome, a database error as the error.
fn transaction<T>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> Result<T, Abort>,
) -> diesel::QueryResult<Outcome<T>> {
    match conn.transaction(work) {
        Ok(done) => Ok(Ok(done)),
        Err(Abort::Denied(denied)) => Ok(Err(denied)),
        Err(Abort::Db(err)) => Err(err),
    }
}

/// The serial after `current` on `today`, `YYYYMMDDnn`: today's first
/// number, or one more than the last when that is already today's or
/// later (the 100th change of a day spills past `nn = 99`, never back).
pub fn next_serial(current: i64, today: NaiveDate) -> i64 {
    let day =
        i64::from(today.year()) * 10_000 + i64::from(today.month()) * 100 + i64::from(today.day());
    (day * 100).max(current + 1)
}

fn may_see(user: &User, zone: &Zone) -> bool {
    user.is_staff || zone.owner_id == user.id
}

/// A user as pushes and history show it.
#[derive(Debug, Clone, Serialize)]
pub struct Who {
    pub id: i32,
    pub username: String,
}

/// A zone as replies show it.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneView {
    pub name: String,
    pub serial: i64,
    pub owner: Who,
    /// Who may see it, for the broadcaster; not sent.
    #[serde(skip)]
    pub owner_id: i32,
}

impl ZoneView {
    pub fn new((zone, username): ZoneRow) -> Self {
        Self {
            name: zone.name,
            serial: zone.serial,
            owner: Who {
                id: zone.owner_id,
                username,
            },
            owner_id: zone.owner_id,
        }
    }
}

/// A record as replies show it: the stored name relative to the zone,
/// and its absolute `fqdn`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordView {
    pub id: i64,
    pub name: String,
    pub fqdn: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub content: String,
    pub ttl: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub version: i64,
}

impl RecordView {
    pub fn new(origin: &Origin, record: &Record) -> Self {
        let d = &record.data;
        Self {
            id: record.id,
            fqdn: origin.fqdn(&d.name),
            name: d.name.clone(),
            kind: d.kind.clone(),
            content: d.content.clone(),
            ttl: d.ttl,
            priority: d.priority,
            weight: d.weight,
            port: d.port,
            comment: d.comment.clone(),
            version: record.version,
        }
    }

    fn json(&self) -> String {
        serde_json::to_string(self).expect("plain struct")
    }

    /// The record as stored, read back from what history kept of it.
    fn into_record(self, zone_id: i64) -> Record {
        Record {
            id: self.id,
            zone_id,
            data: RecordData {
                name: self.name,
                kind: self.kind,
                content: self.content,
                ttl: self.ttl,
                priority: self.priority,
                weight: self.weight,
                port: self.port,
                comment: self.comment,
            },
            version: self.version,
        }
    }
}

/// The origin of a stored zone; its name was checked when it was created.
pub fn origin_of(zone: &Zone) -> Origin {
    Origin::stored(&zone.name)
}

/// The zones `user` may see: its own, or every zone for staff.
pub fn zones(conn: &mut DbConnection, user: &User) -> diesel::QueryResult<Vec<ZoneView>> {
    let owner = (!user.is_staff).then_some(user.id);
    Ok(store::zones(conn, owner, MAX_ZONES_LISTED)?
        .into_iter()
        .map(ZoneView::new)
        .collect())
}

/// Every zone, for a broadcaster comparing serials across an outage.
pub fn all_zones(conn: &mut DbConnection) -> diesel::QueryResult<Vec<ZoneView>> {
    Ok(store::zones(conn, None, i64::MAX)?
        .into_iter()
        .map(ZoneView::new)
        .collect())
}

/// Locks the zone first thing in the transaction (see
/// [`store::lock_zone`]), then reads it as this transaction now holds it.
fn locked_zone(conn: &mut DbConnection, user: &User, key: ZoneKey<'_>) -> Result<ZoneRow, Abort> {
    let id = store::lock_zone(conn, key, Utc::now().naive_utc())?.ok_or(Denied::NotFound)?;
    match store::zone_by_id(conn, id)? {
        Some(row) if may_see(user, &row.0) => Ok(row),
        _ => Err(Denied::NotFound.into()),
    }
}

fn visible_zone(conn: &mut DbConnection, user: &User, name: &str) -> Result<ZoneRow, Abort> {
    match store::zone_by_name(conn, name)? {
        Some(row) if may_see(user, &row.0) => Ok(row),
        _ => Err(Denied::NotFound.into()),
    }
}

/// Creates a zone owned by `owner` (the user itself unless staff named
/// another), who may own at most `max_zones` (`HUB_DNS_MAX_ZONES`).
pub fn create_zone(
    conn: &mut DbConnection,
    origin: &Origin,
    owner: i32,
    max_zones: i64,
) -> diesel::QueryResult<Outcome<ZoneView>> {
    transaction(conn, |conn| {
        store::lock_zone_creation(conn)?;
        if users::find(conn, owner)?.is_none() {
            return Err(Denied::one("owner", "no such user").into());
        }
        if store::zones_owned(conn, owner)? >= max_zones {
            let detail = format!("a user owns at most {max_zones} zones (HUB_DNS_MAX_ZONES)");
            return Err(Denied::OverLimit(Invalid::new("owner", detail)).into());
        }
        if store::overlapping_zone(conn, origin.as_str())?.is_some() {
            return Err(Denied::Taken.into());
        }
        let now = Utc::now().naive_utc();
        // Never below the serial a deleted zone of this name reached.
        let before = store::deleted_serial(conn, origin.as_str())?.unwrap_or(0);
        let serial = next_serial(before, now.date());
        let id = store::create_zone(conn, origin.as_str(), owner, serial, now)?;
        let row = store::zone_by_id(conn, id)?.ok_or(DieselError::NotFound)?;
        Ok(ZoneView::new(row))
    })
}

/// Deletes a zone with its records and history, if its serial is still
/// `serial`.
pub fn delete_zone(
    conn: &mut DbConnection,
    user: &User,
    name: &str,
    serial: i64,
) -> diesel::QueryResult<Outcome<ZoneView>> {
    transaction(conn, |conn| {
        let row = locked_zone(conn, user, ZoneKey::Name(name))?;
        if row.0.serial != serial {
            return Err(Denied::StaleSerial(row.0.serial).into());
        }
        store::delete_zone(conn, &row.0)?;
        Ok(ZoneView::new(row))
    })
}

/// A zone and its records.
pub fn list(
    conn: &mut DbConnection,
    user: &User,
    name: &str,
) -> diesel::QueryResult<Outcome<(ZoneView, Vec<RecordView>)>> {
    transaction(conn, |conn| {
        let row = visible_zone(conn, user, name)?;
        let origin = origin_of(&row.0);
        let records = store::records(conn, row.0.id)?
            .iter()
            .map(|r| RecordView::new(&origin, r))
            .collect();
        Ok((ZoneView::new(row), records))
    })
}

/// One change to a zone's records, as a `dns.batch` lists it
/// (`{"op": "create" | "update" | "delete", ...}`).
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Change {
    /// A record as the client sent it.
    Create {
        record: Value,
    },
    /// The fields the client sent replace the record's; `version`, when
    /// given, must be the record's current one.
    Update {
        id: i64,
        record: Value,
        version: Option<i64>,
    },
    Delete {
        id: i64,
        version: Option<i64>,
    },
}

/// What a change did, in the zone's history's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Updated,
    Deleted,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Done {
    pub action: Action,
    pub record: RecordView,
    /// What an update replaced, for a preview; pushes carry only the
    /// record as the change left it.
    #[serde(skip)]
    pub old: Option<RecordView>,
}

/// Changes applied to one zone, its serial bumped once (or not at all,
/// when none of them changed anything).
#[derive(Debug)]
pub struct Applied {
    pub zone: ZoneView,
    /// The serial before: what a panel's view must be at for `done` to
    /// follow on from it.
    pub previous_serial: i64,
    /// What changed, for the push and the history.
    pub done: Vec<Done>,
    /// One record per change, in order, as the change left it (a deleted
    /// one as it was, an update that changed nothing as it is).
    pub records: Vec<RecordView>,
}

/// A record's fields as a client would send them, for an update to
/// overlay the sent fields on.
fn as_sent(data: &RecordData) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("name".into(), data.name.clone().into());
    fields.insert("type".into(), data.kind.clone().into());
    fields.insert("content".into(), data.content.clone().into());
    fields.insert("ttl".into(), data.ttl.into());
    for (key, value) in [
        ("priority", data.priority),
        ("weight", data.weight),
        ("port", data.port),
    ] {
        if let Some(value) = value {
            fields.insert(key.into(), value.into());
        }
    }
    // Null rather than left out: an import that drops a comment clears it.
    fields.insert("comment".into(), data.comment.clone().into());
    fields
}

/// What a change would leave in place of the stored records.
enum Plan {
    Insert(RecordData),
    Update(Record, RecordData),
    Delete(Record),
    /// An update to what the record already holds: nothing to write.
    Keep(Record),
}

/// Checks each change on its own, then the zone as the changes would leave
/// it, of at most `max_records`; the stored records a change names must be
/// in `records`.
fn plan(
    origin: &Origin,
    records: &[Record],
    changes: Vec<Change>,
    max_records: usize,
) -> Result<Vec<Plan>, Denied> {
    let mut plans = Vec::with_capacity(changes.len());
    let mut errors = Failures::default();
    // Which change first named each stored record: a second change to the
    // same record would be applied to what the first left, and told, pushed
    // and kept in history as if applied to what was stored.
    let mut named: HashMap<i64, usize> = HashMap::new();
    let stored = |id: i64| records.iter().find(|r| r.id == id);
    let current = |id: i64, version: Option<i64>| -> Result<Record, Result<Invalid, Denied>> {
        let record =
            stored(id).ok_or_else(|| Ok(Invalid::new("id", "no such record in this zone")))?;
        match version {
            Some(v) if v != record.version => Err(Err(Denied::StaleRecord(Box::new(
                RecordView::new(origin, record),
            )))),
            _ => Ok(record.clone()),
        }
    };
    for (i, change) in changes.into_iter().enumerate() {
        if let Change::Update { id, .. } | Change::Delete { id, .. } = change
            && let Some(first) = named.insert(id, i)
        {
            named.insert(id, first);
            let detail = format!(
                "change {first} already names record {id}; a batch changes each record once"
            );
            errors.push(i, Invalid::new("id", detail));
            continue;
        }
        let planned = match change {
            Change::Create { record } => validate::record(origin, &record)
                .map(Plan::Insert)
                .map_err(Ok),
            Change::Update {
                id,
                record,
                version,
            } => current(id, version).and_then(|was| {
                let Value::Object(sent) = record else {
                    return Err(Ok(Invalid::new("record", "a record is a JSON object")));
                };
                let mut merged = as_sent(&was.data);
                merged.extend(sent);
                validate::record(origin, &Value::Object(merged))
                    .map(|data| {
                        if data == was.data {
                            Plan::Keep(was)
                        } else {
                            Plan::Update(was, data)
                        }
                    })
                    .map_err(Ok)
            }),
            Change::Delete { id, version } => current(id, version).map(Plan::Delete),
        };
        match planned {
            Ok(p) => plans.push(p),
            Err(Ok(invalid)) => errors.push(i, invalid),
            Err(Err(denied)) => return Err(denied),
        }
    }
    if !errors.is_empty() {
        return Err(Denied::Invalid(errors));
    }
    // The zone as it would be: untouched records, then every change's.
    let touched: Vec<i64> = plans
        .iter()
        .filter_map(|p| match p {
            Plan::Insert(_) | Plan::Keep(_) => None,
            Plan::Update(was, _) | Plan::Delete(was) => Some(was.id),
        })
        .collect();
    let mut entries: Vec<Entry<'_>> = records
        .iter()
        .filter(|r| !touched.contains(&r.id))
        .map(|r| Entry {
            data: &r.data,
            changed: None,
        })
        .collect();
    entries.extend(plans.iter().enumerate().filter_map(|(i, p)| match p {
        Plan::Insert(data) | Plan::Update(_, data) => Some(Entry {
            data,
            changed: Some(i),
        }),
        Plan::Delete(_) | Plan::Keep(_) => None,
    }));
    // Only growth is refused: a zone left above a lowered limit can still
    // be edited and shrunk.
    if entries.len() > max_records && entries.len() > records.len() {
        let detail = format!(
            "a zone holds at most {max_records} records (HUB_DNS_MAX_RECORDS); these changes would leave {}; nothing was applied",
            entries.len()
        );
        return Err(Denied::OverLimit(Invalid::new("records", detail)));
    }
    let errors = validate::check_set(origin, &entries);
    if errors.is_empty() {
        Ok(plans)
    } else {
        Err(Denied::Invalid(errors.into_iter().collect()))
    }
}

/// Applies changes to a zone all together or not at all, with one serial
/// bump; `serial`, when given, must be the zone's current one, and the zone
/// may not grow past `max_records` (`HUB_DNS_MAX_RECORDS`). `changes`
/// is given the zone's stored records, read inside the transaction (an
/// import works out its changes from them); none at all leaves the zone
/// and its serial as they were.
pub fn apply(
    conn: &mut DbConnection,
    user: &User,
    key: ZoneKey<'_>,
    serial: Option<i64>,
    max_records: usize,
    changes: impl FnOnce(&[Record]) -> Vec<Change>,
) -> diesel::QueryResult<Outcome<Applied>> {
    transaction(conn, |conn| {
        let (zone, owner_name) = locked_zone(conn, user, key)?;
        let now = Utc::now().naive_utc();
        if let Some(expected) = serial
            && expected != zone.serial
        {
            return Err(Denied::StaleSerial(zone.serial).into());
        }
        let origin = origin_of(&zone);
        let records = store::records(conn, zone.id)?;
        let plans = plan(&origin, &records, changes(&records), max_records)?;
        let previous_serial = zone.serial;
        let mut done = Vec::with_capacity(plans.len());
        let mut shown = Vec::with_capacity(plans.len());
        for plan in plans {
            let (action, was, record) = match plan {
                Plan::Keep(record) => {
                    shown.push(RecordView::new(&origin, &record));
                    continue;
                }
                Plan::Insert(data) => {
                    let id = store::insert_record(conn, zone.id, &data)?;
                    let record = Record {
                        id,
                        zone_id: zone.id,
                        data,
                        version: 1,
                    };
                    (Action::Created, None, record)
                }
                Plan::Update(was, data) => {
                    let version = was.version + 1;
                    store::update_record(conn, was.id, &data, version)?;
                    let record = Record {
                        id: was.id,
                        zone_id: zone.id,
                        data,
                        version,
                    };
                    (Action::Updated, Some(was), record)
                }
                Plan::Delete(was) => (Action::Deleted, Some(was.clone()), was),
            };
            if action == Action::Deleted {
                store::delete_record(conn, record.id)?;
            }
            let view = RecordView::new(&origin, &record);
            shown.push(view.clone());
            done.push((action, was.map(|w| RecordView::new(&origin, &w)), view));
        }
        // Nothing changed leaves the zone, its serial and its history as
        // they were, and nothing is pushed.
        if done.is_empty() {
            return Ok(Applied {
                zone: ZoneView::new((zone, owner_name)),
                previous_serial,
                done: Vec::new(),
                records: shown,
            });
        }
        let serial = next_serial(zone.serial, now.date());
        store::set_serial(conn, zone.id, serial)?;
        let history: Vec<NewChange> = done
            .iter()
            .map(|(action, was, now_is)| NewChange {
                zone_id: zone.id,
                record_id: Some(now_is.id),
                user_id: user.id,
                username: user.username.clone(),
                at: now,
                serial,
                action: action.as_str().into(),
                old: was.as_ref().map(RecordView::json),
                new: (*action != Action::Deleted).then(|| now_is.json()),
            })
            .collect();
        store::insert_changes(conn, &history)?;
        let zone = ZoneView::new((Zone { serial, ..zone }, owner_name));
        let done = done
            .into_iter()
            .map(|(action, old, record)| Done {
                action,
                record,
                old: (action == Action::Updated).then_some(old).flatten(),
            })
            .collect();
        Ok(Applied {
            zone,
            previous_serial,
            done,
            records: shown,
        })
    })
}

/// The zone as a master file, with its current serial.
pub fn export(
    conn: &mut DbConnection,
    user: &User,
    name: &str,
    primary: &DnsPrimary,
) -> diesel::QueryResult<Outcome<(ZoneView, String)>> {
    transaction(conn, |conn| {
        store::read_snapshot(conn)?;
        let row = visible_zone(conn, user, name)?;
        let origin = origin_of(&row.0);
        let records = store::records(conn, row.0.id)?;
        let soa = master::served_soa(primary, &records);
        let text = master::write(&origin, &soa, row.0.serial, &records);
        Ok((ZoneView::new(row), text))
    })
}

/// A zone's serial and its records as one snapshot, as a transfer sends
/// them: a secondary must never hold the records of one serial under
/// another. With the serial a secondary holds, if the zone was served at
/// it, also its records as they were then: every later change undone,
/// newest first, in the same snapshot, so that the differences lead
/// exactly to the serial sent. `None`: no such zone.
pub fn snapshot(
    conn: &mut DbConnection,
    name: &str,
    want: Want,
) -> diesel::QueryResult<Option<Snapshot>> {
    conn.transaction(|conn| {
        store::read_snapshot(conn)?;
        let Some((zone, _)) = store::zone_by_name(conn, name)? else {
            return Ok(None);
        };
        let (held, soa_only) = match want {
            Want::Soa => (None, true),
            Want::Zone(held) => (held, held.is_some_and(|held| holds(held, zone.serial))),
        };
        if soa_only {
            let records = store::apex_ns(conn, zone.id)?;
            return Ok(Some(Snapshot {
                zone,
                records,
                soa_only,
                then: None,
            }));
        }
        let records = store::records(conn, zone.id)?;
        let then = match held.map(i64::from) {
            Some(held) if store::served_serial(conn, zone.id, held)? => {
                let changes = store::changes_after(conn, zone.id, held)?;
                undo(records.clone(), &changes).map(|records| (held, records))
            }
            _ => None,
        };
        Ok(Some(Snapshot {
            zone,
            records,
            soa_only,
            then,
        }))
    })
}

/// Whether a secondary holding serial `held` has the zone at `serial`:
/// the same or a later one in serial number arithmetic (RFC 1982), where
/// serials wrap past 2^32 - 1.
pub fn holds(held: u32, serial: i64) -> bool {
    u32::try_from(serial).is_ok_and(|serial| Serial(held) >= Serial(serial))
}

/// What a transfer reads of a zone.
#[derive(Debug, Clone, Copy)]
pub enum Want {
    /// Its SOA only (an SOA query).
    Soa,
    /// The whole zone, for a secondary holding the serial given (IXFR) or
    /// none (AXFR); only its SOA when that serial is current.
    Zone(Option<u32>),
}

/// A zone read for a transfer.
pub struct Snapshot {
    pub zone: Zone,
    /// Its records; with `soa_only`, only those that shape its SOA (its
    /// own name servers).
    pub records: Vec<Record>,
    /// Only the SOA was wanted, or the secondary [`holds`] this serial.
    pub soa_only: bool,
    /// The serial a secondary holds and the records it held then, when
    /// the history reaches back to it.
    pub then: Option<(i64, Vec<Record>)>,
}

/// `records` with `changes` (oldest first) undone; `None` when the history
/// does not fit them (a record it names is missing), which a transfer
/// answers with the whole zone.
fn undo(records: Vec<Record>, changes: &[NewChange]) -> Option<Vec<Record>> {
    let mut by_id: HashMap<i64, Record> = records.into_iter().map(|r| (r.id, r)).collect();
    for change in changes.iter().rev() {
        let id = change.record_id?;
        let was = match &change.old {
            Some(json) => Some(
                serde_json::from_str::<RecordView>(json)
                    .ok()?
                    .into_record(change.zone_id),
            ),
            None => None,
        };
        // A deleted record is gone now; a created or updated one is here.
        let here = by_id.remove(&id).is_some();
        if here == (change.action == Action::Deleted.as_str()) {
            return None;
        }
        if let Some(was) = was {
            by_id.insert(id, was);
        }
    }
    let mut then: Vec<Record> = by_id.into_values().collect();
    then.sort_by_key(|r| r.id);
    Some(then)
}

/// The catalog's serial and every zone held (id and name), as one
/// snapshot, as the catalog zone is transferred.
pub fn catalog(conn: &mut DbConnection) -> diesel::QueryResult<(i64, Vec<(i64, String)>)> {
    conn.transaction(|conn| {
        store::read_snapshot(conn)?;
        store::catalog(conn)
    })
}

/// How an imported file meets the records already in the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportMode {
    /// The file's records are added, or update those already there;
    /// nothing is deleted.
    Merge,
    /// The zone then holds exactly the file's records.
    Replace,
}

/// The changes an imported file (`wanted`) makes: a record already there
/// as it is stays untouched, one that differs only in TTL or comment is
/// updated, the rest of the file is created, and with
/// [`ImportMode::Replace`] what the file does not hold is deleted.
pub fn import_changes(records: &[Record], wanted: &[RecordData], mode: ImportMode) -> Vec<Change> {
    let same = |a: &RecordData, b: &RecordData| {
        (&a.name, &a.kind, &a.content, a.priority, a.weight, a.port)
            == (&b.name, &b.kind, &b.content, b.priority, b.weight, b.port)
    };
    let mut kept: Vec<i64> = Vec::new();
    let mut changes = Vec::new();
    for data in wanted {
        let stored = records
            .iter()
            .find(|r| !kept.contains(&r.id) && same(&r.data, data));
        match stored {
            Some(r) if r.data == *data => kept.push(r.id),
            Some(r) => {
                kept.push(r.id);
                changes.push(Change::Update {
                    id: r.id,
                    record: Value::Object(as_sent(data)),
                    version: None,
                });
            }
            None => changes.push(Change::Create {
                record: Value::Object(as_sent(data)),
            }),
        }
    }
    if mode == ImportMode::Replace {
        changes.extend(
            records
                .iter()
                .filter(|r| !kept.contains(&r.id))
                .map(|r| Change::Delete {
                    id: r.id,
                    version: None,
                }),
        );
    }
    changes
}

/// What [`apply`] would do, found by applying the changes and rolling
/// them back: the same checks, the same conflicts, nothing kept, nothing
/// pushed. The zone's serial is the one it still has.
pub fn preview(
    conn: &mut DbConnection,
    user: &User,
    key: ZoneKey<'_>,
    serial: Option<i64>,
    max_records: usize,
    changes: impl FnOnce(&[Record]) -> Vec<Change>,
) -> diesel::QueryResult<Outcome<Applied>> {
    /// Carries the outcome out of the transaction that undoes it.
    enum Undone {
        Db(DieselError),
        Outcome(Box<Outcome<Applied>>),
    }
    impl From<DieselError> for Undone {
        fn from(err: DieselError) -> Self {
            Self::Db(err)
        }
    }
    let undone = conn.transaction::<std::convert::Infallible, Undone, _>(|conn| {
        let outcome = apply(conn, user, key, serial, max_records, changes)?;
        Err(Undone::Outcome(Box::new(outcome)))
    });
    match undone {
        Err(Undone::Outcome(outcome)) => Ok(outcome.map(|applied| Applied {
            zone: ZoneView {
                serial: applied.previous_serial,
                ..applied.zone
            },
            ..applied
        })),
        Err(Undone::Db(err)) => Err(err),
        Ok(never) => match never {},
    }
}

/// Entries in one page of history, by default and at most.
pub const HISTORY_PAGE: i64 = 50;
pub const MAX_HISTORY_PAGE: i64 = 500;

/// One entry of a zone's history as replies show it.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryView {
    pub id: i64,
    pub at: String,
    pub by: Who,
    pub action: String,
    pub record_id: Option<i64>,
    pub serial: i64,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// A page of a zone's history, newest first, before the entry `before`.
pub fn history(
    conn: &mut DbConnection,
    user: &User,
    name: &str,
    before: Option<i64>,
    limit: i64,
) -> diesel::QueryResult<Outcome<Vec<HistoryView>>> {
    transaction(conn, |conn| {
        let (zone, _) = visible_zone(conn, user, name)?;
        // Stored by the hub as JSON; anything else reads as absent.
        let parse = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        Ok(store::history(conn, zone.id, before, limit)?
            .into_iter()
            .map(|entry| {
                let c = entry.change;
                HistoryView {
                    id: entry.id,
                    at: wire_time(c.at),
                    by: Who {
                        id: c.user_id,
                        username: c.username,
                    },
                    action: c.action,
                    record_id: c.record_id,
                    serial: c.serial,
                    old: parse(c.old),
                    new: parse(c.new),
                }
            })
            .collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn data(name: &str, content: &str, ttl: i32) -> RecordData {
        RecordData {
            name: name.into(),
            kind: "A".into(),
            content: content.into(),
            ttl,
            priority: None,
            weight: None,
            port: None,
            comment: None,
        }
    }

    fn summary_of(change: &Change) -> String {
        match change {
            Change::Create { record } => format!("create {}", record["name"]),
            Change::Update { id, record, .. } => format!("update {id} ttl {}", record["ttl"]),
            Change::Delete { id, .. } => format!("delete {id}"),
        }
    }

    #[test]
    fn importing_keeps_what_is_already_there_and_changes_only_the_rest() {
        let stored: Vec<Record> = [
            data("same", "192.0.2.1", 300),
            data("ttl", "192.0.2.2", 300),
            data("gone", "192.0.2.3", 300),
        ]
        .into_iter()
        .zip(1..)
        .map(|(data, id)| Record {
            id,
            zone_id: 1,
            data,
            version: 1,
        })
        .collect();
        let wanted = [
            data("same", "192.0.2.1", 300),
            data("ttl", "192.0.2.2", 600),
            data("new", "192.0.2.4", 300),
        ];
        let changes = import_changes(&stored, &wanted, ImportMode::Replace);
        let summary: Vec<String> = changes.iter().map(summary_of).collect();
        assert_eq!(summary, ["update 2 ttl 600", "create \"new\"", "delete 3"]);
        let merged: Vec<String> = import_changes(&stored, &wanted, ImportMode::Merge)
            .iter()
            .map(summary_of)
            .collect();
        assert_eq!(
            merged,
            ["update 2 ttl 600", "create \"new\""],
            "a merge deletes nothing"
        );
    }

    #[test]
    fn serials_follow_the_date_and_only_ever_increase() {
        assert_eq!(next_serial(0, day(2026, 11, 29)), 2_026_112_900);
        assert_eq!(next_serial(2_026_112_900, day(2026, 11, 29)), 2_026_112_901);
        // A new day starts again at nn = 00.
        assert_eq!(next_serial(2_026_112_917, day(2026, 11, 30)), 2_026_113_000);
        // The 100th change of a day spills past nn = 99 rather than roll back.
        assert_eq!(next_serial(2_026_112_999, day(2026, 11, 29)), 2_026_113_000);
        assert_eq!(next_serial(2_026_113_000, day(2026, 11, 29)), 2_026_113_001);
        // A serial ahead of the clock (imported, or a clock set back) still grows.
        assert_eq!(next_serial(2_030_010_105, day(2026, 11, 29)), 2_030_010_106);
    }
}
