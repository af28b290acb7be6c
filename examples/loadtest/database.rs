//! The database under test: a fresh SQLite file in a temporary directory (the default), a
//! fresh PostgreSQL database created on the server a `postgres://` URL names (dropped
//! afterwards unless `--keep`), or, with `--existing`, the database at the URL as it is.

use anyhow::Context;
use reqwest::Url;
use sqlx::Connection;

/// Which engine; decides the seeding SQL and whether PostgreSQL's CPU is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Database {
    pub backend: Backend,
    /// The `DATABASE_URL` the server gets.
    pub url: String,
    /// Where it lives, for the report (a path, or a database name and host).
    pub label: String,
    /// The PostgreSQL database's name when the server is on this machine, so its processes'
    /// CPU time can be read from /proc.
    pub local_postgres: Option<String>,
    /// The engine's version, for the report.
    pub version: String,
    /// Removed at the end unless `--keep`.
    cleanup: Cleanup,
}

enum Cleanup {
    Nothing,
    /// The temporary directory of the SQLite file (and the server's log).
    Directory,
    /// `DROP DATABASE name` through the maintenance connection's URL.
    DropDatabase {
        admin_url: String,
        name: String,
    },
}

impl Database {
    /// Sets up the database; `dir` is the run's temporary directory (for the SQLite file).
    pub async fn prepare(
        url: Option<&str>,
        existing: bool,
        dir: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let Some(url) = url else {
            let path = dir.join("loadtest.db");
            let url = format!("sqlite://{}?mode=rwc", path.display());
            return Ok(Self {
                backend: Backend::Sqlite,
                version: sqlite_version(&url).await?,
                url,
                label: path.display().to_string(),
                local_postgres: None,
                cleanup: Cleanup::Directory,
            });
        };
        if url.starts_with("sqlite:") {
            return Ok(Self {
                backend: Backend::Sqlite,
                version: sqlite_version(url).await?,
                url: url.to_owned(),
                label: url.to_owned(),
                local_postgres: None,
                cleanup: Cleanup::Nothing,
            });
        }
        let parsed = Url::parse(url).context("--database-url is not a URL")?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "postgres" | "postgresql"),
            "--database-url must be sqlite://… or postgres://…"
        );
        let local = match parsed.host_str() {
            None | Some("" | "localhost" | "127.0.0.1" | "[::1]" | "::1") => true,
            Some(host) => host.starts_with("127."),
        };
        let mut admin = sqlx::PgConnection::connect(url)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(&parsed)))?;
        // The settings that move these figures most, so the report says what they were.
        let (version, autovacuum, synchronous_commit, shared_buffers): (
            String,
            String,
            String,
            String,
        ) = sqlx::query_as(
            "SELECT current_setting('server_version'), current_setting('autovacuum'), \
                 current_setting('synchronous_commit'), current_setting('shared_buffers')",
        )
        .fetch_one(&mut admin)
        .await?;
        let version = format!(
            "{version} (autovacuum {autovacuum}, synchronous_commit {synchronous_commit}, shared_buffers {shared_buffers})"
        );
        if existing {
            return Ok(Self {
                backend: Backend::Postgres,
                url: url.to_owned(),
                label: redact(&parsed),
                local_postgres: local.then(|| parsed.path().trim_start_matches('/').to_owned()),
                version: format!("PostgreSQL {version}"),
                cleanup: Cleanup::Nothing,
            });
        }
        let name = format!("loadtest_{:08x}", rand::random::<u32>());
        // A name of our own making: no quoting or binding needed (CREATE DATABASE takes none).
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        admin.close().await.ok();
        let mut fresh = parsed.clone();
        fresh.set_path(&format!("/{name}"));
        Ok(Self {
            backend: Backend::Postgres,
            url: fresh.to_string(),
            label: redact(&fresh),
            local_postgres: local.then(|| name.clone()),
            version: format!("PostgreSQL {version}"),
            cleanup: Cleanup::DropDatabase {
                admin_url: url.to_owned(),
                name,
            },
        })
    }

    /// What `--keep` leaves behind, to say so at the end.
    pub fn kept(&self) -> Option<String> {
        match &self.cleanup {
            Cleanup::Nothing => None,
            Cleanup::Directory | Cleanup::DropDatabase { .. } => Some(self.url.clone()),
        }
    }

    /// Drops a database this run created. Call it after the server has stopped. (The SQLite
    /// file goes with the temporary directory.)
    pub async fn remove(&self) -> anyhow::Result<()> {
        if let Cleanup::DropDatabase { admin_url, name } = &self.cleanup {
            let mut admin = sqlx::PgConnection::connect(admin_url).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await
                .with_context(|| format!("cannot drop database {name}"))?;
            admin.close().await.ok();
        }
        Ok(())
    }
}

async fn sqlite_version(url: &str) -> anyhow::Result<String> {
    // The version the seeder links; the server is built against the same bundled SQLite.
    let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:").await?;
    let version: String = sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(&mut conn)
        .await
        .with_context(|| format!("cannot ask SQLite its version for {url}"))?;
    conn.close().await.ok();
    Ok(format!("SQLite {version}"))
}

/// The URL without its password, for printing.
fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}
