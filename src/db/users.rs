//! Django's users, as the hub needs them.

use chrono::Utc;
use diesel::prelude::*;
use serde::Serialize;

use super::DbConnection;
use super::schema::auth_user;

/// What the hub knows of a user: enough to authorise and to show a name.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = auth_user)]
pub struct User {
    pub id: i32,
    pub username: String,
    #[serde(skip)]
    pub is_active: bool,
    pub is_staff: bool,
}

/// Whether any user exists at all: a first run has none.
pub fn any(conn: &mut DbConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(auth_user::table.select(auth_user::id))).get_result(conn)
}

pub fn find(conn: &mut DbConnection, id: i32) -> QueryResult<Option<User>> {
    auth_user::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// The user and its stored password hash, for a login.
pub fn find_with_password(
    conn: &mut DbConnection,
    username: &str,
) -> QueryResult<Option<(User, String)>> {
    auth_user::table
        .filter(auth_user::username.eq(username))
        .select((User::as_select(), auth_user::password))
        .first(conn)
        .optional()
}

pub fn find_by_username(conn: &mut DbConnection, username: &str) -> QueryResult<Option<User>> {
    auth_user::table
        .filter(auth_user::username.eq(username))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Creates an active user with Django's defaults for the fields the hub does
/// not use; returns its id.
pub fn create(
    conn: &mut DbConnection,
    username: &str,
    password_hash: &str,
    is_staff: bool,
) -> QueryResult<i32> {
    diesel::insert_into(auth_user::table)
        .values((
            auth_user::username.eq(username),
            auth_user::password.eq(password_hash),
            auth_user::is_superuser.eq(false),
            auth_user::first_name.eq(""),
            auth_user::last_name.eq(""),
            auth_user::email.eq(""),
            auth_user::is_staff.eq(is_staff),
            auth_user::is_active.eq(true),
            auth_user::date_joined.eq(Utc::now().naive_utc()),
        ))
        .returning((auth_user::id,))
        .get_result::<(i32,)>(conn)
        .map(|(id,)| id)
}

/// Which flag [`set_flag`] changes.
#[derive(Debug, Clone, Copy)]
pub enum Flag {
    Active,
    Staff,
}

/// Sets a flag; returns false when no such user exists.
pub fn set_flag(
    conn: &mut DbConnection,
    username: &str,
    flag: Flag,
    on: bool,
) -> QueryResult<bool> {
    let target = auth_user::table.filter(auth_user::username.eq(username));
    let changed = match flag {
        Flag::Active => diesel::update(target)
            .set(auth_user::is_active.eq(on))
            .execute(conn)?,
        Flag::Staff => diesel::update(target)
            .set(auth_user::is_staff.eq(on))
            .execute(conn)?,
    };
    Ok(changed > 0)
}
