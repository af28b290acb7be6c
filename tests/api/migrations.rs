//! Data migrations keep what deployed databases hold: a database at the previous migration,
//! with rows in the old shape, comes out of the new migration in the new shape.

use std::path::Path;

use agentd::store::Store;
use serde_json::{Value, json};
use sqlx::types::Json;
use uuid::Uuid;

use crate::backend_test;
use crate::helpers::*;

/// The migration that moved the booking flow's state under the booking skill.
const SKILLS_MIGRATION: &str = "20261201000001";

/// Applies this backend's migrations older than `version`, from a copy of the folder.
async fn migrate_before(store: &Store, version: &str) {
    let folder = match store {
        Store::Sqlite(_) => "sqlite",
        Store::Postgres(_) => "postgres",
    };
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(folder);
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().as_ref() < version {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    match store {
        Store::Sqlite(pools) => migrator.run(&pools.write).await.unwrap(),
        Store::Postgres(pool) => migrator.run(pool).await.unwrap(),
    }
}

/// Runs one statement with the same binds on either backend.
macro_rules! exec {
    ($store:expr, $sql:expr $(, $bind:expr)*) => {
        match $store {
            Store::Sqlite(pools) => { sqlx::query($sql)$(.bind($bind))*.execute(&pools.write).await.unwrap(); }
            Store::Postgres(pool) => { sqlx::query($sql)$(.bind($bind))*.execute(pool).await.unwrap(); }
        }
    };
}

/// A JSON column of one row.
async fn json_of(store: &Store, sql: &str, id: Uuid) -> Value {
    let v: Json<Value> = match store {
        Store::Sqlite(pools) => sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(&pools.write)
            .await
            .unwrap(),
        Store::Postgres(pool) => sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap(),
    };
    v.0
}

backend_test! {
    async fn the_skills_migration_moves_the_booking_state_under_its_skill(backend: Backend) {
        let db = TestDb::new(backend).await;
        let store = Store::connect(&db.url, 2).await.unwrap();
        migrate_before(&store, SKILLS_MIGRATION).await;

        let now = chrono::Utc::now();
        let (conv, idle, run) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let old_state = json!({
            "stage": "CONFIRM",
            "booking": {"service_id": "general-consultation", "start": "2026-12-02T10:00", "name": "Ann"},
            "last_confirmation": "APPT-ABC123"
        });
        exec!(&store, "INSERT INTO orgs (id, name, active, tier, rate_limit_requests, rate_limit_window_seconds, settings, version, created_at, updated_at) VALUES ('o', 'O', TRUE, 'free', 100, 3600, $1, 1, $2, $2)",
            Json(json!({})), now);
        for (id, state) in [(conv, old_state.clone()), (idle, json!({}))] {
            exec!(&store, "INSERT INTO conversations (id, org_id, kind, title, state, created_at, updated_at) VALUES ($1, 'o', 'session', 't', $2, $3, $3)",
                id, Json(state), now);
        }
        exec!(&store, "INSERT INTO checkpoints (conversation_id, version, run_id, step, state, created_at) VALUES ($1, 1, $2, 1, $3, $4)",
            conv, run, Json(old_state.clone()), now);
        exec!(&store, "INSERT INTO idempotency_keys (org_id, key, request_hash, response, conversation_id, created_at) VALUES ('o', 'k', 'h', $1, $2, $3)",
            Json(json!({"response": "Booked.", "state": old_state})), conv, now);
        exec!(&store, "INSERT INTO tasks (id, org_id, owner, title, status, created_at) VALUES ($1, 'o', $2, 'Buy milk', 'pending', $3)",
            Uuid::now_v7(), format!("session:{conv}"), now);

        store.migrate().await.unwrap();

        let state = json_of(&store, "SELECT state FROM conversations WHERE id = $1", conv).await;
        assert_eq!(state["stage"], "CONFIRM");
        assert_eq!(state["skills"]["booking"]["draft"]["name"], "Ann");
        assert_eq!(state["skills"]["booking"]["last_confirmation"], "APPT-ABC123");
        assert!(state.get("booking").is_none(), "{state}");
        assert_eq!(json_of(&store, "SELECT state FROM conversations WHERE id = $1", idle).await, json!({}));
        let checkpoint = json_of(&store, "SELECT state FROM checkpoints WHERE conversation_id = $1", conv).await;
        assert_eq!(checkpoint, state);
        let replay = json_of(&store, "SELECT response FROM idempotency_keys WHERE conversation_id = $1", conv).await;
        assert_eq!(replay, json!({"response": "Booked.", "current_state": "CONFIRM"}));

        // The session's task now goes with the session.
        exec!(&store, "DELETE FROM conversations WHERE id = $1", conv);
        let tasks: i64 = match &store {
            Store::Sqlite(pools) => sqlx::query_scalar("SELECT COUNT(*) FROM tasks").fetch_one(&pools.write).await.unwrap(),
            Store::Postgres(pool) => sqlx::query_scalar("SELECT COUNT(*) FROM tasks").fetch_one(pool).await.unwrap(),
        };
        assert_eq!(tasks, 0);
        store.close().await;
    }
}
