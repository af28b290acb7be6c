//! The admin API for organisations.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend_test;
use crate::helpers::*;

backend_test! {
    async fn an_org_is_created_with_defaults_and_read_back(backend: Backend) {
        let app = spawn_app(backend).await;
        let res = app
            .admin(Method::POST, "/api/v1/admin/orgs")
            .json(&json!({"id": "acme", "name": "Acme Dental", "time_zone": "Europe/Berlin",
                          "services": [{"id": "cleaning", "name": "Cleaning", "duration_minutes": 45, "price_cents": 8000}]}))
            .send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(res.headers()["location"], "/api/v1/admin/orgs/acme");
        assert_eq!(res.headers()["etag"], "\"1\"");
        let created: Value = res.json().await.unwrap();
        assert_eq!(created["tier"], "free");
        assert_eq!(created["rate_limit"], json!({"requests": 100, "window_seconds": 3600}));
        assert_eq!(created["max_message_chars"], 2000);
        assert_eq!(created["session_ttl_seconds"], 172_800);
        assert_eq!(created["services"][0]["currency"], "USD");

        let got: Value = app.admin(Method::GET, "/api/v1/admin/orgs/acme").send().await.unwrap().json().await.unwrap();
        assert_eq!(got, created);
    }
}

backend_test! {
    async fn creating_an_existing_id_is_a_conflict(backend: Backend) {
        let app = spawn_app(backend).await;
        app.create_org("acme", json!({})).await;
        let res = app.admin(Method::POST, "/api/v1/admin/orgs").json(&json!({"id": "acme"})).send().await.unwrap();
        let (status, body) = problem(res).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("CONFLICT")));
    }
}

backend_test! {
    async fn invalid_fields_are_all_listed(backend: Backend) {
        let app = spawn_app(backend).await;
        let res = app
            .admin(Method::POST, "/api/v1/admin/orgs")
            .json(&json!({"id": "no spaces", "tier": "custom", "time_zone": "Mars/Base",
                          "allowed_origins": ["https://ok.example", "ok.example/path"],
                          "business_hours": {"mon": [{"open": "18:00", "close": "09:00"}]}}))
            .send().await.unwrap();
        let (status, body) = problem(res).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["code"], "VALIDATION_ERROR");
        let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["id", "rate_limit", "business_hours.mon[0].close", "time_zone", "allowed_origins[1]"]);
    }
}

backend_test! {
    async fn orgs_are_listed_newest_first_with_pagination(backend: Backend) {
        let app = spawn_app(backend).await;
        for id in ["a1", "a2", "a3"] {
            app.create_org(id, json!({})).await;
        }
        let page: Value = app.admin(Method::GET, "/api/v1/admin/orgs?limit=2").send().await.unwrap().json().await.unwrap();
        let ids: Vec<&str> = page["items"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["a3", "a2"]);
        assert_eq!((page["total"].as_i64(), page["has_more"].as_bool()), (Some(3), Some(true)));
        let page: Value = app.admin(Method::GET, "/api/v1/admin/orgs?limit=2&offset=2").send().await.unwrap().json().await.unwrap();
        assert_eq!(page["items"][0]["id"], "a1");
        assert_eq!(page["has_more"], false);

        let res = app.admin(Method::GET, "/api/v1/admin/orgs?limit=0").send().await.unwrap();
        let (status, body) = problem(res).await;
        assert_eq!((status, body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("limit")));
    }
}

backend_test! {
    async fn updates_apply_only_given_fields_and_stale_versions_fail_their_precondition(backend: Backend) {
        let app = spawn_app(backend).await;
        app.create_org("acme", json!({"system_prompt": "Be nice."})).await;

        let res = app.admin(Method::PATCH, "/api/v1/admin/orgs/acme")
            .header("If-Match", "\"1\"")
            .json(&json!({"name": "Acme Two", "tier": "premium"}))
            .send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["etag"], "\"2\"");
        let org: Value = res.json().await.unwrap();
        assert_eq!((org["name"].as_str(), org["tier"].as_str()), (Some("Acme Two"), Some("premium")));
        assert_eq!(org["rate_limit"]["requests"], 2000);
        assert_eq!(org["system_prompt"], "Be nice.", "untouched fields keep their value");

        // Someone still holding version 1 must not overwrite version 2.
        let res = app.admin(Method::PATCH, "/api/v1/admin/orgs/acme")
            .header("If-Match", "\"1\"").json(&json!({"name": "Lost update"})).send().await.unwrap();
        let (status, body) = problem(res).await;
        // RFC 9110: a failed If-Match is 412 Precondition Failed, not 409.
        assert_eq!((status, body["code"].as_str()), (StatusCode::PRECONDITION_FAILED, Some("PRECONDITION_FAILED")));
        assert!(body["detail"].as_str().unwrap().contains("version 2"), "{body}");
        let res = app.admin(Method::PATCH, "/api/v1/admin/orgs/acme")
            .json(&json!({"name": "Lost update", "version": 1})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
        // A weak ETag of the current version passes; nothing was lost.
        let org: Value = app.admin(Method::GET, "/api/v1/admin/orgs/acme").send().await.unwrap().json().await.unwrap();
        assert_eq!(org["name"], "Acme Two");

        let res = app.admin(Method::PATCH, "/api/v1/admin/orgs/acme")
            .json(&json!({"version": 2, "tier": "custom", "rate_limit": {"requests": 50, "window_seconds": 60}}))
            .send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let org: Value = res.json().await.unwrap();
        assert_eq!((org["version"].as_i64(), org["rate_limit"]["requests"].as_i64()), (Some(3), Some(50)));
        assert_eq!(org["name"], "Acme Two");

        // A change that changes nothing writes nothing: the version (and ETag) stay.
        let res = app.admin(Method::PATCH, "/api/v1/admin/orgs/acme").json(&json!({"name": "Acme Two"})).send().await.unwrap();
        assert_eq!(res.headers()["etag"], "\"3\"");
    }
}

