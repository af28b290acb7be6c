//! Cross-cutting layers: request ids, panics, timeouts, CORS, compression, security headers,
//! graceful shutdown. Routes that misbehave on purpose are put behind the real layer stack.

use std::time::Duration;

use axum::routing::get;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::backend_test;
use crate::helpers::*;

/// The app's state with a router of test routes behind the production layers.
async fn misbehaving_app(backend: Backend, tweak: impl FnOnce(&mut agentd::Settings)) -> TestApp {
    let db = TestDb::new(backend).await;
    let mut settings = test_settings(&db.url);
    tweak(&mut settings);
    let app = agentd::build_app(settings).await.unwrap();
    let routes = axum::Router::new()
        .route(
            "/boom",
            get(|| async {
                if true {
                    panic!("secret internal detail");
                }
                "unreachable"
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                "done"
            }),
        );
    let router = agentd::http::layers(routes, &app.state);
    serve(router, app.state, db).await
}

backend_test! {
    async fn a_panic_is_a_500_problem_without_internal_details(backend: Backend) {
        let app = misbehaving_app(backend, |_| {}).await;
        let res = app.get("/boom").send().await.unwrap();
        let (status, body) = problem(res).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::INTERNAL_SERVER_ERROR, Some("INTERNAL_ERROR")));
        assert!(!body.to_string().contains("secret internal detail"));
        // The server is still serving.
        assert_eq!(app.get("/boom").send().await.unwrap().status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}

backend_test! {
    async fn a_slow_request_is_cut_off_with_a_timeout_problem(backend: Backend) {
        let app = misbehaving_app(backend, |s| s.request_timeout_seconds = 1).await;
        let (status, body) = problem(app.get("/slow").send().await.unwrap()).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::REQUEST_TIMEOUT, Some("REQUEST_TIMEOUT")));
    }
}

backend_test! {
    async fn shutdown_finishes_in_flight_requests_then_stops_accepting(backend: Backend) {
        let app = misbehaving_app(backend, |_| {}).await;
        let slow = app.get("/slow").send();
        let stop = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            app.stop.cancel();
        };
        let (res, ()) = tokio::join!(slow, stop);
        let res = res.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.text().await.unwrap(), "done");
        // Shutdown completes: background tasks are awaited and the listener is gone.
        tokio::time::timeout(Duration::from_secs(10), app.state.tasks.wait()).await.unwrap();
        let fresh = reqwest::Client::new();
        assert!(fresh.get(app.url("/health")).send().await.is_err());
    }
}

backend_test! {
    async fn request_ids_are_accepted_or_generated_and_echoed(backend: Backend) {
        let app = spawn_app(backend).await;
        let res = app.get("/health").header("X-Request-ID", "plugin-req-123").send().await.unwrap();
        assert_eq!(res.headers()["x-request-id"], "plugin-req-123");
        let res = app.get("/health").send().await.unwrap();
        let generated = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
        // Junk (spaces, overly long) is replaced, not echoed into logs.
        let res = app.get("/health").header("X-Request-ID", "a b c").send().await.unwrap();
        assert_ne!(res.headers()["x-request-id"], "a b c");
        let (_, body) = problem(app.get("/nope").header("X-Request-ID", "trace-me").send().await.unwrap()).await;
        assert_eq!(body["request_id"], "trace-me");
    }
}

backend_test! {
    async fn cors_allows_global_and_org_origins_only(backend: Backend) {
        let app = spawn_app_with(backend, |s| s.cors_origins = vec!["https://global.example".into()]).await;
        let preflight = |origin: &str| {
            app.client.request(Method::OPTIONS, app.url("/api/v1/me"))
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "GET")
                .header("Access-Control-Request-Headers", "authorization")
                .send()
        };
        let allowed = |res: &reqwest::Response| res.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned());

        let res = preflight("https://global.example").await.unwrap();
        assert_eq!(allowed(&res).as_deref(), Some("https://global.example"));
        let res = preflight("https://shop.example").await.unwrap();
        assert_eq!(allowed(&res), None);

        app.create_org("shop", json!({"allowed_origins": ["https://shop.example"]})).await;
        let res = preflight("https://shop.example").await.unwrap();
        assert_eq!(allowed(&res).as_deref(), Some("https://shop.example"));
        let res = preflight("https://evil.example").await.unwrap();
        assert_eq!(allowed(&res), None);

        // Errors carry CORS headers too, so a browser can read them.
        let res = app.get("/api/v1/me").header("Origin", "https://shop.example").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(allowed(&res).as_deref(), Some("https://shop.example"));
        let exposed = res.headers()["access-control-expose-headers"].to_str().unwrap().to_owned();
        assert!(exposed.contains("ratelimit-remaining") && exposed.contains("x-request-id"), "{exposed}");
    }
}

backend_test! {
    async fn responses_are_compressed_and_carry_security_headers(backend: Backend) {
        let app = spawn_app(backend).await;
        let res = app.get("/openapi.json").header("Accept-Encoding", "gzip").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-encoding"], "gzip");
        for (name, value) in [("x-content-type-options", "nosniff"), ("x-frame-options", "DENY"), ("referrer-policy", "no-referrer")] {
            assert_eq!(res.headers()[name], value);
        }
        assert!(res.headers().contains_key("content-security-policy"));
    }
}
