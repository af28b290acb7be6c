//! The agent mailbox (issue 12, docs/mailbox.md): agent identities and tokens, messages and
//! search, on both backends, over HTTP.

use base64::Engine;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::backend_test;
use crate::helpers::*;

/// Registers agent `handle` in `org` through the admin API; returns its secret.
async fn register(app: &TestApp, org: &str, handle: &str, display_name: &str) -> String {
    let res = app
        .admin(Method::POST, &format!("/api/v1/admin/orgs/{org}/agents"))
        .json(&json!({"handle": handle, "display_name": display_name, "description": "test agent"}))
        .send()
        .await
        .unwrap();
    created(res).await["agent_secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Logs an agent in with its secret (no API key); returns the whole answer.
async fn login(app: &TestApp, org: &str, handle: &str, secret: &str) -> reqwest::Response {
    app.post("/api/v1/auth/token")
        .json(&json!({"agent_handle": handle, "agent_secret": secret, "org_id": org}))
        .send()
        .await
        .unwrap()
}

/// An agent token for `handle`.
async fn agent_token(app: &TestApp, org: &str, handle: &str, secret: &str) -> String {
    let res = login(app, org, handle, secret).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// The claims of a JWT (not verified: the server did that).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A request as an agent (bearer token).
fn as_agent(app: &TestApp, method: Method, path: &str, token: &str) -> RequestBuilder {
    app.client.request(method, app.url(path)).bearer_auth(token)
}

backend_test! {
    async fn an_agent_registered_by_the_admin_logs_in_with_its_secret_and_gets_a_token_naming_it(backend: Backend) {
        let app = spawn_app(backend).await;
        let key = app.org_with_key("acme").await;
        let res = app
            .admin(Method::POST, "/api/v1/admin/orgs/acme/agents")
            .json(&json!({"handle": "billing-bot", "display_name": "Billing", "description": "Invoices"}))
            .send().await.unwrap();
        let agent = created(res).await;
        let secret = agent["agent_secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("as_"), "{agent}");
        assert_eq!((agent["handle"].as_str(), agent["active"].as_bool()), (Some("billing-bot"), Some(true)));

        // The secret is shown once: never in a listing or a read.
        let list: Value = app.admin(Method::GET, "/api/v1/admin/orgs/acme/agents").send().await.unwrap().json().await.unwrap();
        assert_eq!(list["items"][0]["handle"], "billing-bot");
        assert!(!list.to_string().contains(&secret) && list["items"][0].get("agent_secret").is_none());
        let one: Value = app.admin(Method::GET, "/api/v1/admin/orgs/acme/agents/billing-bot").send().await.unwrap().json().await.unwrap();
        assert_eq!(one["display_name"], "Billing");

        // With the org and the secret, no API key.
        let res = login(&app, "acme", "billing-bot", &secret).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        assert_eq!((body["token_type"].as_str(), body["expires_in"].as_u64()), (Some("bearer"), Some(3600)));
        let token = body["access_token"].as_str().unwrap();
        let c = claims(token);
        assert_eq!((c["agent_handle"].as_str(), c["agent_display_name"].as_str(), c["org"].as_str()),
            (Some("billing-bot"), Some("Billing"), Some("acme")));
        let me: Value = as_agent(&app, Method::GET, "/api/v1/agents/me", token).send().await.unwrap().json().await.unwrap();
        assert_eq!(me, json!({"org_id": "acme", "agent_handle": "billing-bot", "agent_display_name": "Billing"}));

        // With an API key instead of the org (ttl chosen).
        let res = app.post("/api/v1/auth/token").header("X-API-Key", &key)
            .json(&json!({"agent_handle": "billing-bot", "agent_secret": secret, "ttl_seconds": 600}))
            .send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["expires_in"], 600);
        assert_eq!(claims(body["access_token"].as_str().unwrap())["agent_handle"], "billing-bot");
    }
}

backend_test! {
    async fn wrong_secrets_unknown_handles_and_bad_registrations_are_refused(backend: Backend) {
        let app = spawn_app(backend).await;
        let key = app.org_with_key("acme").await;
        app.org_with_key("other").await;
        let secret = register(&app, "acme", "planner", "Planner").await;

        for (org, handle, secret) in [
            ("acme", "planner", "as_wrong"),
            ("acme", "nobody", secret.as_str()),
            ("other", "planner", secret.as_str()),
            ("missing-org", "planner", secret.as_str()),
        ] {
            let (status, body) = problem(login(&app, org, handle, secret).await).await;
            assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHORIZED")), "{org}/{handle}");
        }
        // No credentials and no agent login: 401, like every protected route.
        let (status, _) = problem(app.post("/api/v1/auth/token").send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = problem(app.post("/api/v1/auth/token").json(&json!({"user_id": "u"})).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // An agent login names its organisation, and only one.
        let (status, body) = problem(app.post("/api/v1/auth/token")
            .json(&json!({"agent_handle": "planner", "agent_secret": secret})).send().await.unwrap()).await;
        assert_eq!((status, body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("org_id")));
        let (status, body) = problem(app.post("/api/v1/auth/token").header("X-API-Key", &key)
            .json(&json!({"agent_handle": "planner", "agent_secret": secret, "org_id": "other"})).send().await.unwrap()).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("ORG_MISMATCH")));
        let (status, body) = problem(app.post("/api/v1/auth/token").header("X-API-Key", &key)
            .json(&json!({"agent_handle": "planner", "agent_secret": secret, "user_id": "u"})).send().await.unwrap()).await;
        assert_eq!((status, body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("user_id")));

        // Handles: 1–64 of a-z0-9._- and unique in the org (another org may reuse one).
        for bad in ["Planner", "with space", "", &"x".repeat(65)] {
            let res = app.admin(Method::POST, "/api/v1/admin/orgs/acme/agents").json(&json!({"handle": bad})).send().await.unwrap();
            let (status, body) = problem(res).await;
            assert_eq!((status, body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("handle")), "{bad:?}");
        }
        let res = app.admin(Method::POST, "/api/v1/admin/orgs/acme/agents").json(&json!({"handle": "planner"})).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::CONFLICT);
        register(&app, "other", "planner", "Other planner").await;
        let res = app.admin(Method::POST, "/api/v1/admin/orgs/nope/agents").json(&json!({"handle": "x"})).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
    }
}

backend_test! {
    async fn rotating_a_secret_ends_the_old_secret_and_its_tokens_and_deactivation_ends_the_agent(backend: Backend) {
        let app = spawn_app(backend).await;
        app.org_with_key("acme").await;
        let old = register(&app, "acme", "planner", "Planner").await;
        let old_token = agent_token(&app, "acme", "planner", &old).await;

        let res = app.admin(Method::POST, "/api/v1/admin/orgs/acme/agents/planner/rotate-secret").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let rotated: Value = res.json().await.unwrap();
        let new = rotated["agent_secret"].as_str().unwrap().to_owned();
        assert_ne!(new, old);
        assert_eq!(rotated["secret_version"], 2);

        assert_eq!(login(&app, "acme", "planner", &old).await.status(), StatusCode::UNAUTHORIZED);
        let res = as_agent(&app, Method::GET, "/api/v1/agents/me", &old_token).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::UNAUTHORIZED);
        let token = agent_token(&app, "acme", "planner", &new).await;
        assert_eq!(as_agent(&app, Method::GET, "/api/v1/agents/me", &token).send().await.unwrap().status(), StatusCode::OK);

        // Deactivated: its token and its secret stop working; reactivated, they work again.
        let res = app.admin(Method::PATCH, "/api/v1/admin/orgs/acme/agents/planner")
            .json(&json!({"active": false, "display_name": "Old planner"})).send().await.unwrap();
        let body: Value = res.json().await.unwrap();
        assert_eq!((body["active"].as_bool(), body["display_name"].as_str()), (Some(false), Some("Old planner")));
        let res = as_agent(&app, Method::GET, "/api/v1/agents/me", &token).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(login(&app, "acme", "planner", &new).await.status(), StatusCode::UNAUTHORIZED);
        app.admin(Method::PATCH, "/api/v1/admin/orgs/acme/agents/planner").json(&json!({"active": true})).send().await.unwrap();
        assert_eq!(as_agent(&app, Method::GET, "/api/v1/agents/me", &token).send().await.unwrap().status(), StatusCode::OK);
        let res = app.admin(Method::POST, "/api/v1/admin/orgs/acme/agents/nobody/rotate-secret").send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
    }
}

backend_test! {
    async fn an_api_key_acts_as_a_named_agent_and_agent_tokens_open_only_the_mailbox(backend: Backend) {
        let app = spawn_app(backend).await;
        let key = app.org_with_key("acme").await;
        let other_key = app.org_with_key("other").await;
        let secret = register(&app, "acme", "planner", "Planner").await;

        let res = app.get("/api/v1/agents/me").header("X-API-Key", &key).header("X-Agent-Handle", "planner").send().await.unwrap();
        let me: Value = res.json().await.unwrap();
        assert_eq!(me["agent_handle"], "planner");
        // Without a handle, with an unknown one, or another org's: 403.
        for (key, handle) in [(&key, None), (&key, Some("nobody")), (&other_key, Some("planner"))] {
            let mut req = app.get("/api/v1/agents/me").header("X-API-Key", key);
            if let Some(h) = handle {
                req = req.header("X-Agent-Handle", h);
            }
            let (status, body) = problem(req.send().await.unwrap()).await;
            assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")), "{handle:?}");
        }
        // An end-user token does not open the mailbox.
        let user_token = app.mint_token(&key, "visitor").await;
        let res = as_agent(&app, Method::GET, "/api/v1/agents/me", &user_token).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::FORBIDDEN);
        // An agent token opens nothing but the mailbox, and cannot mint tokens.
        let token = agent_token(&app, "acme", "planner", &secret).await;
        let (status, _) = problem(app.me_with_token(&token).await).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let res = as_agent(&app, Method::GET, "/api/v1/conversations", &token).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::FORBIDDEN);
        let res = as_agent(&app, Method::POST, "/api/v1/auth/token", &token).json(&json!({"user_id": "u"})).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::FORBIDDEN);
        // The token's identity wins: naming another agent beside it is refused.
        register(&app, "acme", "billing", "Billing").await;
        let res = as_agent(&app, Method::GET, "/api/v1/agents/me", &token).header("X-Agent-Handle", "billing").send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::FORBIDDEN);
    }
}

