//! Shared set-up of the benchmarks: an app on a temporary SQLite database with one org whose
//! quota never runs out, and an API key for it.

use agentd::domain::org::OrgPatch;
use agentd::domain::{OrgId, RateLimit, Tier};

/// The app's router and a key of org `bench`; keep the returned directory alive.
pub fn app(rt: &tokio::runtime::Runtime) -> (axum::Router, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bench.db?mode=rwc", dir.path().display());
    let (router, key) = rt.block_on(async {
        let app = agentd::build_app(agentd::Settings::for_database(url))
            .await
            .unwrap();
        let patch = OrgPatch {
            tier: Some(Tier::Custom),
            rate_limit: Some(RateLimit {
                requests: 1_000_000,
                window_seconds: 1,
            }),
            ..OrgPatch::default()
        };
        agentd::admin::create_org(&app.state.store, &app.state.tool_names(), "bench", patch)
            .await
            .unwrap();
        let org = OrgId::parse("bench").unwrap();
        let req = agentd::admin::NewApiKey {
            name: "bench".into(),
            expires_at: None,
        };
        let key = agentd::admin::create_key(&app.state.store, &org, &req)
            .await
            .unwrap()
            .api_key;
        (app.router, key)
    });
    (router, key, dir)
}
