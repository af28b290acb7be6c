//! Pre-fills an organisation with stored conversations, straight into the database and as
//! fast as the engine allows, so scenarios can run against a large tenant. This is the one
//! place of the load test that knows the schema: when `conversations` or `messages` change
//! (see migrations/), update the column lists here. Columns left out take their defaults.
//!
//! Seeded conversations are sessions last updated within the past 24 hours — inside the
//! default 48-hour session TTL, so the server's sweeper does not start erasing them while the
//! test runs — each with `messages` messages (user and assistant in turn).

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::Connection;

use crate::database::Backend;

/// Rows per statement: big enough to run at the engine's bulk speed, small enough to show
/// progress and keep each statement's memory modest.
const BATCH: u64 = 100_000;

/// What seeding did, for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Seeded {
    pub conversations: u64,
    pub messages_each: u32,
    pub seconds: f64,
    pub analyzed: bool,
}

pub async fn seed(
    backend: Backend,
    url: &str,
    org: &str,
    conversations: u64,
    messages: u32,
    analyze: bool,
) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    match backend {
        Backend::Postgres => seed_postgres(url, org, conversations, messages, analyze).await?,
        Backend::Sqlite => seed_sqlite(url, org, conversations, messages, analyze).await?,
    }
    Ok(Seeded {
        conversations,
        messages_each: messages,
        seconds: started.elapsed().as_secs_f64(),
        analyzed: analyze,
    })
}

fn progress(done: u64, total: u64, started: Instant) {
    let rate = done as f64
        / started
            .elapsed()
            .max(Duration::from_millis(1))
            .as_secs_f64();
    eprintln!("  seeded {done}/{total} conversations ({rate:.0}/s)");
}

/// `org` is ours ([`crate::server::ORG`]), checked to be a plain identifier before it is
/// spliced into SQL.
fn checked_org(org: &str) -> anyhow::Result<&str> {
    anyhow::ensure!(
        org.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "org id {org:?} is not a plain identifier"
    );
    Ok(org)
}

async fn seed_postgres(
    url: &str,
    org: &str,
    total: u64,
    messages: u32,
    analyze: bool,
) -> anyhow::Result<()> {
    let org = checked_org(org)?;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let started = Instant::now();
    let mut done = 0;
    while done < total {
        let n = BATCH.min(total - done);
        // One statement per batch: the conversations, then their messages from the ids the
        // first insert returns. `ts` spreads the rows over the last 24 hours, newest first.
        let sql = format!(
            "WITH c AS ( \
               INSERT INTO conversations \
                 (id, org_id, kind, title, last_seq, message_count, last_message_at, created_at, updated_at) \
               SELECT gen_random_uuid(), '{org}', 'session', 'Seeded conversation ' || i, \
                      {messages}, {messages}, CASE WHEN {messages} > 0 THEN ts END, ts, ts \
               FROM (SELECT i, now() - (i * 86400.0 / {total}) * interval '1 second' AS ts \
                     FROM generate_series({from}, {to}) AS i) AS s \
               RETURNING id, created_at) \
             INSERT INTO messages (id, conversation_id, org_id, seq, role, content, created_at) \
             SELECT gen_random_uuid(), c.id, '{org}', seq, \
                    CASE WHEN seq % 2 = 1 THEN 'user' ELSE 'assistant' END, \
                    CASE WHEN seq % 2 = 1 THEN 'Hello, I would like to book an appointment.' \
                         ELSE 'Of course! Which service would you like?' END, \
                    c.created_at \
             FROM c CROSS JOIN generate_series(1, {messages}) AS seq",
            from = done + 1,
            to = done + n,
        );
        sqlx::query(&sql)
            .execute(&mut conn)
            .await
            .context("seeding PostgreSQL failed")?;
        done += n;
        progress(done, total, started);
    }
    if analyze {
        sqlx::query("ANALYZE conversations, messages")
            .execute(&mut conn)
            .await?;
    }
    // Write the bulk load out now rather than in a checkpoint during the measurement.
    // (Superusers only; without the right the load is simply checkpointed later.)
    let _ = sqlx::query("CHECKPOINT").execute(&mut conn).await;
    conn.close().await.ok();
    Ok(())
}