#[test]
fn the_cli_registers_an_agent_whose_secret_logs_in() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/cli.db?mode=rwc", dir.path().display());
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentd"))
            .current_dir(dir.path())
            .env_clear()
            .env("DATABASE_URL", &db)
            .env("JWT_SECRET", JWT_SECRET)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    cli(&["orgs", "create", "acme", "--name", "Acme"]);
    let created = cli(&[
        "agents",
        "create",
        "--org",
        "acme",
        "--handle",
        "planner",
        "--display-name",
        "Planner",
    ]);
    let first = created.lines().last().unwrap().trim().to_owned();
    assert!(first.starts_with("as_"), "{created}");
    let listing = cli(&["agents", "list", "--org", "acme"]);
    assert!(
        listing.contains("planner") && listing.contains("active") && !listing.contains(&first),
        "{listing}"
    );
    let rotated = cli(&["agents", "rotate-secret", "--org", "acme", "planner"]);
    let secret = rotated.lines().last().unwrap().trim().to_owned();
    assert!(secret.starts_with("as_") && secret != first, "{rotated}");
    let updated: Value = serde_json::from_str(&cli(&[
        "agents",
        "update",
        "--org",
        "acme",
        "planner",
        "--description",
        "Plans",
    ]))
    .unwrap();
    assert_eq!(updated["description"], "Plans");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let app = spawn_on_database(&db, |_| {}).await;
        assert_eq!(
            login(&app, "acme", "planner", &first).await.status(),
            StatusCode::UNAUTHORIZED
        );
        let token = agent_token(&app, "acme", "planner", &secret).await;
        assert_eq!(claims(&token)["agent_display_name"], "Planner");
    });
}

