//! The data layer: one binary for SQLite and PostgreSQL, chosen by
//! `DATABASE_URL`. Models return `QueryResult`; [`DbError`] adds the pool and
//! the hop off the event loop.

pub mod chat;
pub mod dns;
pub mod metrics;
pub mod schema;
pub mod users;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::query_dsl::methods::LoadQuery;
use diesel::r2d2::{self, ManageConnection};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ConnectionError, OptionalExtension, QueryResult, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::DatabaseUrl;

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

pub type Pool = r2d2::Pool<ConnectionManager>;

/// Errors of the data layer as the rest of the hub sees them.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no database connection could be had: {0}")]
    Pool(#[from] r2d2::PoolError),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("the blocking task was cancelled")]
    Cancelled,
}

/// Picks the backend by the URL's scheme, so a PostgreSQL that is down reports
/// its own error instead of the derive's "invalid connection url".
#[derive(Debug)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        let setup = |e| r2d2::Error::ConnectionError(ConnectionError::CouldntSetupConfiguration(e));
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(r2d2::Error::ConnectionError)?;
                // busy_timeout first: switching to WAL itself may meet a lock.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )
                .map_err(setup)?;
                Ok(DbConnection::Sqlite(conn))
            }
            DatabaseUrl::Postgres(url) => {
                let mut conn =
                    PgConnection::establish(url).map_err(r2d2::Error::ConnectionError)?;
                // Timestamps are bound as UTC wall-clock times; a session in
                // another zone would shift them when read back.
                conn.batch_execute("SET TIME ZONE 'UTC'").map_err(setup)?;
                Ok(DbConnection::Pg(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        false
    }
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// How long a caller waits for a connection by default.
pub const DEFAULT_POOL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Builds the pool. Fails at once when the database cannot be reached; later,
/// a caller waits at most `timeout` for a connection before `DbError::Pool`.
pub fn pool(url: &DatabaseUrl, size: u32, timeout: std::time::Duration) -> Result<Pool, DbError> {
    Ok(r2d2::Pool::builder()
        .max_size(size)
        .connection_timeout(timeout)
        .build(ConnectionManager { url: url.clone() })?)
}

/// Applies the embedded migrations of the connection's backend; returns the
/// versions it applied.
pub fn migrate(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    fn names(versions: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
        versions.iter().map(ToString::to_string).collect()
    }
    // Two hubs (or `hub migrate`s) starting together must not both create
    // the tables: each backend's lock makes the second wait, then find the
    // versions applied.
    let applied = match conn {
        // The exclusive write lock is taken before the harness reads which
        // versions are applied; waiting for it is bounded by busy_timeout.
        // Each migration's own transaction nests inside as a savepoint.
        DbConnection::Sqlite(c) => {
            c.exclusive_transaction(|c| c.run_pending_migrations(SQLITE_MIGRATIONS).map(names))
        }
        DbConnection::Pg(c) => {
            c.batch_execute("SELECT pg_advisory_lock(7261626)")?;
            let applied = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(names);
            c.batch_execute("SELECT pg_advisory_unlock(7261626)")?;
            applied
        }
    };
    applied.map_err(|e| anyhow::anyhow!("migrations failed: {e}"))
}

/// The database pool as `/metrics` shows it, read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolGauges {
    /// Connections the pool holds open, in use or idle.
    pub open: u32,
    pub idle: u32,
}

/// The pool, shared by the HTTP handlers and actors.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
}

impl Db {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Runs diesel work on the blocking pool: a query must never stall an
    /// actor or the event loop that serves thousands of sockets.
    pub async fn run<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        actix_web::web::block(move || {
            let mut conn = pool.get()?;
            Ok(work(&mut conn)?)
        })
        .await
        .map_err(|_| DbError::Cancelled)?
    }

    /// The same work, on the calling thread: for the command line only.
    pub fn run_here<T>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> diesel::QueryResult<T>,
    ) -> Result<T, DbError> {
        let mut conn = self.pool.get()?;
        Ok(work(&mut conn)?)
    }

    pub fn migrate(&self) -> anyhow::Result<Vec<String>> {
        migrate(&mut *self.pool.get()?)
    }

    /// Connections open and idle, for `/metrics`.
    pub fn gauges(&self) -> PoolGauges {
        let state = self.pool.state();
        PoolGauges {
            open: state.connections,
            idle: state.idle_connections,
        }
    }
}

/// Runs a statement on the connection's own backend: diesel's
/// `MultiConnection` backend has no `ON CONFLICT`, while each real backend
/// does. One statement value, built once, serves both.
pub(super) fn first_row<'q, Q, U>(conn: &mut DbConnection, query: Q) -> QueryResult<Option<U>>
where
    Q: LoadQuery<'q, SqliteConnection, U> + LoadQuery<'q, PgConnection, U>,
{
    match conn {
        DbConnection::Sqlite(c) => RunQueryDsl::get_result(query, c).optional(),
        DbConnection::Pg(c) => RunQueryDsl::get_result(query, c).optional(),
    }
}
