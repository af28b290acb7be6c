//! Credentials end when they should and cost little when wrong: failed credentials are rate
//! limited per client address, and revocations and organisation changes made anywhere reach
//! every instance at its next read of the change log (twice a second).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::backend_test;
use crate::helpers::*;

backend_test! {
    async fn guessing_credentials_is_rate_limited_per_client_address(backend: Backend) {
        let app = spawn_app_with(backend, |s| s.auth_failures_per_minute = 5).await;
        let key = app.org_with_key("acme").await;
        let (prefix, _) = key.rsplit_once('_').unwrap();
        let wrong = format!("{prefix}_{}", "y".repeat(40));

        // No credential at all is not a guess: never counted.
        for _ in 0..10 {
            assert_eq!(problem(app.get("/api/v1/me").send().await.unwrap()).await.0, StatusCode::UNAUTHORIZED);
        }
        for _ in 0..5 {
            assert_eq!(problem(app.me_with_key(&wrong).await).await.0, StatusCode::UNAUTHORIZED);
        }
        let res = app.me_with_key(&wrong).await;
        let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        let (status, body) = problem(res).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("RATE_LIMIT_EXCEEDED")));
        // Blocked for any credential, the right one and tokens and the admin token included.
        assert_eq!(problem(app.me_with_key(&key).await).await.0, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(problem(app.me_with_token("not.a.token").await).await.0, StatusCode::TOO_MANY_REQUESTS);
        let res = app.admin(Method::GET, "/api/v1/admin/orgs").send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::TOO_MANY_REQUESTS);
    }
}

backend_test! {
    async fn wrong_admin_tokens_are_rate_limited_too(backend: Backend) {
        let app = spawn_app_with(backend, |s| s.auth_failures_per_minute = 3).await;
        for _ in 0..3 {
            let res = app.client.get(app.url("/api/v1/admin/orgs")).bearer_auth("guess-guess-guess-1").send().await.unwrap();
            assert_eq!(problem(res).await.0, StatusCode::UNAUTHORIZED);
        }
        let res = app.client.get(app.url("/api/v1/admin/orgs")).bearer_auth("guess-guess-guess-2").send().await.unwrap();
        assert!(res.headers().contains_key("retry-after"));
        assert_eq!(problem(res).await.0, StatusCode::TOO_MANY_REQUESTS);
    }
}

backend_test! {
    async fn a_revocation_anywhere_reaches_every_instance_at_its_next_sync(backend: Backend) {
        let a = spawn_app(backend).await;
        let b = a.second_instance(|_| {}).await;
        a.state.auth.sync_once().await.unwrap(); // where the background loop starts
        a.create_org("acme", json!({})).await;
        let created = a.create_key("acme").await;
        let key = created["api_key"].as_str().unwrap();
        let token = a.mint_token(key, "alice").await;
        // Both cached on instance a.
        assert_eq!(a.me_with_key(key).await.status(), StatusCode::OK);
        assert_eq!(a.me_with_token(&token).await.status(), StatusCode::OK);

        // Revoked through instance b: instance a still has it cached...
        let id = created["id"].as_str().unwrap();
        let res = b.admin(Method::DELETE, &format!("/api/v1/admin/orgs/acme/keys/{id}")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(a.me_with_key(key).await.status(), StatusCode::OK);
        // ...until its next read of the change log; the token dies with its key.
        a.state.auth.sync_once().await.unwrap();
        assert_eq!(problem(a.me_with_key(key).await).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(problem(a.me_with_token(&token).await).await.0, StatusCode::UNAUTHORIZED);
        // On the instance that revoked, at once.
        assert_eq!(problem(b.me_with_key(key).await).await.0, StatusCode::UNAUTHORIZED);
    }
}

backend_test! {
    async fn a_deactivation_anywhere_reaches_every_instance_at_its_next_sync(backend: Backend) {
        let a = spawn_app(backend).await;
        let b = a.second_instance(|_| {}).await;
        a.state.auth.sync_once().await.unwrap();
        let key = a.org_with_key("acme").await;
        assert_eq!(a.me_with_key(&key).await.status(), StatusCode::OK);
        let res = b.admin(Method::POST, "/api/v1/admin/orgs/acme/deactivate").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        a.state.auth.sync_once().await.unwrap();
        let (status, body) = problem(a.me_with_key(&key).await).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("ORG_INACTIVE")));
    }
}

backend_test! {
    async fn a_token_minted_by_a_revoked_key_dies_at_once_on_its_instance(backend: Backend) {
        let app = spawn_app(backend).await;
        app.create_org("acme", json!({})).await;
        let created = app.create_key("acme").await;
        let key = created["api_key"].as_str().unwrap();
        let other_key = app.create_key("acme").await["api_key"].as_str().unwrap().to_owned();
        let token = app.mint_token(key, "alice").await;
        let survivor = app.mint_token(&other_key, "bob").await;
        assert_eq!(app.me_with_token(&token).await.status(), StatusCode::OK);
        let id = created["id"].as_str().unwrap();
        app.admin(Method::DELETE, &format!("/api/v1/admin/orgs/acme/keys/{id}")).send().await.unwrap();
        assert_eq!(problem(app.me_with_token(&token).await).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(app.me_with_token(&survivor).await.status(), StatusCode::OK);
    }
}