/// An org with agents `handles` (display name = handle); returns their tokens, in order.
async fn agents(app: &TestApp, org: &str, handles: &[&str]) -> Vec<String> {
    if app
        .admin(Method::GET, &format!("/api/v1/admin/orgs/{org}"))
        .send()
        .await
        .unwrap()
        .status()
        == StatusCode::NOT_FOUND
    {
        app.create_org(org, json!({})).await;
    }
    let mut tokens = Vec::new();
    for h in handles {
        let secret = register(app, org, h, h).await;
        tokens.push(agent_token(app, org, h, &secret).await);
    }
    tokens
}

async fn send(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    created(
        as_agent(app, Method::POST, path, token)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn get_json(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    let res = as_agent(app, Method::GET, path, token)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap())
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

backend_test! {
    async fn a_message_starts_a_thread_that_replies_join_and_only_its_sender_and_recipients_see(backend: Backend) {
        let app = spawn_app(backend).await;
        let t = agents(&app, "acme", &["planner", "billing", "support"]).await;
        let (planner, billing, support) = (&t[0], &t[1], &t[2]);

        let m = send(&app, planner, "/api/v1/messages", json!({
            "to_handles": ["billing"], "subject": "Invoice 2291", "body": "Charged twice?", "tags": ["billing", "billing", "urgent"]})).await;
        assert_eq!((m["from_handle"].as_str(), m["to_handles"].clone(), m["tags"].clone()),
            (Some("planner"), json!(["billing"]), json!(["billing", "urgent"])));
        let id = m["id"].as_str().unwrap();
        let thread = m["thread_id"].as_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7, "ids sort by time");

        // Sender and recipient see it; a third agent gets 404, as for an unknown id.
        for token in [planner, billing] {
            let (status, got) = get_json(&app, token, &format!("/api/v1/messages/{id}")).await;
            assert_eq!((status, got["body"].as_str()), (StatusCode::OK, Some("Charged twice?")));
        }
        let res = as_agent(&app, Method::GET, &format!("/api/v1/messages/{id}"), support).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
        let res = as_agent(&app, Method::POST, &format!("/api/v1/messages/{id}/reply"), support).json(&json!({"body": "me too"})).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);

        // The recipient replies: same thread, to the sender, subject "Re: …".
        let r = send(&app, billing, &format!("/api/v1/messages/{id}/reply"), json!({"body": "Refunded."})).await;
        assert_eq!((r["thread_id"].as_str(), r["in_reply_to"].as_str(), r["subject"].as_str(), r["to_handles"].clone()),
            (Some(thread), Some(id), Some("Re: Invoice 2291"), json!(["planner"])));
        assert!(r["id"].as_str().unwrap() > id, "ids are sortable");

        // The thread's messages, newest first, with pagination.
        let (_, page) = get_json(&app, planner, &format!("/api/v1/messages?thread_id={thread}&limit=1")).await;
        assert_eq!(ids(&page["messages"]), [r["id"].as_str().unwrap()]);
        assert_eq!(page["pagination"], json!({"offset": 0, "limit": 1, "total": 2, "has_more": true}));
        let (_, page) = get_json(&app, planner, &format!("/api/v1/messages?thread_id={thread}&limit=1&offset=1")).await;
        assert_eq!(ids(&page["messages"]), [id]);
        assert_eq!(page["pagination"]["has_more"], false);
        // Another agent's thread does not exist for it.
        let res = as_agent(&app, Method::GET, &format!("/api/v1/messages?thread_id={thread}"), support).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
        let (_, page) = get_json(&app, support, "/api/v1/messages").await;
        assert_eq!(page["pagination"]["total"], 0);
    }
}

backend_test! {
    async fn broadcast_makes_a_thread_per_recipient_and_group_one_thread_for_all(backend: Backend) {
        let app = spawn_app(backend).await;
        let t = agents(&app, "acme", &["planner", "a", "b", "c"]).await;
        let body = json!({"to_handles": ["a", "b", "c"], "subject": "Standup", "body": "Status, please."});

        let b = send(&app, &t[0], "/api/v1/messages/broadcast", body.clone()).await;
        assert_eq!(b["count"], 3);
        let threads: std::collections::BTreeSet<&str> = b["messages"].as_array().unwrap().iter().map(|m| m["thread_id"].as_str().unwrap()).collect();
        assert_eq!(threads.len(), 3);
        // A reply in a broadcast thread reaches the sender only.
        let to_a = b["messages"].as_array().unwrap().iter().find(|m| m["to_handles"] == json!(["a"])).unwrap();
        let r = send(&app, &t[1], &format!("/api/v1/messages/{}/reply", to_a["id"].as_str().unwrap()), json!({"body": "Done."})).await;
        assert_eq!(r["to_handles"], json!(["planner"]));
        let (_, page) = get_json(&app, &t[2], "/api/v1/messages").await;
        assert_eq!(page["pagination"]["total"], 1, "b sees its own broadcast copy only");

        let g = send(&app, &t[0], "/api/v1/messages/group", body).await;
        assert_eq!(g["to_handles"], json!(["a", "b", "c"]));
        // A reply in a group thread goes to every other participant.
        let r = send(&app, &t[2], &format!("/api/v1/messages/{}/reply", g["id"].as_str().unwrap()), json!({"body": "Blocked.", "subject": "Blocked"})).await;
        assert_eq!((r["to_handles"].clone(), r["subject"].as_str()), (json!(["a", "c", "planner"]), Some("Blocked")));
        let (status, _) = get_json(&app, &t[1], &format!("/api/v1/messages/{}", r["id"].as_str().unwrap())).await;
        assert_eq!(status, StatusCode::OK);
    }
}

