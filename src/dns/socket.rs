//! The DNS endpoint of a session: reads each request, runs its database
//! work off the event loop, answers `dns.result` (or an error frame) with
//! the request's `ref`, and hands every change to the broadcaster for the
//! panels that may see the zone.

use std::time::Instant;

use actix::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

use super::broadcaster::{Close, DnsBroadcaster, Open, Panel, Publish, Reflag};
use super::master;
use super::order::Place;
use super::validate::{Failures, Invalid, Origin};
use super::zone::{self, Action, Applied, Change, Denied, ImportMode, Outcome, Who, ZoneView};
use crate::config::{DnsLimits, Settings};
use crate::db::DbConnection;
use crate::db::dns::{Record, ZoneKey};
use crate::db::users::User;
use crate::ws::close::CloseCode;
use crate::ws::frames::{self, ErrorCode, Ref};
use crate::ws::rate::{RateLimit, Verdict};
use crate::ws::session::{Ctx, Endpoint, Request, Session};

/// Changes in one `dns.batch`, at most.
pub const MAX_BATCH: usize = 1000;

pub struct Dns {
    broadcaster: Addr<DnsBroadcaster>,
    limits: DnsLimits,
    /// This connection's changes, on top of the session's limit on all
    /// its messages: a change costs a transaction and a push to every
    /// panel of the zone, so far fewer of them pass than of reads.
    writes: RateLimit,
}

impl Dns {
    pub fn new(broadcaster: Addr<DnsBroadcaster>, limits: DnsLimits) -> Self {
        // The burst is one second's worth: a panel may save a few edits
        // at once, never more than the rate in any second.
        let writes = RateLimit::new(
            f64::from(limits.writes_per_sec),
            limits.writes_per_sec,
            Instant::now(),
        );
        Self {
            broadcaster,
            limits,
            writes,
        }
    }
}

/// A panel's request, parsed once from its frame: `type` names the
/// variant, and any type the panel does not know is `Unknown`.
#[derive(Deserialize)]
#[serde(tag = "type")]
enum DnsRequest {
    #[serde(rename = "dns.zones")]
    Zones {},
    #[serde(rename = "dns.list")]
    List { zone: String },
    #[serde(rename = "dns.export")]
    Export { zone: String },
    #[serde(rename = "dns.history")]
    History {
        zone: String,
        before: Option<i64>,
        limit: Option<i64>,
    },
    #[serde(rename = "dns.zone.create")]
    ZoneCreate { name: String, owner: Option<i32> },
    #[serde(rename = "dns.zone.delete")]
    ZoneDelete { zone: String, serial: i64 },
    #[serde(rename = "dns.create")]
    Create { zone: String, record: Value },
    #[serde(rename = "dns.update")]
    Update {
        id: i64,
        record: Value,
        version: Option<i64>,
    },
    #[serde(rename = "dns.delete")]
    Delete { id: i64, version: Option<i64> },
    #[serde(rename = "dns.batch")]
    Batch {
        zone: String,
        serial: i64,
        changes: Vec<Change>,
    },
    #[serde(rename = "dns.import")]
    Import(ImportRequest),
    #[serde(other)]
    Unknown,
}

impl DnsRequest {
    /// Whether it changes something, and so counts against
    /// `HUB_DNS_WRITES_PER_SEC`.
    fn is_write(&self) -> bool {
        match self {
            Self::Zones {} | Self::List { .. } | Self::Export { .. } | Self::History { .. } => {
                false
            }
            Self::ZoneCreate { .. }
            | Self::ZoneDelete { .. }
            | Self::Create { .. }
            | Self::Update { .. }
            | Self::Delete { .. }
            | Self::Batch { .. }
            | Self::Import(_) => true,
            Self::Unknown => false,
        }
    }
}

#[derive(Deserialize)]
struct ImportRequest {
    zone: String,
    text: String,
    serial: i64,
    /// `replace` when left out, as before modes existed.
    mode: Option<ImportMode>,
    #[serde(default)]
    dry_run: bool,
}

