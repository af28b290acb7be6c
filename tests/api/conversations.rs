//! The conversations API: CRUD, pagination, soft deletion, messages, ownership.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend_test;
use crate::helpers::*;
use agentd::agent::scripted::{ScriptedModel, call, text};

async fn setup(backend: Backend) -> (TestApp, ScriptedModel, String) {
    let mock = ScriptedModel::default();
    let app = spawn_app_with_model(backend, &mock, |_| {}).await;
    let key = booking_org(&app, "clinic", json!({})).await;
    (app, mock, key)
}

fn req(app: &TestApp, method: Method, path: &str, key: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .header("X-API-Key", key)
}

backend_test! {
    async fn conversations_are_created_listed_changed_and_soft_deleted(backend: Backend) {
        let (app, _mock, key) = setup(backend).await;
        let res = req(&app, Method::POST, "/api/v1/conversations", &key).json(&json!({})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let first: Value = res.json().await.unwrap();
        assert!(first["title"].as_str().unwrap().starts_with("Chat "), "{first}");
        assert_eq!((first["message_count"].as_i64(), first["archived"].as_bool()), (Some(0), Some(false)));
        for i in 2..=3 {
            let res = req(&app, Method::POST, "/api/v1/conversations", &key)
                .json(&json!({"title": format!("Conv {i}"), "metadata": {"order": i}})).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::CREATED);
        }
        let page: Value = req(&app, Method::GET, "/api/v1/conversations?limit=2", &key).send().await.unwrap().json().await.unwrap();
        let titles: Vec<&str> = page["items"].as_array().unwrap().iter().map(|c| c["title"].as_str().unwrap()).collect();
        assert_eq!(titles, ["Conv 3", "Conv 2"]);
        assert_eq!((page["total"].as_i64(), page["has_more"].as_bool()), (Some(3), Some(true)));

        let id = first["id"].as_str().unwrap();
        let res = req(&app, Method::PATCH, &format!("/api/v1/conversations/{id}"), &key)
            .json(&json!({"title": "Renamed", "archived": true, "metadata": {"k": "v"}})).send().await.unwrap();
        let changed: Value = res.json().await.unwrap();
        assert_eq!((changed["title"].as_str(), changed["archived"].as_bool()), (Some("Renamed"), Some(true)));
        assert_eq!(changed["metadata"]["k"], "v");
        let archived: Value = req(&app, Method::GET, "/api/v1/conversations?archived=true", &key).send().await.unwrap().json().await.unwrap();
        assert_eq!(archived["total"], 1);

        let res = req(&app, Method::PATCH, &format!("/api/v1/conversations/{id}"), &key).json(&json!({"metadata": [1]})).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::UNPROCESSABLE_ENTITY);

        let res = req(&app, Method::DELETE, &format!("/api/v1/conversations/{id}"), &key).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        for m in [Method::GET, Method::DELETE] {
            let res = req(&app, m, &format!("/api/v1/conversations/{id}"), &key).send().await.unwrap();
            assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
        }
        let page: Value = req(&app, Method::GET, "/api/v1/conversations", &key).send().await.unwrap().json().await.unwrap();
        assert_eq!(page["total"], 2);
        let res = req(&app, Method::GET, "/api/v1/conversations?limit=101", &key).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

backend_test! {
    async fn posting_a_message_runs_a_turn_and_messages_page_newest_first(backend: Backend) {
        let (app, mock, key) = setup(backend).await;
        let conv: Value = req(&app, Method::POST, "/api/v1/conversations", &key).json(&json!({"title": "T"})).send().await.unwrap().json().await.unwrap();
        let id = conv["id"].as_str().unwrap();
        mock.script([call("c1", "add_task", json!({"title": "Buy milk"})), text("Added Buy milk.")]);
        let res = req(&app, Method::POST, &format!("/api/v1/conversations/{id}/messages"), &key)
            .json(&json!({"message": "add a task to buy milk"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let reply: Value = res.json().await.unwrap();
        assert_eq!((reply["role"].as_str(), reply["content"].as_str()), (Some("assistant"), Some("Added Buy milk.")));
        assert_eq!(reply["tool_calls"][0]["name"], "add_task");
        assert_eq!(reply["tool_calls"][0]["arguments"]["title"], "Buy milk");
        assert_eq!(reply["tool_results"][0]["result"]["task"]["title"], "Buy milk");

        let got: Value = req(&app, Method::GET, &format!("/api/v1/conversations/{id}"), &key).send().await.unwrap().json().await.unwrap();
        assert_eq!(got["message_count"], 4);
        assert!(got["last_message_at"].is_string());

        let page: Value = req(&app, Method::GET, &format!("/api/v1/conversations/{id}/messages?limit=3"), &key).send().await.unwrap().json().await.unwrap();
        let roles: Vec<&str> = page["items"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["assistant", "tool", "assistant"]);
        assert_eq!((page["total"].as_i64(), page["has_more"].as_bool()), (Some(4), Some(true)));

        let mid = page["items"][0]["id"].as_str().unwrap();
        let res = req(&app, Method::DELETE, &format!("/api/v1/conversations/{id}/messages/{mid}"), &key).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let res = req(&app, Method::DELETE, &format!("/api/v1/conversations/{id}/messages/{mid}"), &key).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
        let page: Value = req(&app, Method::GET, &format!("/api/v1/conversations/{id}/messages"), &key).send().await.unwrap().json().await.unwrap();
        assert_eq!(page["total"], 3);

        // Deleting the conversation hides its messages too.
        req(&app, Method::DELETE, &format!("/api/v1/conversations/{id}"), &key).send().await.unwrap();
        let res = req(&app, Method::GET, &format!("/api/v1/conversations/{id}/messages"), &key).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
        let res = req(&app, Method::POST, &format!("/api/v1/conversations/{id}/messages"), &key).json(&json!({"message": "hi"})).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
    }
}

backend_test! {
    async fn end_users_see_only_their_own_conversations(backend: Backend) {
        let (app, _mock, key) = setup(backend).await;
        let alice = app.mint_token(&key, "alice").await;
        let bob = app.mint_token(&key, "bob").await;
        let mine: Value = app.post("/api/v1/conversations").bearer_auth(&alice).json(&json!({"title": "Alice's"})).send().await.unwrap().json().await.unwrap();
        app.post("/api/v1/conversations").bearer_auth(&bob).json(&json!({"title": "Bob's"})).send().await.unwrap();
        assert_eq!(mine["user_id"], "alice");

        let list: Value = app.get("/api/v1/conversations").bearer_auth(&alice).send().await.unwrap().json().await.unwrap();
        assert_eq!(list["total"], 1);
        assert_eq!(list["items"][0]["title"], "Alice's");
        // The API key sees the whole org.
        let list: Value = req(&app, Method::GET, "/api/v1/conversations", &key).send().await.unwrap().json().await.unwrap();
        assert_eq!(list["total"], 2);

        let id = mine["id"].as_str().unwrap();
        for (m, body) in [(Method::GET, None), (Method::PATCH, Some(json!({"title": "x"}))), (Method::DELETE, None)] {
            let mut r = app.client.request(m.clone(), app.url(&format!("/api/v1/conversations/{id}"))).bearer_auth(&bob);
            if let Some(b) = body { r = r.json(&b); }
            assert_eq!(problem(r.send().await.unwrap()).await.0, StatusCode::FORBIDDEN, "{m}");
        }
        let res = app.post(&format!("/api/v1/conversations/{id}/messages")).bearer_auth(&bob).json(&json!({"message": "hi"})).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::FORBIDDEN);

        // Another org's key cannot see it at all.
        let other = app.org_with_key("other").await;
        let res = req(&app, Method::GET, &format!("/api/v1/conversations/{id}"), &other).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
    }
}
