//! Chat history (`hub_chat_message`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::hub_chat_message;

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

/// A message as stored: its id and what was sent.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = hub_chat_message)]
pub struct StoredMessage {
    pub id: i64,
    #[diesel(embed)]
    pub message: NewMessage,
}

fn insert_one(conn: &mut DbConnection, message: &NewMessage) -> QueryResult<i64> {
    diesel::insert_into(hub_chat_message::table)
        .values(message)
        .returning((hub_chat_message::id,))
        .get_result::<(i64,)>(conn)
        .map(|(id,)| id)
}

/// Stores messages in one transaction and returns their ids in order; a room
/// writes a whole burst at once instead of one commit per message.
pub fn insert_all(conn: &mut DbConnection, messages: &[NewMessage]) -> QueryResult<Vec<i64>> {
    conn.transaction(|conn| messages.iter().map(|m| insert_one(conn, m)).collect())
}

/// Stores messages in one transaction when it can; when that fails, each
/// on its own, so one message the database refuses never takes the others
/// with it. One result per message, in order.
pub fn insert_each(conn: &mut DbConnection, messages: &[NewMessage]) -> Vec<QueryResult<i64>> {
    match insert_all(conn, messages) {
        Ok(ids) => ids.into_iter().map(Ok).collect(),
        Err(_) if messages.len() > 1 => messages.iter().map(|m| insert_one(conn, m)).collect(),
        Err(err) => vec![Err(err)],
    }
}

/// The newest `limit` messages of a room, oldest first.
pub fn recent(
    conn: &mut DbConnection,
    room: &str,
    limit: usize,
) -> QueryResult<Vec<StoredMessage>> {
    let mut rows: Vec<StoredMessage> = hub_chat_message::table
        .filter(hub_chat_message::room.eq(room))
        .order(hub_chat_message::id.desc())
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .select(StoredMessage::as_select())
        .load(conn)?;
    rows.reverse();
    Ok(rows)
}

/// Up to `limit` messages of a room with ids above `after`, oldest first: a
/// room catching up on what the bus could not bring.
pub fn after(
    conn: &mut DbConnection,
    room: &str,
    after: i64,
    limit: usize,
) -> QueryResult<Vec<StoredMessage>> {
    hub_chat_message::table
        .filter(hub_chat_message::room.eq(room))
        .filter(hub_chat_message::id.gt(after))
        .order(hub_chat_message::id.asc())
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .select(StoredMessage::as_select())
        .load(conn)
}