/// What a read of one zone answers with.
enum ZoneRead {
    List,
    Export,
    History {
        before: Option<i64>,
        limit: Option<i64>,
    },
}

/// A `dns.result` frame: `body`'s fields with the type and the `ref`.
fn result(reference: Option<&Ref>, body: Value) -> Value {
    let mut frame = json!({"type": "dns.result"});
    if let Some(reference) = reference {
        frame["ref"] = json!(reference);
    }
    if let (Value::Object(frame), Value::Object(body)) = (&mut frame, body) {
        frame.extend(body);
    }
    frame
}

/// How a refusal is told: one failure with its `field`, or for a batch
/// every failure by `index`.
#[derive(Clone, Copy)]
enum Blame {
    Single,
    ByIndex,
    /// An import: failures by the line of the file (from 1).
    ByLine,
}

fn refused(reference: Option<&Ref>, denied: Denied, blame: Blame, what: &str) -> String {
    match denied {
        Denied::NotFound => {
            frames::error(reference, ErrorCode::NotFound, &format!("no such {what}"))
        }
        Denied::Taken => frames::error(
            reference,
            ErrorCode::Conflict,
            "a zone of this name, or one holding it or inside it, already exists",
        ),
        Denied::StaleRecord(record) => frames::error_with(
            reference,
            ErrorCode::Conflict,
            "the record changed since that version; here is the current one",
            &json!({"record": record}),
        ),
        Denied::StaleSerial(serial) => frames::error_with(
            reference,
            ErrorCode::Conflict,
            "the zone changed since that serial; nothing was applied",
            &json!({"serial": serial}),
        ),
        Denied::Invalid(errors) => invalid(reference, &errors, blame),
        Denied::OverLimit(over) => invalid(reference, &Failures::one(over), Blame::Single),
    }
}

fn invalid(reference: Option<&Ref>, errors: &Failures, blame: Blame) -> String {
    let first = errors
        .listed
        .first()
        .map_or_else(|| Invalid::new("record", "invalid"), |(_, e)| e.clone());
    match blame {
        Blame::Single => frames::error_with(
            reference,
            ErrorCode::Validation,
            &first.detail,
            &json!({"field": first.field}),
        ),
        Blame::ByIndex | Blame::ByLine => {
            let (key, what) = match blame {
                Blame::ByLine => ("line", "lines"),
                _ => ("index", "changes"),
            };
            let listed: Vec<Value> = errors
                .listed
                .iter()
                .map(|(i, e)| json!({key: i, "field": e.field, "detail": e.detail}))
                .collect();
            let mut detail = format!(
                "{} of the {what} broke a rule; nothing was applied",
                errors.total
            );
            if errors.total > listed.len() {
                detail.push_str(&format!("; the first {} are listed", listed.len()));
            }
            frames::error_with(
                reference,
                ErrorCode::Validation,
                &detail,
                &json!({"field": first.field, "errors": listed, "error_count": errors.total}),
            )
        }
    }
}

/// The `dns.result` for `body`, no larger than a socket's send queue
/// (`budget`, which bounds the memory one socket may hold). Past it, a
/// change's reply leaves out its `records` (the change is applied, and
/// pushed); any other reply (a listing or export of a zone far above the
/// usual size) becomes a `too_large` error that says so.
fn within_budget(reference: Option<&Ref>, body: Value, budget: usize) -> String {
    let mut frame = result(reference, body);
    let text = frame.to_string();
    if text.len() <= budget {
        return text;
    }
    // A change's reply (or an import's preview) is the one that carries a
    // `count` beside its list.
    if let Some(fields) = frame.as_object_mut()
        && fields.contains_key("count")
        && let Some(list) = ["records", "changes"]
            .into_iter()
            .find(|list| fields.remove(*list).is_some())
    {
        fields.insert(format!("{list}_omitted"), true.into());
        let shorter = frame.to_string();
        if shorter.len() <= budget {
            return shorter;
        }
    }
    let detail = format!(
        "the reply would be {} bytes, over this socket's {budget} (HUB_SEND_QUEUE_BYTES)",
        text.len()
    );
    frames::error(reference, ErrorCode::TooLarge, &detail)
}

