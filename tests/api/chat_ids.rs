//! Chat ids as numbers per room, on a database that held messages from
//! before they were: the old ids stay what clients hold, and each room
//! numbers its new messages on from its own newest.

use diesel::connection::SimpleConnection;
use diesel::migration::{MigrationConnection, MigrationSource};
use diesel::pg::{Pg, PgConnection};
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{FileBasedMigrations, MigrationHarness};
use serde_json::Value;

use crate::helpers::{Backend, TestApp, join};
use crate::on_both_backends;

on_both_backends!(
    messages_from_before_per_room_numbers_keep_their_ids_and_new_ones_follow_each_rooms_newest,
);

/// The first migration of the per-room numbers: the database is prepared
/// as the release before it left it.
const NUMBERED_FROM: &str = "2026-12-03-000008";

/// Global ids, two rooms taking turns: `lobby` holds 1, 3 and 5, `help`
/// 2 and 4.
const OLD_MESSAGES: &str = "
    INSERT INTO hub_chat_message (id, room, user_id, username, is_staff, body, sent_at) VALUES
        (1, 'lobby', NULL, 'guest-000001', false, 'one', '2026-12-01 10:00:00'),
        (2, 'help', NULL, 'guest-000001', false, 'two', '2026-12-01 10:00:01'),
        (3, 'lobby', NULL, 'guest-000001', false, 'three', '2026-12-01 10:00:02'),
        (4, 'help', NULL, 'guest-000001', false, 'four', '2026-12-01 10:00:03'),
        (5, 'lobby', NULL, 'guest-000001', false, 'five', '2026-12-01 10:00:04');
";

fn migrate_to_the_release_before<C, DB>(conn: &mut C, backend: &str)
where
    DB: diesel::backend::Backend,
    C: MigrationHarness<DB> + MigrationConnection + SimpleConnection,
    FileBasedMigrations: MigrationSource<DB>,
{
    conn.setup().unwrap();
    let dir = format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
    let source = FileBasedMigrations::from_path(dir).unwrap();
    let mut migrations = MigrationSource::<DB>::migrations(&source).unwrap();
    migrations.sort_by_key(|m| m.name().to_string());
    for migration in migrations
        .iter()
        .filter(|m| m.name().to_string().as_str() < NUMBERED_FROM)
    {
        conn.run_migration(migration.as_ref()).unwrap();
    }
    conn.batch_execute(OLD_MESSAGES).unwrap();
}

fn ids(history: &Value) -> Vec<i64> {
    history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

async fn messages_from_before_per_room_numbers_keep_their_ids_and_new_ones_follow_each_rooms_newest(
    backend: Backend,
) {
    let app = TestApp::spawn_prepared(backend, &[], |url| match backend {
        Backend::Sqlite => {
            let path = url.strip_prefix("sqlite://").unwrap();
            let mut conn = SqliteConnection::establish(path).unwrap();
            migrate_to_the_release_before::<_, Sqlite>(&mut conn, "sqlite");
        }
        Backend::Postgres => {
            let mut conn = PgConnection::establish(url).unwrap();
            migrate_to_the_release_before::<_, Pg>(&mut conn, "postgres");
            // The ids were given by hand: the identity moves past them, as
            // it would have after real inserts.
            diesel::sql_query("SELECT setval(pg_get_serial_sequence('hub_chat_message', 'id'), 5)")
                .execute(&mut conn)
                .unwrap();
        }
    })
    .await;

    let (_, history, _) = join(&app, "/ws/chat/lobby/").await;
    assert_eq!(ids(&history), vec![1, 3, 5]);
    let (_, history, _) = join(&app, "/ws/chat/lobby/?since=1").await;
    assert_eq!(
        ids(&history),
        vec![3, 5],
        "a since held from before is exact"
    );
    assert_eq!(history["truncated"], false);

    let (mut lobby, _, _) = join(&app, "/ws/chat/lobby/?since=5").await;
    let (mut help, history, _) = join(&app, "/ws/chat/help/").await;
    assert_eq!(ids(&history), vec![2, 4]);
    let (mut new_room, history, _) = join(&app, "/ws/chat/fresh/").await;
    assert_eq!(ids(&history), Vec::<i64>::new());
    for (client, expected) in [
        (&mut lobby, [6, 7]),
        (&mut help, [5, 6]),
        (&mut new_room, [1, 2]),
    ] {
        for id in expected {
            client.say(&format!("number {id}")).await;
            let message = client.recv_type("chat.message").await;
            assert_eq!(
                (message["id"].as_i64(), message["message"].as_str()),
                (Some(id), Some(format!("number {id}").as_str()))
            );
        }
    }
    let (_, history, _) = join(&app, "/ws/chat/lobby/?since=5").await;
    assert_eq!(ids(&history), vec![6, 7]);
}
