//! Per-organisation quotas and their headers.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend_test;
use crate::helpers::*;

fn header(res: &reqwest::Response, name: &str) -> Option<u64> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().parse().unwrap())
}

backend_test! {
    async fn quota_counts_down_then_429_with_retry_after(backend: Backend) {
        let app = spawn_app(backend).await;
        app.create_org("tiny", json!({"tier": "custom", "rate_limit": {"requests": 3, "window_seconds": 3600}})).await;
        let key = app.create_key("tiny").await["api_key"].as_str().unwrap().to_owned();

        let mut remaining = Vec::new();
        for _ in 0..3 {
            let res = app.me_with_key(&key).await;
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(header(&res, "ratelimit-limit"), Some(3));
            assert_eq!(header(&res, "x-ratelimit-limit"), Some(3));
            assert_eq!(header(&res, "ratelimit-remaining"), header(&res, "x-ratelimit-remaining"));
            assert!(header(&res, "ratelimit-reset").is_some());
            remaining.push(header(&res, "ratelimit-remaining").unwrap());
        }
        assert_eq!(remaining, [2, 1, 0]);

        let res = app.me_with_key(&key).await;
        let retry_after = header(&res, "retry-after").expect("Retry-After on 429");
        assert!((1..=1200).contains(&retry_after), "{retry_after}");
        assert_eq!(header(&res, "ratelimit-remaining"), Some(0));
        let (status, body) = problem(res).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("RATE_LIMIT_EXCEEDED")));

        // Health, metrics and docs are never limited.
        for path in ["/health", "/metrics", "/openapi.json", "/"] {
            let res = app.get(path).header("X-API-Key", &key).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{path}");
        }
    }
}

backend_test! {
    async fn a_tier_change_takes_effect_without_restart(backend: Backend) {
        let app = spawn_app(backend).await;
        app.create_org("grow", json!({"tier": "custom", "rate_limit": {"requests": 1, "window_seconds": 3600}})).await;
        let key = app.create_key("grow").await["api_key"].as_str().unwrap().to_owned();
        assert_eq!(app.me_with_key(&key).await.status(), StatusCode::OK);
        assert_eq!(app.me_with_key(&key).await.status(), StatusCode::TOO_MANY_REQUESTS);

        let res = app.admin(Method::PATCH, "/api/v1/admin/orgs/grow").json(&json!({"tier": "basic"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = app.me_with_key(&key).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header(&res, "ratelimit-limit"), Some(500));
        let me: Value = res.json().await.unwrap();
        assert_eq!(me["rate_limit"]["requests"], 500);
    }
}

backend_test! {
    async fn one_end_user_gets_only_a_share_and_orgs_are_separate(backend: Backend) {
        // 8 per hour, a quarter of which (2) per end user.
        let app = spawn_app(backend).await;
        app.create_org("shop", json!({"tier": "custom", "rate_limit": {"requests": 8, "window_seconds": 3600}})).await;
        let key = app.create_key("shop").await["api_key"].as_str().unwrap().to_owned();
        let alice = app.mint_token(&key, "alice").await;
        let bob = app.mint_token(&key, "bob").await;

        let res = app.me_with_token(&alice).await;
        assert_eq!(header(&res, "ratelimit-limit"), Some(2), "the tighter quota is reported");
        assert_eq!(app.me_with_token(&alice).await.status(), StatusCode::OK);
        assert_eq!(problem(app.me_with_token(&alice).await).await.0, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(app.me_with_token(&bob).await.status(), StatusCode::OK);

        // Another org's quota is untouched by all this.
        let other = app.org_with_key("other").await;
        let res = app.me_with_key(&other).await;
        assert_eq!(header(&res, "ratelimit-remaining"), Some(99));
    }
}