fn who(user: &User) -> Who {
    Who {
        id: user.id,
        username: user.username.clone(),
    }
}

/// The `dns.changed` push for what a request applied; one larger than a
/// socket's send queue (`budget`) would close every panel it went to as
/// too slow, so it is pushed as a `dns.resync` of the zone instead.
fn changed(by: &User, applied: &Applied, budget: usize) -> Publish {
    let mut frame = json!({
        "type": "dns.changed",
        "zone": applied.zone.name,
        "serial": applied.zone.serial,
        "by": who(by),
        "changes": applied.done,
    })
    .to_string();
    if frame.len() > budget {
        frame = json!({"type": "dns.resync", "zones": [applied.zone]}).to_string();
    }
    Publish {
        owner_id: applied.zone.owner_id,
        zone: applied.zone.name.clone(),
        place: Place {
            previous: Some(applied.previous_serial),
            serial: Some(applied.zone.serial),
        },
        frame,
    }
}

/// Hands what a committed request changed (`push` says what, if
/// anything) to the broadcaster from the thread that committed it, the
/// moment it is committed: it reaches the panels even when the socket that
/// made it has closed meanwhile, and changes to one zone leave in nearly
/// the order they committed (the broadcaster puts any that cross back in
/// order). A refusal pushes nothing.
fn published<T>(
    broadcaster: &Addr<DnsBroadcaster>,
    outcome: Outcome<T>,
    push: impl FnOnce(&T) -> Option<Publish>,
) -> diesel::QueryResult<Outcome<T>> {
    if let Some(change) = outcome.as_ref().ok().and_then(push) {
        broadcaster.do_send(change);
    }
    Ok(outcome)
}

/// A zone made (a history starting at its serial) or deleted (one ending).
fn zone_event(kind: &str, zone: &ZoneView, made: bool) -> Publish {
    Publish {
        owner_id: zone.owner_id,
        zone: zone.name.clone(),
        place: Place {
            previous: (!made).then_some(zone.serial),
            serial: made.then_some(zone.serial),
        },
        frame: json!({"type": kind, "zone": zone}).to_string(),
    }
}

impl Dns {
    /// Runs `work` on the blocking pool as the session's user, then answers
    /// the request: `done` makes the reply's body of what was done; a
    /// refusal becomes its error frame (`blame` says how failures are
    /// listed, `what` what was not found).
    fn run<T: Send + 'static>(
        session: &mut Session<Self>,
        ctx: &mut Ctx<Self>,
        reference: Option<Ref>,
        (blame, what): (Blame, &'static str),
        work: impl FnOnce(&mut DbConnection, &User) -> diesel::QueryResult<Outcome<T>> + Send + 'static,
        done: impl FnOnce(&mut Session<Self>, T) -> Value + 'static,
    ) {
        let Some(user) = session.user.clone() else {
            return;
        };
        let db = session.state.db.clone();
        let load = async move { db.run(move |conn| work(conn, &user)).await };
        ctx.spawn(load.into_actor(session).map(move |outcome, act, ctx| {
            let reference = reference.as_ref();
            let frame = match outcome {
                Ok(Ok(value)) => within_budget(
                    reference,
                    done(act, value),
                    act.state.settings.limits.send_queue_bytes,
                ),
                Ok(Err(denied)) => refused(reference, denied, blame, what),
                Err(err) => {
                    tracing::error!(error = %err, session = act.id.get(), "a DNS request failed");
                    frames::error(
                        reference,
                        ErrorCode::Unavailable,
                        "the zone could not be read or written now; retry",
                    )
                }
            };
            act.send(ctx, frame);
        }));
    }