async fn seed_sqlite(
    url: &str,
    org: &str,
    total: u64,
    messages: u32,
    analyze: bool,
) -> anyhow::Result<()> {
    let org = checked_org(org)?;
    let mut conn = sqlx::SqliteConnection::connect(url).await?;
    // The server is idle meanwhile, but give it (and us) a wait rather than SQLITE_BUSY.
    sqlx::query("PRAGMA busy_timeout = 60000")
        .execute(&mut conn)
        .await?;
    let started = Instant::now();
    let mut done = 0;
    while done < total {
        let n = BATCH.min(total - done);
        let mut tx = conn.begin().await?;
        // SQLite has no INSERT … RETURNING into another INSERT: the batch's ids go to a
        // temporary table first. Ids are random 16-byte BLOBs, as sqlx stores a Uuid; times
        // are RFC 3339 text in UTC, as sqlx stores a DateTime<Utc>.
        sqlx::query("DROP TABLE IF EXISTS temp.seed")
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "CREATE TEMP TABLE seed AS \
             WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to}) \
             SELECT i, randomblob(16) AS id, \
                    strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', printf('-%.3f seconds', i * 86400.0 / {total})) AS ts \
             FROM n",
            from = done + 1,
            to = done + n,
        ))
        .execute(&mut *tx)
        .await
        .context("seeding SQLite failed")?;
        sqlx::query(&format!(
            "INSERT INTO conversations \
               (id, org_id, kind, title, last_seq, message_count, last_message_at, created_at, updated_at) \
             SELECT id, '{org}', 'session', 'Seeded conversation ' || i, {messages}, {messages}, \
                    CASE WHEN {messages} > 0 THEN ts END, ts, ts \
             FROM seed"
        ))
        .execute(&mut *tx)
        .await
        .context("seeding SQLite conversations failed")?;
        if messages > 0 {
            sqlx::query(&format!(
                "WITH RECURSIVE m(seq) AS (SELECT 1 UNION ALL SELECT seq + 1 FROM m WHERE seq < {messages}) \
                 INSERT INTO messages (id, conversation_id, org_id, seq, role, content, created_at) \
                 SELECT randomblob(16), seed.id, '{org}', seq, \
                        CASE WHEN seq % 2 = 1 THEN 'user' ELSE 'assistant' END, \
                        CASE WHEN seq % 2 = 1 THEN 'Hello, I would like to book an appointment.' \
                             ELSE 'Of course! Which service would you like?' END, \
                        seed.ts \
                 FROM seed CROSS JOIN m"
            ))
            .execute(&mut *tx)
            .await
            .context("seeding SQLite messages failed")?;
        }
        sqlx::query("DROP TABLE temp.seed")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        done += n;
        progress(done, total, started);
    }
    if analyze {
        sqlx::query("ANALYZE").execute(&mut conn).await?;
    }
    // Fold the write-ahead log into the database file now, so the first commits measured do
    // not pay for checkpointing the whole bulk load.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    conn.close().await.ok();
    Ok(())
}

/// Reads the seeded conversations back through the API (newest first, so the page is seeded
/// rows): the server must decode what was written here, or the schema knowledge above is
/// stale. Returns the organisation's conversation count.
pub async fn check_through_api(
    target: &crate::scenario::Target,
    seeded: u64,
) -> anyhow::Result<i64> {
    let res = target
        .http
        .get(format!(
            "{}/api/v1/conversations?limit=100",
            target.base_url
        ))
        .header("x-api-key", &target.api_key)
        .send()
        .await?;
    let status = res.status();
    let body = res.text().await?;
    anyhow::ensure!(
        status.is_success(),
        "listing the seeded conversations answered {status}: {body}"
    );
    let page: serde_json::Value = serde_json::from_str(&body)?;
    let total = page["total"].as_i64().unwrap_or(0);
    anyhow::ensure!(
        u64::try_from(total).unwrap_or(0) >= seeded,
        "the API counts {total} conversations after seeding {seeded}"
    );
    let first = &page["items"][0];
    anyhow::ensure!(
        first["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("Seeded conversation")),
        "the newest conversation is not a seeded one: {first}"
    );
    Ok(total)
}

/// PostgreSQL's own record of when it last vacuumed and analysed the seeded tables: after a
/// bulk load autovacuum may run during the measurement (and use CPU counted as PostgreSQL's).
pub async fn postgres_maintenance(url: &str) -> anyhow::Result<Vec<String>> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let lines: Vec<String> = sqlx::query_scalar(
        "SELECT format('%s: %s live rows, last analysed %s, last vacuumed %s (now %s)', relname, n_live_tup, \
                coalesce(to_char(greatest(last_analyze, last_autoanalyze), 'HH24:MI:SS'), 'never'), \
                coalesce(to_char(greatest(last_vacuum, last_autovacuum), 'HH24:MI:SS'), 'never'), \
                to_char(now(), 'HH24:MI:SS')) \
         FROM pg_stat_user_tables WHERE relname IN ('conversations', 'messages') ORDER BY relname",
    )
    .fetch_all(&mut conn)
    .await?;
    conn.close().await.ok();
    Ok(lines)
}
