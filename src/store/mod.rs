//! Persistence on two backends behind one non-generic handle, chosen from the URL scheme.
//!
//! Most statements are written once in the SQL both engines accept (`$n` placeholders,
//! `RETURNING`, `ON CONFLICT`) and run through [`on_pool!`], which expands the same body for
//! each pool type. Where the engines differ (types, `FOR UPDATE SKIP LOCKED`), a module matches
//! on the backend explicitly. Every function that touches tenant data takes the `OrgId`.
//!
//! This layer imports only `domain`. Skills keep the queries of their own tables beside their
//! code (`skills::*::store`), written against the same [`Store`] handle and [`on_pool!`].

pub mod agents;
pub mod conversations;
pub mod keys;
pub mod orgs;
pub mod tool_effects;
pub mod turns;
pub mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

/// Failures of the store, mapped to problems at the HTTP boundary (`http::error`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database unreachable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("invalid DATABASE_URL: {0}")]
    Config(String),
    /// A list's `after` cursor names no item of that list.
    #[error("no item {0} to page after")]
    UnknownCursor(uuid::Uuid),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable(err)
            }
            other => Self::Database(other),
        }
    }
}

/// True when `err` is a unique-constraint violation, on either backend.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which engine a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database handle the whole server shares; cheap to clone.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqlitePools),
    Postgres(PgPool),
}

/// SQLite takes one writer at a time: writes go through a pool of one connection, where they
/// queue in order (instead of contending for the file lock and backing off), and reads through
/// a pool of their own, which WAL mode lets run beside the writer.
#[derive(Debug, Clone)]
pub struct SqlitePools {
    pub write: SqlitePool,
    pub read: SqlitePool,
}

/// Runs `$body` with `$pool` bound to the concrete pool of whichever backend `$store` is: on
/// SQLite, the writer. Statements that write, and transactions, go through this.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite(pools) => {
                let $pool = &pools.write;
                $body
            }
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Like [`on_pool!`] for statements that only read: on SQLite, a reader connection.
macro_rules! on_read {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite(pools) => {
                let $pool = &pools.read;
                $body
            }
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_read;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Connects to `url` (`sqlite:` or `postgres:`), creating the SQLite file and its folder
    /// when missing. Does not migrate. PostgreSQL waits at most 3 s for a pooled connection.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        Self::connect_with(url, max_connections, Duration::from_secs(3)).await
    }

    /// [`Self::connect`] with the longest wait for a PostgreSQL connection
    /// (`DATABASE_ACQUIRE_TIMEOUT_SECONDS`): past it a request answers 503.
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        pg_acquire_timeout: Duration,
    ) -> StoreResult<Self> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            if let Some(dir) = Path::new(opts.get_filename()).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Config(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
            }
            // Writers queue for the one connection rather than fail: every write waits its
            // turn on SQLite anyway, and a queue of short statements drains fast.
            // No ping before handing out a connection (sqlx's default): an in-process database
            // does not go stale, and the ping is a hop to the connection's worker thread.
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts.clone())
                .await?;
            let read = SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts.read_only(true))
                .await?;
            Ok(Self::Sqlite(SqlitePools { write, read }))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts =
                PgConnectOptions::from_str(url).map_err(|e| StoreError::Config(e.to_string()))?;
            // Lazy: connections are made on use, so a database that goes away later makes
            // /health/ready answer 503 instead of taking the process down.
            //
            // No ping before each use (sqlx's default test_before_acquire): it was one extra
            // round trip per statement on the turn path (issue 9.2). A connection that died
            // with the server fails its next statement instead; sqlx then drops it, the
            // request answers 503, and the next one gets a fresh connection (the fault suite
            // checks recovery after an outage).
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .test_before_acquire(false)
                .acquire_timeout(pg_acquire_timeout)
                .connect_lazy_with(opts);
            Ok(Self::Postgres(pool))
        } else {
            Err(StoreError::Config(
                "must start with sqlite: or postgres:".to_owned(),
            ))
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the pending migrations of this backend.
    pub async fn migrate(&self) -> StoreResult<()> {
        match self {
            Self::Sqlite(pools) => SQLITE_MIGRATIONS.run(&pools.write).await?,
            Self::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// One round trip, for readiness checks.
    pub async fn ping(&self) -> StoreResult<()> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(pools) => {
                pools.write.close().await;
                pools.read.close().await;
            }
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    fn names(dir: &str) -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn both_backends_have_the_same_migration_files() {
        let sqlite = names(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"));
        let postgres = names(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"));
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, postgres);
    }
}
