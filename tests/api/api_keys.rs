//! API keys: creation, listing, authentication, caching, revocation, expiry.

use agentd::domain::OrgId;
use agentd::store::keys::NewKeyRecord;
use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend_test;
use crate::helpers::*;

backend_test! {
    async fn the_plaintext_key_is_shown_only_on_creation(backend: Backend) {
        let app = spawn_app(backend).await;
        app.create_org("acme", json!({})).await;
        let created = app.create_key("acme").await;
        let key = created["api_key"].as_str().unwrap();
        let prefix = created["prefix"].as_str().unwrap();
        assert!(key.starts_with(&format!("ak_{prefix}_")), "{key}");
        assert!(key.len() >= 3 + 12 + 1 + 32);

        let res = app.admin(Method::GET, "/api/v1/admin/orgs/acme/keys").send().await.unwrap();
        let text = res.text().await.unwrap();
        let secret = key.rsplit('_').next().unwrap();
        assert!(!text.contains(secret), "listing leaks the secret: {text}");
        let list: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(list["items"][0]["prefix"], prefix);
        assert!(list["items"][0].get("api_key").is_none());
    }
}

backend_test! {
    async fn missing_malformed_and_unknown_keys_get_401_with_www_authenticate(backend: Backend) {
        let app = spawn_app(backend).await;
        let key = app.org_with_key("acme").await;
        let unknown = format!("ak_ABCDEFGHIJKL_{}", "x".repeat(40));
        let wrong_secret = format!("{}_{}", &key[..key.rfind('_').unwrap()], "y".repeat(40));
        let requests = [
            app.get("/api/v1/me"),
            app.get("/api/v1/me").header("X-API-Key", "not-a-key"),
            app.get("/api/v1/me").header("X-API-Key", &unknown),
            app.get("/api/v1/me").header("X-API-Key", &wrong_secret),
        ];
        for req in requests {
            let res = req.send().await.unwrap();
            assert!(res.headers().contains_key("www-authenticate"));
            let (status, body) = problem(res).await;
            assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHORIZED")));
        }
        // The right key still works, also as a bearer token.
        assert_eq!(app.me_with_key(&key).await.status(), StatusCode::OK);
        let res = app.get("/api/v1/me").bearer_auth(&key).send().await.unwrap();
        assert_eq!(res.json::<Value>().await.unwrap()["credential"], "api_key");
    }
}

