//! `/`, `/health`, `/health/ready`, `/metrics`, `/docs`.

use std::net::SocketAddr;

use reqwest::StatusCode;
use serde_json::Value;

use crate::backend_test;
use crate::helpers::*;

backend_test! {
    async fn root_health_and_readiness_answer(backend: Backend) {
        let app = spawn_app(backend).await;
        let root: Value = app.get("/").send().await.unwrap().json().await.unwrap();
        assert_eq!(root["name"], "agentd");
        assert_eq!(root["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(root["links"]["docs"], "/docs");
        let health: Value = app.get("/health").send().await.unwrap().json().await.unwrap();
        assert_eq!(health["status"], "ok");
        let res = app.get("/health/ready").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
}

backend_test! {
    async fn metrics_count_requests_by_route_and_status(backend: Backend) {
        let app = spawn_app(backend).await;
        let key = app.org_with_key("acme").await;
        app.me_with_key(&key).await;
        app.me_with_key(&key).await;
        app.get("/api/v1/me").send().await.unwrap();
        let res = app.get("/metrics").send().await.unwrap();
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let text = res.text().await.unwrap();
        assert!(text.contains(r#"agentd_http_requests_total{method="GET",route="/api/v1/me",status="200"} 2"#), "{text}");
        assert!(text.contains(r#"agentd_http_requests_total{method="GET",route="/api/v1/me",status="401"} 1"#), "{text}");
        assert!(text.contains(r#"agentd_http_request_duration_seconds_bucket{le="#), "{text}");
        assert!(text.contains(r#"agentd_http_request_duration_seconds_count{method="GET",route="/api/v1/me"} 3"#), "{text}");
    }
}

backend_test! {
    async fn odd_methods_and_unknown_paths_cannot_mint_metric_series(backend: Backend) {
        let app = spawn_app(backend).await;
        let series = |text: &str| text.lines().filter(|l| l.starts_with("agentd_http_requests_total{")).count();
        let before = series(&app.get("/metrics").send().await.unwrap().text().await.unwrap());
        for i in 0..50 {
            let method = reqwest::Method::from_bytes(format!("M{i:04x}").as_bytes()).unwrap();
            app.client.request(method, app.url("/health")).send().await.unwrap();
            app.get(&format!("/no/such/path/{i}")).send().await.unwrap();
        }
        let text = app.get("/metrics").send().await.unwrap().text().await.unwrap();
        // Fifty odd methods and fifty unknown paths: at most a handful of new series.
        assert!(series(&text) <= before + 4, "{text}");
        assert!(text.contains(r#"method="OTHER",route="/health""#), "{text}");
        assert!(text.contains(r#"route="unmatched""#), "{text}");
        assert!(!text.contains("M0001"), "{text}");
    }
}

backend_test! {
    async fn swagger_ui_is_served_from_the_binary(backend: Backend) {
        let app = spawn_app(backend).await;
        let res = app.get("/docs/").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let html = res.text().await.unwrap();
        assert!(html.contains("swagger-ui-bundle.js"), "{html}");
        let res = app.get("/docs/swagger-ui-bundle.js").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.bytes().await.unwrap().len() > 100_000);
        let init = app.get("/docs/swagger-initializer.js").send().await.unwrap().text().await.unwrap();
        assert!(init.contains("/openapi.json"), "{init}");
    }
}

/// Readiness follows the database: 503 while PostgreSQL is unreachable, 200 once it is back.
/// (PostgreSQL only: an embedded SQLite file cannot go away like a server.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_a_database_outage_and_recovery() {
    let Some(base) = postgres_url() else {
        eprintln!("TEST_DATABASE_URL is not set: not run");
        return;
    };
    let db = TestDb::new(Backend::Postgres).await;
    let opts: sqlx::postgres::PgConnectOptions = base.parse().unwrap();
    let target: SocketAddr = format!(
        "{}:{}",
        opts.get_host().replace("localhost", "127.0.0.1"),
        opts.get_port()
    )
    .parse()
    .unwrap();
    let proxy = Outage::start(target).await;
    // The same database and schema, reached through the proxy.
    let via_proxy = db.url.replacen(
        &format!(":{}", opts.get_port()),
        &format!(":{}", proxy.port),
        1,
    );
    assert_ne!(
        via_proxy, db.url,
        "could not point the URL at the proxy: {}",
        db.url
    );
    let app = agentd::build_app(test_settings(&via_proxy)).await.unwrap();
    let app = serve(app.router, app.state, db).await;

    assert_eq!(
        app.get("/health/ready").send().await.unwrap().status(),
        StatusCode::OK
    );
    proxy.down();
    let (status, body) = problem(app.get("/health/ready").send().await.unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("SERVICE_UNAVAILABLE"))
    );
    assert_eq!(
        app.get("/health").send().await.unwrap().status(),
        StatusCode::OK,
        "liveness does not depend on the database"
    );
    proxy.restore();
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        status = app.get("/health/ready").send().await.unwrap().status();
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::OK);
}