    /// Runs a change; once applied, pushes `dns.changed` and answers with
    /// `body`.
    fn change(
        session: &mut Session<Self>,
        ctx: &mut Ctx<Self>,
        reference: Option<Ref>,
        blame: Blame,
        work: impl FnOnce(&mut DbConnection, &User) -> diesel::QueryResult<Outcome<Applied>>
        + Send
        + 'static,
        body: fn(&Applied) -> Value,
    ) {
        let broadcaster = session.endpoint.broadcaster.clone();
        let budget = session.state.settings.limits.send_queue_bytes;
        Self::run(
            session,
            ctx,
            reference,
            (blame, "zone or record"),
            move |conn, user| {
                // An update or import that matched the zone changed nothing.
                published(&broadcaster, work(conn, user)?, |applied| {
                    (!applied.done.is_empty()).then(|| changed(user, applied, budget))
                })
            },
            move |_, applied| body(&applied),
        );
    }

    /// Spends one change of this connection's budget and of its user's;
    /// `false` when either is spent (the client was told, or closed).
    fn write_allowed(session: &mut Session<Self>, ctx: &mut Ctx<Self>, r: Option<&Ref>) -> bool {
        let now = Instant::now();
        let whose = match session.endpoint.writes.take(now) {
            Verdict::Pass if session.slot.dns_write(now) => return true,
            Verdict::Pass => "user over all their connections",
            Verdict::Refuse => "connection",
            Verdict::Close => {
                Session::close(
                    ctx,
                    CloseCode::Policy,
                    "kept changing zones after rate_limited",
                );
                return false;
            }
        };
        let detail = format!(
            "at most {} changes per second per {whose} (HUB_DNS_WRITES_PER_SEC); nothing was applied",
            session.endpoint.limits.writes_per_sec
        );
        session.send_error(ctx, r, ErrorCode::RateLimited, &detail);
        false
    }

    /// `dns.zones`: the zones the user may see, and whether they are
    /// every customer's (for the panel to show owners).
    fn zones(session: &mut Session<Self>, ctx: &mut Ctx<Self>, reference: Option<Ref>) {
        Self::run(
            session,
            ctx,
            reference,
            (Blame::Single, "zone"),
            |conn, user| zone::zones(conn, user).map(Ok),
            |act, zones| {
                let staff = act.user.as_ref().is_some_and(|u| u.is_staff);
                json!({ "zones": zones, "staff": staff })
            },
        );
    }

    /// `dns.list`, `dns.export` and `dns.history` of one zone.
    fn read_zone(
        session: &mut Session<Self>,
        ctx: &mut Ctx<Self>,
        reference: Option<Ref>,
        zone: &str,
        read: ZoneRead,
    ) {
        let r = reference.as_ref();
        let Some(zone) = origin(session, ctx, r, ("zone", zone)) else {
            return;
        };
        let single = (Blame::Single, "zone");
        match read {
            ZoneRead::List => Self::run(
                session,
                ctx,
                reference,
                single,
                move |conn, user| zone::list(conn, user, zone.as_str()),
                |_, (zone, records)| json!({ "zone": zone, "records": records }),
            ),
            ZoneRead::Export => {
                let primary = session.state.settings.dns_primary.clone();
                Self::run(
                    session,
                    ctx,
                    reference,
                    single,
                    move |conn, user| zone::export(conn, user, zone.as_str(), &primary),
                    |_, (zone, text)| json!({ "zone": zone, "text": text }),
                )
            }
            ZoneRead::History { before, limit } => {
                let limit = limit.unwrap_or(zone::HISTORY_PAGE);
                if !(1..=zone::MAX_HISTORY_PAGE).contains(&limit) {
                    let detail = format!("limit is 1 to {}", zone::MAX_HISTORY_PAGE);
                    let bad = Invalid::new("limit", detail);
                    return session.send(ctx, invalid(r, &Failures::one(bad), Blame::Single));
                }
                let shown = zone.as_str().to_owned();
                Self::run(
                    session,
                    ctx,
                    reference,
                    single,
                    move |conn, user| zone::history(conn, user, zone.as_str(), before, limit),
                    move |_, changes| json!({ "zone": shown, "changes": changes }),
                );
            }
        }
    }