backend_test! {
    async fn a_revoked_key_is_rejected_immediately(backend: Backend) {
        let app = spawn_app(backend).await;
        app.create_org("acme", json!({})).await;
        let created = app.create_key("acme").await;
        let key = created["api_key"].as_str().unwrap();
        // Used once, so it sits in the verified-key cache.
        assert_eq!(app.me_with_key(key).await.status(), StatusCode::OK);

        let id = created["id"].as_str().unwrap();
        let res = app.admin(Method::DELETE, &format!("/api/v1/admin/orgs/acme/keys/{id}")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(problem(app.me_with_key(key).await).await.0, StatusCode::UNAUTHORIZED);

        // Revoking again is harmless; the listing shows when it was revoked.
        let res = app.admin(Method::DELETE, &format!("/api/v1/admin/orgs/acme/keys/{id}")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let list: Value = app.admin(Method::GET, "/api/v1/admin/orgs/acme/keys").send().await.unwrap().json().await.unwrap();
        assert!(list["items"][0]["revoked_at"].is_string());
    }
}

backend_test! {
    async fn keys_are_scoped_to_their_organisation(backend: Backend) {
        let app = spawn_app(backend).await;
        app.create_org("acme", json!({})).await;
        app.create_org("other", json!({})).await;
        let created = app.create_key("acme").await;
        let id = created["id"].as_str().unwrap();
        // Another org's key id is not found through this org.
        let res = app.admin(Method::DELETE, &format!("/api/v1/admin/orgs/other/keys/{id}")).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
        assert_eq!(app.me_with_key(created["api_key"].as_str().unwrap()).await.status(), StatusCode::OK);
        let res = app.admin(Method::DELETE, "/api/v1/admin/orgs/acme/keys/not-a-uuid").send().await.unwrap();
        let (status, body) = problem(res).await;
        assert_eq!((status, body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("key_id")));
        let res = app.admin(Method::POST, "/api/v1/admin/orgs/nobody/keys").json(&json!({"name": "k"})).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
    }
}

backend_test! {
    async fn an_expired_key_is_rejected(backend: Backend) {
        let app = spawn_app(backend).await;
        app.create_org("acme", json!({})).await;
        // The API refuses a past expiry, so write the key's row directly.
        let generated = agentd::auth::api_keys::generate();
        let hash = agentd::auth::api_keys::hash(&generated.plaintext).unwrap();
        let now = Utc::now();
        let fingerprint = agentd::auth::fingerprint_hex(&agentd::auth::api_keys::fingerprint(&generated.plaintext));
        let record = NewKeyRecord {
            id: uuid::Uuid::now_v7(), name: "old", prefix: &generated.prefix, secret_hash: &hash,
            fingerprint: Some(&fingerprint), created_at: now - Duration::days(2), expires_at: Some(now - Duration::days(1)),
        };
        app.state.store.create_key(&OrgId::parse("acme").unwrap(), &record).await.unwrap();
        assert_eq!(problem(app.me_with_key(&generated.plaintext).await).await.0, StatusCode::UNAUTHORIZED);

        let res = app.admin(Method::POST, "/api/v1/admin/orgs/acme/keys")
            .json(&json!({"name": "k", "expires_at": "2000-01-01T00:00:00Z"})).send().await.unwrap();
        let (status, body) = problem(res).await;
        assert_eq!((status, body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("expires_at")));
    }
}

backend_test! {
    /// 1000 keys stored: authenticating one is found through the prefix index and checked
    /// against its fingerprint, with no argon2 at all, right or wrong.
    async fn with_a_thousand_keys_a_lookup_costs_no_argon2_right_or_wrong(backend: Backend) {
        let app = spawn_app(backend).await;
        let key = app.org_with_key("acme").await;
        let org = OrgId::parse("acme").unwrap();
        let dummy_hash = agentd::auth::api_keys::hash("ak_dummy").unwrap();
        for _ in 0..1000 {
            let g = agentd::auth::api_keys::generate();
            let fp = agentd::auth::fingerprint_hex(&agentd::auth::api_keys::fingerprint(&g.plaintext));
            let rec = NewKeyRecord {
                id: uuid::Uuid::now_v7(), name: "bulk", prefix: &g.prefix, secret_hash: &dummy_hash,
                fingerprint: Some(&fp), created_at: Utc::now(), expires_at: None,
            };
            app.state.store.create_key(&org, &rec).await.unwrap();
        }
        let verifications = "agentd_api_key_verifications_total";
        for _ in 0..5 {
            assert_eq!(app.me_with_key(&key).await.status(), StatusCode::OK);
        }
        // A known prefix with a wrong secret is refused as cheaply as an unknown prefix.
        let (prefix, _) = key.rsplit_once('_').unwrap();
        let wrong = format!("{prefix}_{}", "x".repeat(40));
        for _ in 0..5 {
            assert_eq!(problem(app.me_with_key(&wrong).await).await.0, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(app.metric(verifications).await, 0.0);
    }
}

backend_test! {
    /// A key made before fingerprints is verified with argon2 once; its fingerprint is then
    /// stored, so no instance verifies it the slow way again.
    async fn a_key_without_a_fingerprint_gets_one_at_its_first_use(backend: Backend) {
        let app = spawn_app(backend).await;
        app.create_org("acme", json!({})).await;
        let org = OrgId::parse("acme").unwrap();
        let g = agentd::auth::api_keys::generate();
        let hash = agentd::auth::api_keys::hash(&g.plaintext).unwrap();
        let rec = NewKeyRecord {
            id: uuid::Uuid::now_v7(), name: "legacy", prefix: &g.prefix, secret_hash: &hash,
            fingerprint: None, created_at: Utc::now(), expires_at: None,
        };
        app.state.store.create_key(&org, &rec).await.unwrap();
        let verifications = "agentd_api_key_verifications_total";
        assert_eq!(app.me_with_key(&g.plaintext).await.status(), StatusCode::OK);
        assert_eq!(app.metric(verifications).await, 1.0);
        app.state.tasks.close();
        app.state.tasks.wait().await;
        let stored = app.state.store.find_key_by_prefix(&g.prefix).await.unwrap().unwrap();
        assert_eq!(stored.fingerprint.as_deref(), Some(agentd::auth::fingerprint_hex(&agentd::auth::api_keys::fingerprint(&g.plaintext)).as_str()));
        let other = app.second_instance(|_| {}).await;
        assert_eq!(other.me_with_key(&g.plaintext).await.status(), StatusCode::OK);
        assert_eq!(other.metric(verifications).await, 0.0);
    }
}

backend_test! {
    async fn last_used_is_recorded_but_not_on_every_request(backend: Backend) {
        let app = spawn_app(backend).await;
        app.create_org("acme", json!({})).await;
        let created = app.create_key("acme").await;
        let key = created["api_key"].as_str().unwrap();
        let org = OrgId::parse("acme").unwrap();
        let last_used = || async {
            app.state.store.list_keys(&org).await.unwrap()[0].last_used_at
        };
        assert_eq!(last_used().await, None);

        app.me_with_key(key).await;
        // The write happens on a background task: wait for the app's tracked tasks.
        app.state.tasks.close();
        app.state.tasks.wait().await;
        assert!(last_used().await.is_some());

        // Within the minute, further requests do not write again.
        let marker = Utc::now() - Duration::days(365);
        let key_id = uuid::Uuid::parse_str(created["id"].as_str().unwrap()).unwrap();
        app.state.store.touch_key(key_id, marker).await.unwrap();
        for _ in 0..3 {
            app.me_with_key(key).await;
        }
        app.state.tasks.wait().await;
        let seen = last_used().await.unwrap();
        assert!((seen - marker).num_seconds().abs() < 1, "written again: {seen}");
    }
}