backend_test! {
    async fn recipients_must_be_active_agents_of_the_senders_org_and_limits_hold(backend: Backend) {
        let app = spawn_app(backend).await;
        let t = agents(&app, "acme", &["planner", "billing", "retired"]).await;
        agents(&app, "other", &["outsider"]).await;
        app.admin(Method::PATCH, "/api/v1/admin/orgs/acme/agents/retired").json(&json!({"active": false})).send().await.unwrap();
        let post = |body: Value| as_agent(&app, Method::POST, "/api/v1/messages", &t[0]).json(&body).send();

        for (to, field) in [(json!(["nobody"]), "to_handles[0]"), (json!(["billing", "outsider"]), "to_handles[1]"),
                            (json!(["retired"]), "to_handles[0]"), (json!(["Bad Handle"]), "to_handles[0]"), (json!([]), "to_handles")] {
            let (status, body) = problem(post(json!({"to_handles": to, "subject": "s", "body": "b"})).await.unwrap()).await;
            assert_eq!((status, body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{to}");
        }
        let many: Vec<String> = (0..51).map(|i| format!("x{i}")).collect();
        let cases = [
            (json!({"to_handles": many, "subject": "s", "body": "b"}), "to_handles"),
            (json!({"to_handles": ["billing"], "subject": "s".repeat(201), "body": "b"}), "subject"),
            (json!({"to_handles": ["billing"], "subject": "s", "body": "b".repeat(50_001)}), "body"),
            (json!({"to_handles": ["billing"], "subject": "s", "body": "  "}), "body"),
            (json!({"to_handles": ["billing"], "subject": "s", "body": "b", "tags": vec!["t"; 21]}), "tags"),
            (json!({"to_handles": ["billing"], "subject": "s", "body": "b", "tags": ["t".repeat(51)]}), "tags[0]"),
        ];
        for (body, field) in cases {
            let res = post(body).await.unwrap();
            if res.status() == StatusCode::PAYLOAD_TOO_LARGE {
                continue;
            }
            let (status, body) = problem(res).await;
            assert_eq!((status, body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)));
        }
        // At the limits: 50 000 characters of body, 200 of subject, 20 tags of 50.
        let ok = post(json!({"to_handles": ["billing"], "subject": "s".repeat(200), "body": "é".repeat(5_000) + &"b".repeat(45_000),
            "tags": (0..20).map(|i| format!("{i}{}", "t".repeat(48))).collect::<Vec<_>>()})).await.unwrap();
        assert_eq!(ok.status(), StatusCode::CREATED);
        // An agent of another org cannot see acme's messages, whatever the id.
        let id = created(ok).await["id"].as_str().unwrap().to_owned();
        let outsider = agents(&app, "other", &["spy"]).await;
        let (status, _) = get_json(&app, &outsider[0], &format!("/api/v1/messages/{id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // A reply to an agent that was deactivated meanwhile is refused.
        let m = send(&app, &t[0], "/api/v1/messages", json!({"to_handles": ["billing"], "subject": "s", "body": "b"})).await;
        app.admin(Method::PATCH, "/api/v1/admin/orgs/acme/agents/planner").json(&json!({"active": false})).send().await.unwrap();
        let res = as_agent(&app, Method::POST, &format!("/api/v1/messages/{}/reply", m["id"].as_str().unwrap()), &t[1]).json(&json!({"body": "ok"})).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

backend_test! {
    async fn search_finds_every_word_ranks_subject_matches_first_and_filters(backend: Backend) {
        let app = spawn_app(backend).await;
        let t = agents(&app, "acme", &["planner", "billing", "support"]).await;
        let (planner, billing, support) = (&t[0], &t[1], &t[2]);
        let body_once = send(&app, planner, "/api/v1/messages", json!({"to_handles": ["billing"], "subject": "Question", "body": "The refund for order 77 is late."})).await;
        let in_subject = send(&app, planner, "/api/v1/messages", json!({"to_handles": ["billing"], "subject": "Refund order 78", "body": "See attached."})).await;
        let body_thrice = send(&app, billing, "/api/v1/messages", json!({"to_handles": ["planner"], "subject": "Re", "body": "Refund, refund, refund: order 79."})).await;
        let _unrelated = send(&app, planner, "/api/v1/messages", json!({"to_handles": ["billing"], "subject": "Lunch", "body": "Pizza?"})).await;
        let private = send(&app, support, "/api/v1/messages", json!({"to_handles": ["support"], "subject": "Refund order notes", "body": "mine"})).await;
        let id = |m: &Value| m["id"].as_str().unwrap().to_owned();

        let (status, r) = get_json(&app, planner, "/api/v1/messages/search?query=REFUND%20order").await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!((r["query"].as_str(), r["count"].as_u64()), (Some("REFUND order"), Some(3)));
        assert_eq!(ids(&r["messages"]), [id(&in_subject), id(&body_thrice), id(&body_once)], "subject first, then by frequency");

        let (_, r) = get_json(&app, planner, "/api/v1/messages/search?query=refund&in_body=false").await;
        assert_eq!(ids(&r["messages"]), [id(&in_subject)]);
        let (_, r) = get_json(&app, planner, "/api/v1/messages/search?query=refund&in_subject=false").await;
        assert_eq!(ids(&r["messages"]), [id(&body_thrice), id(&body_once)]);
        let (_, r) = get_json(&app, planner, "/api/v1/messages/search?query=refund&from_handle=billing").await;
        assert_eq!(ids(&r["messages"]), [id(&body_thrice)]);
        let (_, r) = get_json(&app, planner, "/api/v1/messages/search?query=refund&to_handle=billing").await;
        assert_eq!(ids(&r["messages"]), [id(&in_subject), id(&body_once)]);
        let (_, r) = get_json(&app, planner, "/api/v1/messages/search?query=refund&limit=1").await;
        assert_eq!(ids(&r["messages"]), [id(&in_subject)]);
        // Every word must match; operators are plain words; others' mail is never found.
        let (_, r) = get_json(&app, planner, "/api/v1/messages/search?query=refund%20pizza").await;
        assert_eq!(r["count"], 0);
        let (_, r) = get_json(&app, planner, "/api/v1/messages/search?query=refund%20OR%20pizza").await;
        assert_eq!(r["count"], 0);
        let (_, r) = get_json(&app, planner, "/api/v1/messages/search?query=notes").await;
        assert_eq!(r["count"], 0);
        let (_, r) = get_json(&app, support, "/api/v1/messages/search?query=refund").await;
        assert_eq!(ids(&r["messages"]), [id(&private)]);
        let (_, r) = get_json(&app, support, "/api/v1/messages/search?query=%22refund*%22%20(order)%5E").await;
        assert_eq!(r["count"], 1, "{r}");

        for (q, field) in [("query=%20%2A%20", "query"), ("query=refund&in_subject=false&in_body=false", "in_subject"),
                           ("query=refund&limit=0", "limit"), ("query=refund&from_handle=Bad", "from_handle"), ("", "query")] {
            let res = as_agent(&app, Method::GET, &format!("/api/v1/messages/search?{q}"), planner).send().await.unwrap();
            let (status, body) = problem(res).await;
            assert_eq!((status, body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{q}");
        }
    }
}

backend_test! {
    async fn threads_list_by_activity_with_participants_and_only_participants_see_them(backend: Backend) {
        let app = spawn_app(backend).await;
        let t = agents(&app, "acme", &["planner", "billing", "support"]).await;
        let (planner, billing, support) = (&t[0], &t[1], &t[2]);
        let first = send(&app, planner, "/api/v1/messages", json!({"to_handles": ["billing"], "subject": "First", "body": "one"})).await;
        let second = send(&app, planner, "/api/v1/messages/group", json!({"to_handles": ["billing", "support"], "subject": "Second", "body": "two"})).await;
        let (t1, t2) = (first["thread_id"].as_str().unwrap(), second["thread_id"].as_str().unwrap());

        let (_, page) = get_json(&app, planner, "/api/v1/threads").await;
        assert_eq!(ids(&page["threads"]), [t2, t1], "most recent activity first");
        assert_eq!(page["pagination"], json!({"offset": 0, "limit": 20, "total": 2, "has_more": false}));
        assert_eq!(page["threads"][0]["participant_handles"], json!(["billing", "planner", "support"]));
        assert_eq!((page["threads"][0]["message_count"].as_i64(), page["threads"][0]["metadata"].clone()), (Some(1), json!({})));

        // A reply in the older thread makes it the most recent.
        let reply = send(&app, billing, &format!("/api/v1/threads/{t1}/reply"), json!({"body": "ack"})).await;
        assert_eq!((reply["in_reply_to"].as_str(), reply["to_handles"].clone()), (first["id"].as_str(), json!(["planner"])));
        let (_, page) = get_json(&app, planner, "/api/v1/threads?limit=1").await;
        assert_eq!(ids(&page["threads"]), [t1]);
        assert_eq!((page["threads"][0]["message_count"].as_i64(), page["pagination"]["has_more"].as_bool()), (Some(2), Some(true)));
        let (_, page) = get_json(&app, planner, "/api/v1/threads?limit=1&offset=1").await;
        assert_eq!(ids(&page["threads"]), [t2]);

        // The thread's messages, oldest first; a second reply answers the latest message.
        let again = send(&app, planner, &format!("/api/v1/threads/{t1}/reply"), json!({"body": "thanks"})).await;
        assert_eq!(again["in_reply_to"], reply["id"]);
        let (_, msgs) = get_json(&app, billing, &format!("/api/v1/threads/{t1}/messages")).await;
        assert_eq!(ids(&msgs["messages"]), [first["id"].as_str().unwrap(), reply["id"].as_str().unwrap(), again["id"].as_str().unwrap()]);
        assert_eq!(msgs["pagination"]["total"], 3);
        let (status, thread) = get_json(&app, billing, &format!("/api/v1/threads/{t1}")).await;
        assert_eq!((status, thread["subject"].as_str(), thread["created_by"].as_str()), (StatusCode::OK, Some("First"), Some("planner")));

        // Support takes no part in the first thread: 404 everywhere, as for a made-up id.
        for path in [format!("/api/v1/threads/{t1}"), format!("/api/v1/threads/{t1}/messages"), format!("/api/v1/threads/{t1}/metadata"),
                     format!("/api/v1/threads/{}", uuid::Uuid::now_v7())] {
            let res = as_agent(&app, Method::GET, &path, support).send().await.unwrap();
            assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND, "{path}");
        }
        for path in [format!("/api/v1/threads/{t1}/reply"), format!("/api/v1/threads/{t1}/archive")] {
            let res = as_agent(&app, Method::POST, &path, support).json(&json!({"body": "x"})).send().await.unwrap();
            assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND, "{path}");
        }
        let res = as_agent(&app, Method::PUT, &format!("/api/v1/threads/{t1}/metadata"), support).json(&json!({"key": "k", "value": 1})).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
        let (_, page) = get_json(&app, support, "/api/v1/threads").await;
        assert_eq!(ids(&page["threads"]), [t2]);
    }
}

backend_test! {
    async fn thread_metadata_is_shared_and_archiving_is_per_participant(backend: Backend) {
        let app = spawn_app(backend).await;
        let t = agents(&app, "acme", &["planner", "billing"]).await;
        let (planner, billing) = (&t[0], &t[1]);
        let m = send(&app, planner, "/api/v1/messages", json!({"to_handles": ["billing"], "subject": "Case", "body": "b"})).await;
        let thread = m["thread_id"].as_str().unwrap();
        let put = |token: &str, body: Value| as_agent(&app, Method::PUT, &format!("/api/v1/threads/{thread}/metadata"), token).json(&body).send();

        let res = put(planner, json!({"key": "ticket", "value": "T-1042"})).await.unwrap();
        let body: Value = res.json().await.unwrap();
        assert_eq!(body, json!({"thread_id": thread, "metadata": {"ticket": "T-1042"}}));
        put(billing, json!({"key": "priority", "value": {"level": 2, "tags": ["vip"]}})).await.unwrap();
        let (_, md) = get_json(&app, planner, &format!("/api/v1/threads/{thread}/metadata")).await;
        assert_eq!(md["metadata"], json!({"ticket": "T-1042", "priority": {"level": 2, "tags": ["vip"]}}));
        let (status, one) = get_json(&app, billing, &format!("/api/v1/threads/{thread}/metadata/ticket")).await;
        assert_eq!((status, one), (StatusCode::OK, json!({"id": "ticket", "key": "ticket", "value": "T-1042"})));
        // null removes a key.
        put(planner, json!({"key": "ticket", "value": null})).await.unwrap();
        let res = as_agent(&app, Method::GET, &format!("/api/v1/threads/{thread}/metadata/ticket"), planner).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
        let (_, th) = get_json(&app, billing, &format!("/api/v1/threads/{thread}")).await;
        assert_eq!(th["metadata"], json!({"priority": {"level": 2, "tags": ["vip"]}}));
        for (body, field) in [(json!({"key": "", "value": 1}), "key"), (json!({"key": "k".repeat(101), "value": 1}), "key"),
                              (json!({"key": "big", "value": "x".repeat(9000)}), "value"), (json!({"key": "k"}), "value")] {
            let (status, p) = problem(put(planner, body).await.unwrap()).await;
            assert_eq!((status, p["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)));
        }

        // Archived for the planner only.
        let res = as_agent(&app, Method::POST, &format!("/api/v1/threads/{thread}/archive"), planner).send().await.unwrap();
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["archived"], true);
        let (_, mine) = get_json(&app, planner, "/api/v1/threads?archived=false").await;
        assert_eq!(mine["pagination"]["total"], 0);
        let (_, mine) = get_json(&app, planner, "/api/v1/threads?archived=true").await;
        assert_eq!(ids(&mine["threads"]), [thread]);
        let (_, theirs) = get_json(&app, billing, "/api/v1/threads?archived=false").await;
        assert_eq!((ids(&theirs["threads"]), theirs["threads"][0]["archived"].as_bool()), (vec![thread.to_owned()], Some(false)));
        let (_, all) = get_json(&app, planner, "/api/v1/threads").await;
        assert_eq!(all["pagination"]["total"], 1);
        let res = as_agent(&app, Method::POST, &format!("/api/v1/threads/{thread}/unarchive"), planner).send().await.unwrap();
        assert_eq!(res.json::<Value>().await.unwrap()["archived"], false);
        let (_, mine) = get_json(&app, planner, "/api/v1/threads?archived=false").await;
        assert_eq!(ids(&mine["threads"]), [thread]);
    }
}

backend_test! {
    async fn contacts_are_an_org_address_book_with_versions_soft_deletion_tags_and_search(backend: Backend) {
        let app = spawn_app(backend).await;
        let t = agents(&app, "acme", &["planner", "billing"]).await;
        let other = agents(&app, "other", &["outsider"]).await;
        let (planner, billing) = (&t[0], &t[1]);
        let post = |token: &str, body: Value| as_agent(&app, Method::POST, "/api/v1/contacts", token).json(&body).send();

        let c = created(post(planner, json!({"handle": "bob", "display_name": "Bob Builder", "description": "Fixes roofs", "tags": ["vendor", "roof", "vendor"]})).await.unwrap()).await;
        assert_eq!((c["version"].as_i64(), c["updated_by"].as_str(), c["is_active"].as_bool(), c["tags"].clone()),
            (Some(1), Some("planner"), Some(true), json!(["vendor", "roof"])));
        assert!(c["created_at"].is_string() && c["updated_at"].is_string());
        created(post(billing, json!({"handle": "alice", "description": "Accountant", "tags": ["vendor", "tax"]})).await.unwrap()).await;
        let (status, _) = problem(post(billing, json!({"handle": "bob"})).await.unwrap()).await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, p) = problem(post(billing, json!({"handle": "Bad Handle"})).await.unwrap()).await;
        assert_eq!((status, p["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("handle")));

        // The address book is the org's: every agent of it sees the same, another org nothing.
        let (_, list) = get_json(&app, billing, "/api/v1/contacts").await;
        assert_eq!(list["contacts"].as_array().unwrap().iter().map(|c| c["handle"].as_str().unwrap()).collect::<Vec<_>>(), ["alice", "bob"]);
        assert_eq!(list["pagination"], json!({"offset": 0, "limit": 20, "total": 2, "has_more": false}));
        let (_, list) = get_json(&app, &other[0], "/api/v1/contacts").await;
        assert_eq!(list["pagination"]["total"], 0);
        let res = as_agent(&app, Method::GET, "/api/v1/contacts/bob", &other[0]).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
        let (_, list) = get_json(&app, planner, "/api/v1/contacts?tags=vendor,tax").await;
        assert_eq!(list["contacts"][0]["handle"], "alice");
        assert_eq!(list["pagination"]["total"], 1);
        let (_, list) = get_json(&app, planner, "/api/v1/contacts?limit=1&offset=1").await;
        assert_eq!((list["contacts"][0]["handle"].as_str(), list["pagination"]["has_more"].as_bool()), (Some("bob"), Some(false)));

        // Optimistic locking: the version read must be current.
        let put = |token: &str, body: Value| as_agent(&app, Method::PUT, "/api/v1/contacts/bob", token).json(&body).send();
        let res = put(billing, json!({"expected_version": 1, "description": "Fixes roofs and gutters"})).await.unwrap();
        let c: Value = res.json().await.unwrap();
        assert_eq!((c["version"].as_i64(), c["updated_by"].as_str(), c["display_name"].as_str()), (Some(2), Some("billing"), Some("Bob Builder")));
        let (status, p) = problem(put(planner, json!({"expected_version": 1, "display_name": "Robert"})).await.unwrap()).await;
        assert_eq!((status, p["code"].as_str(), p["current_version"].as_i64()), (StatusCode::CONFLICT, Some("VERSION_CONFLICT"), Some(2)));
        let (status, _) = problem(as_agent(&app, Method::PUT, "/api/v1/contacts/nobody", planner).json(&json!({"expected_version": 1})).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Search: handle, display name, description; case-insensitive; LIKE wildcards are text.
        let (_, r) = get_json(&app, planner, "/api/v1/contacts/search?query=GUTTER").await;
        assert_eq!((r["count"].as_u64(), r["query"].as_str(), r["contacts"][0]["handle"].as_str()), (Some(1), Some("GUTTER"), Some("bob")));
        let (_, r) = get_json(&app, planner, "/api/v1/contacts/search?query=a&tags=tax").await;
        assert_eq!(r["count"], 1);
        let (_, r) = get_json(&app, planner, "/api/v1/contacts/search?query=%25").await;
        assert_eq!(r["count"], 0);
        let (status, _) = problem(as_agent(&app, Method::GET, "/api/v1/contacts/search?query=%20", planner).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        // Soft deletion: gone from the default list, still readable, back with a PUT.
        let res = as_agent(&app, Method::DELETE, "/api/v1/contacts/bob", planner).send().await.unwrap();
        let c: Value = res.json().await.unwrap();
        assert_eq!((c["is_active"].as_bool(), c["version"].as_i64()), (Some(false), Some(3)));
        let (_, list) = get_json(&app, planner, "/api/v1/contacts").await;
        assert_eq!(list["pagination"]["total"], 1);
        let (_, list) = get_json(&app, planner, "/api/v1/contacts?active_only=false").await;
        assert_eq!(list["pagination"]["total"], 2);
        let (status, c) = get_json(&app, planner, "/api/v1/contacts/bob").await;
        assert_eq!((status, c["is_active"].as_bool()), (StatusCode::OK, Some(false)));
        let (status, _) = problem(post(billing, json!({"handle": "bob"})).await.unwrap()).await;
        assert_eq!(status, StatusCode::CONFLICT);
        let res = put(planner, json!({"expected_version": 3, "is_active": true})).await.unwrap();
        assert_eq!(res.json::<Value>().await.unwrap()["is_active"], true);
    }
}

backend_test! {
    async fn two_concurrent_puts_with_the_same_version_exactly_one_wins(backend: Backend) {
        let app = spawn_app(backend).await;
        let t = agents(&app, "acme", &["planner", "billing"]).await;
        created(as_agent(&app, Method::POST, "/api/v1/contacts", &t[0]).json(&json!({"handle": "bob"})).send().await.unwrap()).await;
        for round in 0..5 {
            let version = round + 1;
            let put = |token: &str, name: &str| {
                as_agent(&app, Method::PUT, "/api/v1/contacts/bob", token)
                    .json(&json!({"expected_version": version, "display_name": name}))
                    .send()
            };
            let (a, b) = tokio::join!(put(&t[0], "A"), put(&t[1], "B"));
            let mut statuses = [a.unwrap().status(), b.unwrap().status()];
            statuses.sort();
            assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "round {round}");
        }
        let (_, c) = get_json(&app, &t[0], "/api/v1/contacts/bob").await;
        assert_eq!(c["version"], 6);
    }
}

backend_test! {
    async fn every_change_and_token_issue_is_audited_and_the_log_is_append_only(backend: Backend) {
        let app = spawn_app(backend).await;
        let t = agents(&app, "acme", &["planner", "billing", "support"]).await;
        let (planner, billing, support) = (&t[0], &t[1], &t[2]);

        let m = send(&app, planner, "/api/v1/messages", json!({"to_handles": ["billing"], "subject": "s", "body": "b"})).await;
        let thread = m["thread_id"].as_str().unwrap().to_owned();
        send(&app, billing, &format!("/api/v1/messages/{}/reply", m["id"].as_str().unwrap()), json!({"body": "r"})).await;
        send(&app, planner, "/api/v1/messages/broadcast", json!({"to_handles": ["billing", "support"], "subject": "s", "body": "b"})).await;
        for value in [json!("T-1"), Value::Null] {
            as_agent(&app, Method::PUT, &format!("/api/v1/threads/{thread}/metadata"), planner).json(&json!({"key": "ticket", "value": value})).send().await.unwrap();
        }
        as_agent(&app, Method::POST, &format!("/api/v1/threads/{thread}/archive"), planner).send().await.unwrap();
        as_agent(&app, Method::POST, &format!("/api/v1/threads/{thread}/unarchive"), planner).send().await.unwrap();
        created(as_agent(&app, Method::POST, "/api/v1/contacts", planner).json(&json!({"handle": "bob"})).send().await.unwrap()).await;
        as_agent(&app, Method::PUT, "/api/v1/contacts/bob", planner).json(&json!({"expected_version": 1, "description": "d"})).send().await.unwrap();
        // A refused change writes no event.
        let res = as_agent(&app, Method::PUT, "/api/v1/contacts/bob", planner).json(&json!({"expected_version": 1, "description": "x"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CONFLICT);
        as_agent(&app, Method::DELETE, "/api/v1/contacts/bob", planner).send().await.unwrap();

        let (status, log) = get_json(&app, planner, "/api/v1/audit/events?limit=100").await;
        assert_eq!(status, StatusCode::OK, "{log}");
        let events = log["events"].as_array().unwrap();
        let kinds: Vec<(&str, &str, Option<&str>)> = events.iter().rev()
            .map(|e| (e["event_type"].as_str().unwrap(), e["actor_handle"].as_str().unwrap(), e["target_handle"].as_str()))
            .collect();
        assert_eq!(kinds, [
            ("token.issued", "planner", Some("planner")),
            ("message.sent", "planner", Some("billing")),
            ("message.replied", "billing", Some("planner")),
            ("message.broadcast", "planner", Some("billing")),
            ("message.broadcast", "planner", Some("support")),
            ("thread.metadata_set", "planner", None),
            ("thread.metadata_removed", "planner", None),
            ("thread.archived", "planner", None),
            ("thread.unarchived", "planner", None),
            ("contact.created", "planner", Some("bob")),
            ("contact.updated", "planner", Some("bob")),
            ("contact.deleted", "planner", Some("bob")),
        ], "{log}");
        assert_eq!(log["pagination"]["total"], 12);
        let e = &events[events.len() - 2];
        assert_eq!(e["details"]["message_id"], m["id"]);
        assert!(e["timestamp"].is_string() && e["event_id"].is_string());

        // Filters and pagination; an agent sees only what it did or what names it.
        let (_, f) = get_json(&app, planner, "/api/v1/audit/events?target_handle=bob&event_type=contact.updated").await;
        assert_eq!(f["pagination"]["total"], 1);
        let (_, f) = get_json(&app, planner, "/api/v1/audit/events?limit=5&offset=10").await;
        assert_eq!((f["events"].as_array().unwrap().len(), f["pagination"]["has_more"].as_bool()), (2, Some(false)));
        let (_, s) = get_json(&app, support, "/api/v1/audit/events").await;
        let seen: Vec<&str> = s["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
        assert_eq!(seen, ["message.broadcast", "token.issued"], "{s}");
        let res = as_agent(&app, Method::GET, "/api/v1/audit/events?event_type=message.deleted", support).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::UNPROCESSABLE_ENTITY);

        // Append-only, whatever the caller: the database refuses updates and deletes.
        let update = "UPDATE mailbox_audit_events SET event_type = 'forged'";
        let delete = "DELETE FROM mailbox_audit_events";
        match &app.state.store {
            agentd::store::Store::Sqlite(p) => {
                assert!(sqlx::query(update).execute(&p.write).await.is_err());
                assert!(sqlx::query(delete).execute(&p.write).await.is_err());
            }
            agentd::store::Store::Postgres(p) => {
                assert!(sqlx::query(update).execute(p).await.is_err());
                assert!(sqlx::query(delete).execute(p).await.is_err());
            }
        }
        let (_, after) = get_json(&app, planner, "/api/v1/audit/events?limit=100").await;
        assert_eq!(after["pagination"]["total"], 12);
    }
}

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

backend_test! {
    async fn each_agent_has_its_own_send_and_search_buckets_inside_the_orgs_quota(backend: Backend) {
        let app = spawn_app_with(backend, |s| {
            s.mailbox_sends_per_minute = 3;
            s.mailbox_searches_per_minute = 2;
        }).await;
        app.create_org("acme", json!({"tier": "custom", "rate_limit": {"requests": 1000, "window_seconds": 60}})).await;
        let t = agents(&app, "acme", &["planner", "billing"]).await;
        let body = json!({"to_handles": ["billing"], "subject": "s", "body": "b"});

        for left in ["2", "1", "0"] {
            let res = as_agent(&app, Method::POST, "/api/v1/messages", &t[0]).json(&body).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::CREATED);
            for name in ["ratelimit-remaining", "x-ratelimit-remaining"] {
                assert_eq!(header(&res, name).as_deref(), Some(left), "{name}");
            }
            assert_eq!(header(&res, "ratelimit-limit").as_deref(), Some("3"));
        }
        let res = as_agent(&app, Method::POST, "/api/v1/messages/broadcast", &t[0]).json(&body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(header(&res, "retry-after").unwrap().parse::<u64>().unwrap() >= 1);
        for name in ["ratelimit-limit", "x-ratelimit-limit"] {
            assert_eq!(header(&res, name).as_deref(), Some("3"), "{name}");
        }
        let (_, p) = problem(res).await;
        assert_eq!(p["code"], "RATE_LIMIT_EXCEEDED");
        // Reads are not sends: they report the org's quota.
        let res = as_agent(&app, Method::GET, "/api/v1/messages", &t[0]).send().await.unwrap();
        assert_eq!((res.status(), header(&res, "ratelimit-limit").as_deref()), (StatusCode::OK, Some("1000")));
        // Another agent, or the same agent through an API key, has its own bucket.
        let res = as_agent(&app, Method::POST, "/api/v1/messages", &t[1]).json(&json!({"to_handles": ["planner"], "subject": "s", "body": "b"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let key = app.create_key("acme").await["api_key"].as_str().unwrap().to_owned();
        let res = app.post("/api/v1/messages").header("X-API-Key", &key).header("X-Agent-Handle", "planner").json(&body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "the bucket is the agent's, whatever the credential");

        for expected in [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS] {
            let res = as_agent(&app, Method::GET, "/api/v1/contacts/search?query=x", &t[0]).send().await.unwrap();
            assert_eq!(res.status(), expected);
        }
        let res = as_agent(&app, Method::GET, "/api/v1/messages/search?query=x", &t[0]).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}

backend_test! {
    async fn the_orgs_quota_bounds_the_agents_and_its_headers_show_when_it_is_tighter(backend: Backend) {
        let app = spawn_app(backend).await;
        app.create_org("acme", json!({"tier": "custom", "rate_limit": {"requests": 4, "window_seconds": 3600}})).await;
        let secret = register(&app, "acme", "planner", "Planner").await;
        register(&app, "acme", "billing", "Billing").await;
        let token = agent_token(&app, "acme", "planner", &secret).await;
        let body = json!({"to_handles": ["billing"], "subject": "s", "body": "b"});
        let mut statuses = Vec::new();
        for _ in 0..5 {
            let res = as_agent(&app, Method::POST, "/api/v1/messages", &token).json(&body).send().await.unwrap();
            statuses.push(res.status());
            if res.status() == StatusCode::CREATED {
                // The default agent bucket is 100 a minute; the org has fewer left.
                assert_eq!(header(&res, "ratelimit-limit").as_deref(), Some("4"));
            } else {
                assert!(header(&res, "retry-after").is_some());
            }
        }
        assert_eq!(statuses, [StatusCode::CREATED; 4].into_iter().chain([StatusCode::TOO_MANY_REQUESTS]).collect::<Vec<_>>());
    }
}

backend_test! {
    async fn seed_compatible_health_answers_with_status_timestamp_and_version_and_503_without_a_database(backend: Backend) {
        let app = spawn_app(backend).await;
        let res = app.get("/api/v1/health").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        assert_eq!((body["status"].as_str(), body["version"].as_str()), (Some("healthy"), Some(env!("CARGO_PKG_VERSION"))));
        assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
        let res = app.get("/api/v1/health/ready").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        assert_eq!((body["status"].as_str(), body["database"].as_str()), (Some("ready"), Some("connected")));
        assert!(body["timestamp"].is_string() && body["version"].is_string());

        // The database goes away: readiness is 503, liveness is not.
        app.state.store.close().await;
        let (status, p) = problem(app.get("/api/v1/health/ready").send().await.unwrap()).await;
        assert_eq!((status, p["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("SERVICE_UNAVAILABLE")));
        assert_eq!(app.get("/api/v1/health").send().await.unwrap().status(), StatusCode::OK);
    }
}