backend_test! {
    async fn unknown_fields_and_unknown_orgs_are_refused(backend: Backend) {
        let app = spawn_app(backend).await;
        app.create_org("acme", json!({})).await;
        let res = app.admin(Method::PATCH, "/api/v1/admin/orgs/acme").json(&json!({"sytem_prompt": "typo"})).send().await.unwrap();
        let (status, body) = problem(res).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["detail"].as_str().unwrap().contains("sytem_prompt"), "{body}");

        let res = app.admin(Method::GET, "/api/v1/admin/orgs/nobody").send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
        let res = app.admin(Method::PATCH, "/api/v1/admin/orgs/nobody").json(&json!({"name": "x"})).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
    }
}

backend_test! {
    async fn a_deactivated_orgs_keys_and_tokens_get_org_inactive(backend: Backend) {
        let app = spawn_app(backend).await;
        let key = app.org_with_key("acme").await;
        let token = app.mint_token(&key, "visitor-1").await;
        assert_eq!(app.me_with_key(&key).await.status(), StatusCode::OK);

        let res = app.admin(Method::POST, "/api/v1/admin/orgs/acme/deactivate").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.json::<Value>().await.unwrap()["active"], false);

        for res in [app.me_with_key(&key).await, app.me_with_token(&token).await] {
            let (status, body) = problem(res).await;
            assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("ORG_INACTIVE")));
        }

        let res = app.admin(Method::PATCH, "/api/v1/admin/orgs/acme").json(&json!({"active": true})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(app.me_with_key(&key).await.status(), StatusCode::OK);
    }
}

backend_test! {
    async fn the_admin_api_needs_the_admin_token(backend: Backend) {
        let app = spawn_app(backend).await;
        let res = app.get("/api/v1/admin/orgs").send().await.unwrap();
        let (status, _) = problem(res).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let res = app.get("/api/v1/admin/orgs").bearer_auth("wrong").send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::UNAUTHORIZED);
        // An org's API key is no admin credential.
        let key = app.org_with_key("acme").await;
        let res = app.get("/api/v1/admin/orgs").bearer_auth(&key).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::UNAUTHORIZED);
    }
}

backend_test! {
    async fn without_admin_token_the_admin_api_is_disabled_and_says_so(backend: Backend) {
        let app = spawn_app_with(backend, |s| s.admin_token = None).await;
        let res = app.get("/api/v1/admin/orgs").bearer_auth("anything").send().await.unwrap();
        let (status, body) = problem(res).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body["detail"].as_str().unwrap().contains("ADMIN_TOKEN"), "{body}");
    }
}

backend_test! {
    async fn the_readme_creates_an_organisation_that_has_services_to_book(backend: Backend) {
        // The walk-through's body, read from the README itself so the two cannot drift apart.
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let start = readme.find(r#"-d '{"id": "acme""#).expect("the README creates acme") + 4;
        let end = start + readme[start..].find("}'").unwrap() + 1;
        let body: Value = serde_json::from_str(&readme[start..end]).unwrap();
        let app = spawn_app(backend).await;
        let res = app.admin(Method::POST, "/api/v1/admin/orgs").json(&body).send().await.unwrap();
        let org = created(res).await;
        assert_eq!(org["services"].as_array().unwrap().len(), 2, "{org}");
        assert_eq!(org["business_hours"]["wed"].as_array().unwrap().len(), 2, "{org}");
        assert_eq!(org["business_hours"]["sun"], json!([]));
    }
}