    /// `dns.zone.create`: a zone for the user, or, by staff, for another.
    fn create_zone(
        session: &mut Session<Self>,
        ctx: &mut Ctx<Self>,
        reference: Option<Ref>,
        name: &str,
        owner: Option<i32>,
    ) {
        let r = reference.as_ref();
        let Some(origin) = origin(session, ctx, r, ("name", name)) else {
            return;
        };
        let Some(user) = &session.user else { return };
        let owner = owner.unwrap_or(user.id);
        if owner != user.id && !user.is_staff {
            return session.send_error(
                ctx,
                r,
                ErrorCode::Forbidden,
                "only staff create zones for another user",
            );
        }
        let broadcaster = session.endpoint.broadcaster.clone();
        let max_zones = session.endpoint.limits.max_zones;
        Self::run(
            session,
            ctx,
            reference,
            (Blame::Single, "zone"),
            move |conn, _| {
                let outcome = zone::create_zone(conn, &origin, owner, max_zones)?;
                published(&broadcaster, outcome, |zone| {
                    Some(zone_event("dns.zone.created", zone, true))
                })
            },
            |_, zone| json!({ "zone": zone }),
        );
    }

    /// `dns.zone.delete`, at the zone's current serial.
    fn delete_zone(
        session: &mut Session<Self>,
        ctx: &mut Ctx<Self>,
        reference: Option<Ref>,
        zone: &str,
        serial: i64,
    ) {
        let Some(zone) = origin(session, ctx, reference.as_ref(), ("zone", zone)) else {
            return;
        };
        let broadcaster = session.endpoint.broadcaster.clone();
        Self::run(
            session,
            ctx,
            reference,
            (Blame::Single, "zone"),
            move |conn, user| {
                let outcome = zone::delete_zone(conn, user, zone.as_str(), serial)?;
                published(&broadcaster, outcome, |zone| {
                    Some(zone_event("dns.zone.deleted", zone, false))
                })
            },
            |_, zone| json!({ "zone": zone }),
        );
    }

    /// `dns.create` (one change, no serial) and `dns.batch` (at `serial`):
    /// changes to a zone named in the request.
    fn change_zone(
        session: &mut Session<Self>,
        ctx: &mut Ctx<Self>,
        reference: Option<Ref>,
        zone: &str,
        serial: Option<i64>,
        changes: Vec<Change>,
    ) {
        let Some(zone) = origin(session, ctx, reference.as_ref(), ("zone", zone)) else {
            return;
        };
        // A batch's failures are listed by index; a single create's are its own.
        let (blame, body): (_, fn(&Applied) -> Value) = match serial {
            Some(_) => (Blame::ByIndex, changed_records),
            None => (Blame::Single, first_record),
        };
        let max_records = session.endpoint.limits.max_records;
        Self::change(
            session,
            ctx,
            reference,
            blame,
            move |conn, user| {
                let key = ZoneKey::Name(zone.as_str());
                zone::apply(conn, user, key, serial, max_records, |_| changes)
            },
            body,
        );
    }

    /// `dns.import`: a master file read (pure, so a bad file costs no
    /// database work), then applied, or with `dry_run` previewed.
    fn import(
        session: &mut Session<Self>,
        ctx: &mut Ctx<Self>,
        reference: Option<Ref>,
        req: ImportRequest,
    ) {
        let r = reference.as_ref();
        let Some(zone) = origin(session, ctx, r, ("zone", &req.zone)) else {
            return;
        };
        let limits = session.endpoint.limits;
        if req.text.len() > limits.max_import_bytes {
            let detail = format!(
                "an import is at most {} bytes of text (HUB_DNS_MAX_IMPORT_BYTES); this one is {}; nothing was applied",
                limits.max_import_bytes,
                req.text.len()
            );
            let frame =
                frames::error_with(r, ErrorCode::TooLarge, &detail, &json!({"field": "text"}));
            return session.send(ctx, frame);
        }
        let wanted: Vec<_> = match master::read(&zone, &req.text) {
            Ok(records) => records.into_iter().map(|(_, data)| data).collect(),
            Err(errors) => return session.send(ctx, invalid(r, &errors, Blame::ByLine)),
        };
        let mode = req.mode.unwrap_or(ImportMode::Replace);
        let changes = move |stored: &[Record]| zone::import_changes(stored, &wanted, mode);
        let serial = Some(req.serial);
        if req.dry_run {
            return Self::run(
                session,
                ctx,
                reference,
                (Blame::ByIndex, "zone or record"),
                move |conn, user| {
                    let key = ZoneKey::Name(zone.as_str());
                    zone::preview(conn, user, key, serial, limits.max_records, changes)
                },
                |_, preview| previewed(&preview),
            );
        }
        Self::change(
            session,
            ctx,
            reference,
            Blame::ByIndex,
            move |conn, user| {
                let key = ZoneKey::Name(zone.as_str());
                zone::apply(conn, user, key, serial, limits.max_records, changes)
            },
            changed_records,
        );
    }

