//! Chat history (`hub_chat_message`) and each room's message counter
//! (`hub_chat_room`).
//!
//! A message's `seq` is what the protocol calls its `id`: its number in its
//! room. A batch takes its numbers from the room's counter row inside its
//! own transaction, so the row stays locked until the batch commits: numbers
//! commit in order, one after another, on every node. Whoever sees number n
//! committed knows every number below it is committed too, which is what
//! lets a node deliver a room's messages in one order and fill a gap from
//! the database (see `chat::order`).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;

use super::schema::{hub_chat_message, hub_chat_room};
use super::{DbConnection, first_row};

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = hub_chat_message)]
pub struct NewMessage {
    pub room: String,
    pub user_id: Option<i32>,
    pub username: String,
    pub is_staff: bool,
    pub body: String,
    pub sent_at: NaiveDateTime,
}

/// A message as stored: its number in its room and what was sent.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = hub_chat_message)]
pub struct StoredMessage {
    pub seq: i64,
    #[diesel(embed)]
    pub message: NewMessage,
}

/// Moves `room`'s counter on by `count` and returns the first of the
/// numbers taken. The counter's row stays locked until the caller's
/// transaction ends.
fn take_numbers(conn: &mut DbConnection, room: &str, count: usize) -> QueryResult<i64> {
    let count = i64::try_from(count).expect("a batch is small");
    let last = diesel::insert_into(hub_chat_room::table)
        .values((
            hub_chat_room::room.eq(room),
            hub_chat_room::last_seq.eq(count),
        ))
        .on_conflict(hub_chat_room::room)
        .do_update()
        .set(
            hub_chat_room::last_seq.eq(hub_chat_room::last_seq + excluded(hub_chat_room::last_seq)),
        )
        .returning(hub_chat_room::last_seq);
    let last: i64 = first_row(conn, last)?.ok_or(diesel::result::Error::NotFound)?;
    Ok(last - count + 1)
}

/// Stores messages of one room in one transaction and returns their numbers
/// in order; a room writes a whole burst at once instead of one commit per
/// message.
pub fn insert_all(conn: &mut DbConnection, messages: &[NewMessage]) -> QueryResult<Vec<i64>> {
    let Some(first) = messages.first() else {
        return Ok(Vec::new());
    };
    debug_assert!(messages.iter().all(|m| m.room == first.room));
    conn.transaction(|conn| {
        let start = take_numbers(conn, &first.room, messages.len())?;
        for (message, seq) in messages.iter().zip(start..) {
            diesel::insert_into(hub_chat_message::table)
                .values((message, hub_chat_message::seq.eq(seq)))
                .execute(conn)?;
        }
        Ok((start..).take(messages.len()).collect())
    })
}

/// Stores messages in one transaction when it can; when that fails, each
/// on its own, so one message the database refuses never takes the others
/// with it. One result per message, in order.
pub fn insert_each(conn: &mut DbConnection, messages: &[NewMessage]) -> Vec<QueryResult<i64>> {
    match insert_all(conn, messages) {
        Ok(seqs) => seqs.into_iter().map(Ok).collect(),
        Err(_) if messages.len() > 1 => messages
            .iter()
            .map(|m| insert_all(conn, std::slice::from_ref(m)).map(|seqs| seqs[0]))
            .collect(),
        Err(err) => vec![Err(err)],
    }
}

/// The number of the newest message ever stored in `room` (0 for none).
pub fn last_seq(conn: &mut DbConnection, room: &str) -> QueryResult<i64> {
    Ok(hub_chat_room::table
        .find(room)
        .select(hub_chat_room::last_seq)
        .first::<i64>(conn)
        .optional()?
        .unwrap_or(0))
}

/// The newest `limit` messages of a room, oldest first.
pub fn recent(
    conn: &mut DbConnection,
    room: &str,
    limit: usize,
) -> QueryResult<Vec<StoredMessage>> {
    let mut rows: Vec<StoredMessage> = hub_chat_message::table
        .filter(hub_chat_message::room.eq(room))
        .order(hub_chat_message::seq.desc())
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .select(StoredMessage::as_select())
        .load(conn)?;
    rows.reverse();
    Ok(rows)
}

/// Up to `limit` messages of a room numbered above `after`, oldest first: a
/// room filling a gap or catching up on what the bus could not bring.
pub fn after(
    conn: &mut DbConnection,
    room: &str,
    after: i64,
    limit: usize,
) -> QueryResult<Vec<StoredMessage>> {
    hub_chat_message::table
        .filter(hub_chat_message::room.eq(room))
        .filter(hub_chat_message::seq.gt(after))
        .order(hub_chat_message::seq.asc())
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .select(StoredMessage::as_select())
        .load(conn)
}