    /// One change to a record named by its id (update or delete): the
    /// record's zone is found from the id, inside the transaction.
    fn change_record(
        session: &mut Session<Self>,
        ctx: &mut Ctx<Self>,
        reference: Option<Ref>,
        id: i64,
        change: Change,
        body: fn(&Applied) -> Value,
    ) {
        let max_records = session.endpoint.limits.max_records;
        Self::change(
            session,
            ctx,
            reference,
            Blame::Single,
            move |conn, user| {
                zone::apply(conn, user, ZoneKey::RecordOf(id), None, max_records, |_| {
                    vec![change]
                })
            },
            body,
        );
    }
}

/// The deleted record's id, for the reply to `dns.delete`.
fn deleted_id(applied: &Applied) -> Value {
    json!({
        "id": applied.records.first().map(|r| r.id),
        "serial": applied.zone.serial,
    })
}

/// The one change's record, for the replies to single changes.
fn first_record(applied: &Applied) -> Value {
    json!({
        "record": applied.records.first(),
        "serial": applied.zone.serial,
    })
}

/// What a batch or an import did, record by record, for its reply, and
/// how many records it touched (the count stays when the records are left
/// out of a reply too large to send).
fn changed_records(applied: &Applied) -> Value {
    json!({
        "records": applied.records,
        "count": applied.records.len(),
        "serial": applied.zone.serial,
    })
}

/// What an import would do (`dry_run`), change by change, with counts by
/// action; a record it would create has no id or version yet, and an
/// update shows the record it would replace as `old`.
fn previewed(preview: &Applied) -> Value {
    let count = |action| preview.done.iter().filter(|d| d.action == action).count();
    let changes: Vec<Value> = preview
        .done
        .iter()
        .map(|done| {
            let mut record = json!(done.record);
            if done.action == Action::Created
                && let Some(fields) = record.as_object_mut()
            {
                fields.remove("id");
                fields.remove("version");
            }
            let mut change = json!({"action": done.action, "record": record});
            if let Some(old) = &done.old {
                change["old"] = json!(old);
            }
            change
        })
        .collect();
    json!({
        "dry_run": true,
        "zone": preview.zone,
        "serial": preview.zone.serial,
        "created": count(Action::Created),
        "updated": count(Action::Updated),
        "deleted": count(Action::Deleted),
        "count": changes.len(),
        "changes": changes,
    })
}

/// Reads a request's body, or answers the client why it cannot.
fn body<'a, T: Deserialize<'a>>(
    session: &Session<Dns>,
    ctx: &mut Ctx<Dns>,
    request: &Request<'a>,
) -> Option<T> {
    frames::parse_body(request.text)
        .map_err(|bad| {
            // serde names a field only when it is missing; a field of the
            // wrong type is blamed on the request as a whole.
            let field = bad
                .detail
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
                .unwrap_or("request");
            let frame = frames::error_with(
                request.reference.as_ref(),
                bad.code,
                &bad.detail,
                &json!({ "field": field }),
            );
            session.send(ctx, frame);
        })
        .ok()
}

/// A zone name as sent in `field`; a malformed one is answered as a
/// validation error.
fn origin(
    session: &Session<Dns>,
    ctx: &mut Ctx<Dns>,
    reference: Option<&Ref>,
    (field, raw): (&'static str, &str),
) -> Option<Origin> {
    Origin::parse(field, raw)
        .map_err(|bad| session.send(ctx, invalid(reference, &Failures::one(bad), Blame::Single)))
        .ok()
}

impl Endpoint for Dns {
    const NAME: &'static str = "dns";

    fn opened(session: &mut Session<Self>, _: &mut Ctx<Self>) {
        let Some(user) = &session.user else { return };
        session.endpoint.broadcaster.do_send(Open {
            session: session.id,
            outlet: session.outlet(),
            panel: Panel {
                user_id: user.id,
                is_staff: user.is_staff,
            },
        });
    }

    /// Room for an import of `HUB_DNS_MAX_IMPORT_BYTES`, JSON-escaped.
    fn max_frame_bytes(settings: &Settings) -> usize {
        settings
            .dns
            .max_frame_bytes(settings.limits.max_frame_bytes)
    }

    fn request(session: &mut Session<Self>, request: Request<'_>, ctx: &mut Ctx<Self>) {
        let reference = request.reference.clone();
        let r = reference.as_ref();
        let Some(kind) = request.kind else {
            return session.send_error(ctx, r, ErrorCode::UnknownType, "unknown type '(none)'");
        };
        let Some(parsed) = body::<DnsRequest>(session, ctx, &request) else {
            return;
        };
        if parsed.is_write() && !Self::write_allowed(session, ctx, r) {
            return;
        }
        match parsed {
            DnsRequest::Unknown => {
                let detail = format!("unknown type '{kind}'");
                session.send_error(ctx, r, ErrorCode::UnknownType, &detail);
            }
            DnsRequest::Zones {} => Self::zones(session, ctx, reference),
            DnsRequest::List { zone } => {
                Self::read_zone(session, ctx, reference, &zone, ZoneRead::List);
            }
            DnsRequest::Export { zone } => {
                Self::read_zone(session, ctx, reference, &zone, ZoneRead::Export);
            }
            DnsRequest::History {
                zone,
                before,
                limit,
            } => {
                let read = ZoneRead::History { before, limit };
                Self::read_zone(session, ctx, reference, &zone, read);
            }
            DnsRequest::ZoneCreate { name, owner } => {
                Self::create_zone(session, ctx, reference, &name, owner);
            }
            DnsRequest::ZoneDelete { zone, serial } => {
                Self::delete_zone(session, ctx, reference, &zone, serial);
            }
            DnsRequest::Create { zone, record } => {
                let change = Change::Create { record };
                Self::change_zone(session, ctx, reference, &zone, None, vec![change]);
            }
            DnsRequest::Batch {
                zone,
                serial,
                changes,
            } => {
                if changes.is_empty() || changes.len() > MAX_BATCH {
                    let detail = format!("a batch holds 1 to {MAX_BATCH} changes");
                    let bad = Invalid::new("changes", detail);
                    return session.send(ctx, invalid(r, &Failures::one(bad), Blame::Single));
                }
                Self::change_zone(session, ctx, reference, &zone, Some(serial), changes);
            }
            DnsRequest::Update {
                id,
                record,
                version,
            } => {
                let change = Change::Update {
                    id,
                    record,
                    version,
                };
                Self::change_record(session, ctx, reference, id, change, first_record);
            }
            DnsRequest::Delete { id, version } => {
                let change = Change::Delete { id, version };
                Self::change_record(session, ctx, reference, id, change, deleted_id);
            }
            DnsRequest::Import(import) => Self::import(session, ctx, reference, import),
        }
    }

    /// Any active user has a panel; what it may see follows the user.
    fn admits(&self, _: &User) -> bool {
        true
    }

    /// Staff granted or taken away: the broadcaster learns the new flags,
    /// and the panel is told to list again the zones it now sees.
    fn user_changed(session: &mut Session<Self>, before: &User, ctx: &mut Ctx<Self>) {
        let Some(user) = &session.user else { return };
        if user.is_staff == before.is_staff {
            return;
        }
        session.endpoint.broadcaster.do_send(Reflag {
            session: session.id,
            is_staff: user.is_staff,
        });
        let user = user.clone();
        let db = session.state.db.clone();
        let load = async move { db.run(move |conn| zone::zones(conn, &user)).await };
        ctx.spawn(load.into_actor(session).map(|loaded, act, ctx| match loaded {
            Ok(zones) => act.send(ctx, json!({"type": "dns.resync", "zones": zones}).to_string()),
            // An empty resync still tells the panel its view is stale.
            Err(err) => {
                tracing::error!(error = %err, session = act.id.get(), "loading zones for a resync failed");
                act.send(ctx, json!({"type": "dns.resync", "zones": []}).to_string());
            }
        }));
    }

    fn closed(session: &mut Session<Self>) {
        session.endpoint.broadcaster.do_send(Close {
            session: session.id,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(frame: Value) -> DnsRequest {
        serde_json::from_value(frame).expect("a request")
    }

    #[test]
    fn each_type_is_parsed_once_and_only_changes_count_as_writes() {
        let zone = "example.com";
        for (frame, write) in [
            (json!({"type": "dns.zones", "ref": 1}), false),
            (json!({"type": "dns.list", "zone": zone}), false),
            (json!({"type": "dns.export", "zone": zone}), false),
            (
                json!({"type": "dns.history", "zone": zone, "limit": 5}),
                false,
            ),
            (json!({"type": "dns.zone.create", "name": zone}), true),
            (
                json!({"type": "dns.zone.delete", "zone": zone, "serial": 1}),
                true,
            ),
            (
                json!({"type": "dns.create", "zone": zone, "record": {}}),
                true,
            ),
            (json!({"type": "dns.update", "id": 1, "record": {}}), true),
            (json!({"type": "dns.delete", "id": 1, "version": 2}), true),
            (
                json!({"type": "dns.batch", "zone": zone, "serial": 1, "changes": []}),
                true,
            ),
            (
                json!({"type": "dns.import", "zone": zone, "serial": 1, "text": ""}),
                true,
            ),
            (json!({"type": "dns.nonsense", "zone": 5}), false),
        ] {
            let request = parsed(frame.clone());
            assert_eq!(request.is_write(), write, "{frame}");
            assert_eq!(
                matches!(request, DnsRequest::Unknown),
                frame["type"] == "dns.nonsense",
                "{frame}"
            );
        }
    }

    #[test]
    fn a_batch_reads_its_changes_by_op_and_names_what_is_missing() {
        let DnsRequest::Batch { changes, .. } = parsed(json!({
            "type": "dns.batch", "zone": "example.com", "serial": 3,
            "changes": [
                {"op": "create", "record": {"name": "www"}},
                {"op": "update", "id": 7, "record": {"ttl": 60}, "version": 2},
                {"op": "delete", "id": 8},
            ],
        })) else {
            panic!("not a batch");
        };
        assert!(matches!(
            changes.as_slice(),
            [
                Change::Create { .. },
                Change::Update {
                    id: 7,
                    version: Some(2),
                    ..
                },
                Change::Delete {
                    id: 8,
                    version: None
                },
            ]
        ));
        let missing = frames::parse_body::<DnsRequest>(
            r#"{"type": "dns.batch", "zone": "example.com", "changes": []}"#,
        )
        .err()
        .expect("refused");
        assert_eq!(missing.code, ErrorCode::Validation);
        assert!(
            missing.detail.starts_with("missing field `serial`"),
            "{}",
            missing.detail
        );
        let bad_op = frames::parse_body::<DnsRequest>(
            r#"{"type": "dns.batch", "zone": "z", "serial": 1, "changes": [{"op": "rename"}]}"#,
        );
        assert!(bad_op.is_err());
    }
}
