//! Agent turns through /chat and /sessions with a scripted model: tools, persistence,
//! failures, idempotency, concurrency. (The OpenAI provider's wire format has its own tests
//! against a real HTTP server, in `agent::openai`.)

use std::time::Duration;

use agentd::domain::OrgId;
use agentd::skills::tasks::store::Tasks;
use agentd::store::turns::{LeaseRequest, Leased};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::backend_test;
use crate::helpers::*;
use agentd::agent::scripted::{Reply, ScriptedModel, call, text};

async fn app_with_mock(
    backend: Backend,
    tweak: impl FnOnce(&mut agentd::Settings),
) -> (TestApp, ScriptedModel) {
    let mock = ScriptedModel::default();
    let app = spawn_app_with_model(backend, &mock, tweak).await;
    (app, mock)
}

fn tomorrow_at(hour: u32) -> String {
    let day = (chrono::Utc::now().with_timezone(&chrono_tz::Europe::Berlin)
        + chrono::Duration::days(1))
    .date_naive();
    format!("{day}T{hour:02}:00")
}

backend_test! {
    async fn a_turn_runs_tools_and_persists_messages_checkpoints_and_run(backend: Backend) {
        let (app, mock) = app_with_mock(backend, |_| {}).await;
        let key = booking_org(&app, "clinic", json!({})).await;
        mock.script([call("call_1", "list_services", json!({})), text("We offer General Consultation.")]);
        let session = Uuid::new_v4();

        let res = app.chat(&key, "clinic", session, "What can I book?").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers().contains_key("ratelimit-remaining"));
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["response"], "We offer General Consultation.");
        assert_eq!(body["session_id"], session.to_string());
        let meta = &body["metadata"];
        assert_eq!(meta["tool_calls"][0]["name"], "list_services");
        assert_eq!(meta["tool_calls"][0]["result"]["services"][0]["id"], "general-consultation");
        assert_eq!(meta["message_count"], 4);
        assert_eq!(meta["current_state"], "COLLECT_SERVICE");
        assert_eq!(meta["usage"]["total_tokens"], 30);
        assert_eq!(meta["model"], "scripted-model");

        // The model saw the system prompt, the user message, then the tool result.
        let second = &mock.requests()[1];
        let roles: Vec<&str> = second.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool"]);
        assert_eq!(second.messages[3].tool_call_id.as_deref(), Some("call_1"));
        assert!(second.tools.iter().any(|t| t.name == "create_appointment"));

        let history = app.history(&key, session).await;
        let msgs = history["messages"].as_array().unwrap();
        let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["user", "assistant", "tool", "assistant"]);
        assert_eq!(msgs[1]["tool_calls"][0]["name"], "list_services");
        assert_eq!(msgs[2]["tool_call_id"], "call_1");
        assert_eq!(msgs[3]["id"], body["message_id"]);
        assert_eq!(history["metadata"]["message_count"], 4);

        let org = OrgId::parse("clinic").unwrap();
        let runs = app.state.store.list_runs(&org, session.into()).await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].1, "completed");
        let cps = app.state.store.list_checkpoints(&org, session.into()).await.unwrap();
        assert_eq!(cps.iter().map(|c| (c.0, c.1, c.2)).collect::<Vec<_>>(), [(1, None, 1), (2, Some(1), 2)]);

        // The next turn sees the history.
        mock.script([text("Sure.")]);
        app.chat(&key, "clinic", session, "Thanks").await;
        let third = &mock.requests()[2];
        assert_eq!(third.messages.len(), 1 + 4 + 1);
    }
}

backend_test! {
    async fn chat_input_is_validated_and_org_must_match(backend: Backend) {
        let (app, _mock) = app_with_mock(backend, |_| {}).await;
        let key = booking_org(&app, "clinic", json!({"max_message_chars": 10})).await;
        booking_org(&app, "other", json!({})).await;
        let session = Uuid::new_v4();
        let (status, body) = problem(app.chat(&key, "other", session, "hi").await).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("ORG_MISMATCH")));

        for (message, session_id) in [("x".repeat(11), session.to_string()), ("a\0b".to_owned(), session.to_string()), ("hi".to_owned(), "nope".to_owned()), ("<b></b>".to_owned(), session.to_string())] {
            let res = app.post("/api/v1/chat").header("X-API-Key", &key)
                .json(&json!({"message": message, "session_id": session_id, "org_id": "clinic"})).send().await.unwrap();
            let (status, body) = problem(res).await;
            assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_ERROR")), "{message:?}");
        }
        // Nothing was stored for the refused requests.
        let res = app.get(&format!("/api/v1/sessions/{session}/history")).header("X-API-Key", &key).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}

backend_test! {
    async fn a_provider_failure_is_502_and_leaves_no_assistant_message(backend: Backend) {
        let (app, mock) = app_with_mock(backend, |_| {}).await;
        let key = booking_org(&app, "clinic", json!({})).await;
        let session = Uuid::new_v4();
        mock.script([Reply::Status(500)]);
        let (status, body) = problem(app.chat(&key, "clinic", session, "Hello").await).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_GATEWAY, Some("LLM_UPSTREAM_ERROR")));

        let history = app.history(&key, session).await;
        assert_eq!(history["messages"].as_array().unwrap().len(), 0);
        let org = OrgId::parse("clinic").unwrap();
        let runs = app.state.store.list_runs(&org, session.into()).await.unwrap();
        assert_eq!(runs[0].1, "failed");
        assert!(runs[0].2.as_deref().unwrap_or("").contains("500"), "{runs:?}");

        // The next turn works (the lease was released).
        let res = app.chat(&key, "clinic", session, "Hello again").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(app.history(&key, session).await["messages"].as_array().unwrap().len(), 2);
    }
}

backend_test! {
    async fn a_turn_past_its_timeout_is_504(backend: Backend) {
        let (app, mock) = app_with_mock(backend, |s| s.agent_turn_timeout_seconds = 1).await;
        let key = booking_org(&app, "clinic", json!({})).await;
        let session = Uuid::new_v4();
        mock.script([Reply::Slow(Duration::from_secs(3), Box::new(text("too late")))]);
        let (status, body) = problem(app.chat(&key, "clinic", session, "Hello").await).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::GATEWAY_TIMEOUT, Some("AGENT_TIMEOUT")));
        assert_eq!(app.history(&key, session).await["messages"].as_array().unwrap().len(), 0);
        assert_eq!(app.chat(&key, "clinic", session, "Hello").await.status(), StatusCode::OK);
    }
}

backend_test! {
    async fn malformed_tool_arguments_become_a_tool_error_the_model_sees(backend: Backend) {
        let (app, mock) = app_with_mock(backend, |_| {}).await;
        let key = booking_org(&app, "clinic", json!({})).await;
        mock.script([
            Reply::ToolCalls(vec![("call_bad".into(), "check_availability".into(), "{not json".into())]),
            call("call_unknown", "launch_rockets", json!({})),
            text("Let me try again."),
        ]);
        let res = app.chat(&key, "clinic", Uuid::new_v4(), "Any time tomorrow?").await;
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        let calls = body["metadata"]["tool_calls"].as_array().unwrap();
        assert!(calls[0]["result"]["error"].as_str().unwrap().contains("not valid JSON"), "{calls:?}");
        assert!(calls[1]["result"]["error"].as_str().unwrap().contains("unknown tool"), "{calls:?}");
        let reqs = mock.requests();
        assert!(reqs[1].messages.last().unwrap().content.contains("error"));
    }
}

backend_test! {
    async fn idempotency_keys_replay_the_stored_reply(backend: Backend) {
        let (app, mock) = app_with_mock(backend, |_| {}).await;
        let key = booking_org(&app, "clinic", json!({})).await;
        let session = Uuid::new_v4();
        let send = |message: &str| {
            app.post("/api/v1/chat").header("X-API-Key", &key).header("Idempotency-Key", "order-42")
                .json(&json!({"message": message, "session_id": session, "org_id": "clinic"})).send()
        };
        let first: Value = send("Hello").await.unwrap().json().await.unwrap();
        let again: Value = send("Hello").await.unwrap().json().await.unwrap();
        assert_eq!(first["message_id"], again["message_id"]);
        assert_eq!(first["response"], again["response"]);
        assert_eq!(mock.requests().len(), 1, "no second turn");
        assert_eq!(app.history(&key, session).await["messages"].as_array().unwrap().len(), 2);

        let (status, body) = problem(send("Something else").await.unwrap()).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("IDEMPOTENCY_MISMATCH")));
    }
}

backend_test! {
    async fn a_side_effect_happens_once_per_tool_call_id_and_slots_cannot_be_double_booked(backend: Backend) {
        let (app, mock) = app_with_mock(backend, |_| {}).await;
        let key = booking_org(&app, "clinic", json!({})).await;
        let args = json!({"service_id": "general-consultation", "start": tomorrow_at(10),
                          "customer_name": "John Doe", "customer_email": "john@example.com", "customer_phone": "555-1234"});
        // A turn books, then fails; its retry makes the same call (same id, as the offline
        // model does): one booking, and the retry gets the recorded result.
        mock.script([call("call_book", "create_appointment", args.clone()), Reply::Status(500),
                     call("call_book", "create_appointment", args.clone()), text("Booked.")]);
        let session = Uuid::new_v4();
        assert_eq!(problem(app.chat(&key, "clinic", session, "Book it").await).await.0, StatusCode::BAD_GATEWAY);
        let b: Value = app.chat(&key, "clinic", session, "Book it").await.json().await.unwrap();
        let first = &b["metadata"]["tool_calls"][0]["result"];
        assert!(first["confirmation_number"].as_str().unwrap().starts_with("APPT-"), "{b}");

        // Another conversation asking for an overlapping slot is refused by the database.
        let overlapping = json!({"service_id": "extended-session", "start": tomorrow_at(9).replace(":00", ":45"),
                                 "customer_name": "Jane Roe", "customer_email": "jane@example.com"});
        mock.script([call("call_other", "create_appointment", overlapping), text("Sorry.")]);
        let c: Value = app.chat(&key, "clinic", Uuid::new_v4(), "Book for me too").await.json().await.unwrap();
        assert!(c["metadata"]["tool_calls"][0]["result"]["error"].as_str().unwrap().contains("already booked"), "{c}");

        let list: Value = app.get("/api/v1/appointments").header("X-API-Key", &key).send().await.unwrap().json().await.unwrap();
        assert_eq!(list["total"], 1);
        let number = first["confirmation_number"].as_str().unwrap();
        let one: Value = app.get(&format!("/api/v1/appointments/{number}")).header("X-API-Key", &key).send().await.unwrap().json().await.unwrap();
        assert_eq!((one["customer_name"].as_str(), one["status"].as_str()), (Some("John Doe"), Some("booked")));
    }
}

backend_test! {
    async fn a_failed_turn_retried_with_its_idempotency_key_does_not_book_twice(backend: Backend) {
        let (app, mock) = app_with_mock(backend, |_| {}).await;
        let key = booking_org(&app, "clinic", json!({})).await;
        let args = json!({"service_id": "follow-up", "start": tomorrow_at(11),
                          "customer_name": "Ana Silva", "customer_email": "ana@example.com"});
        // The first attempt books, then the provider fails; the retry's model call gets
        // fresh call ids, as real LLMs do.
        mock.script([call("call_first", "create_appointment", args.clone()), Reply::Status(500),
                     call("call_retry", "create_appointment", args), text("Booked.")]);
        let session = Uuid::new_v4();
        let send = || app.post("/api/v1/chat").header("X-API-Key", &key).header("Idempotency-Key", "book-ana")
            .json(&json!({"message": "Book it", "session_id": session, "org_id": "clinic"})).send();
        assert_eq!(problem(send().await.unwrap()).await.0, StatusCode::BAD_GATEWAY);
        let retried: Value = send().await.unwrap().json().await.unwrap();
        let result = &retried["metadata"]["tool_calls"][0]["result"];
        assert!(result["confirmation_number"].as_str().unwrap().starts_with("APPT-"), "{retried}");
        let list: Value = app.get("/api/v1/appointments").header("X-API-Key", &key).send().await.unwrap().json().await.unwrap();
        assert_eq!(list["total"], 1, "one booking, not two");
        assert_eq!(list["items"][0]["confirmation_number"], result["confirmation_number"]);
    }
}

backend_test! {
    async fn a_chat_can_only_touch_its_own_bookings(backend: Backend) {
        let (app, mock) = app_with_mock(backend, |_| {}).await;
        let key = booking_org(&app, "clinic", json!({})).await;
        let args = json!({"service_id": "follow-up", "start": tomorrow_at(15),
                          "customer_name": "Ana Silva", "customer_email": "ana@example.com", "customer_phone": "555"});
        mock.script([call("b1", "create_appointment", args), text("Booked.")]);
        let booked: Value = app.chat(&key, "clinic", Uuid::new_v4(), "Book it").await.json().await.unwrap();
        let number = booked["metadata"]["tool_calls"][0]["result"]["confirmation_number"].as_str().unwrap().to_owned();

        // Another visitor's session (same API key) cannot read, cancel or move it…
        let by_number = json!({"confirmation_number": number});
        mock.script([
            call("x1", "get_appointment", by_number.clone()),
            call("x2", "cancel_appointment", by_number.clone()),
            call("x3", "reschedule_appointment", json!({"confirmation_number": number, "start": tomorrow_at(16)})),
            text("Sorry."),
        ]);
        let other: Value = app.chat(&key, "clinic", Uuid::new_v4(), "cancel it").await.json().await.unwrap();
        for c in other["metadata"]["tool_calls"].as_array().unwrap() {
            assert!(c["result"]["error"].as_str().unwrap().contains("no appointment"), "{c}");
            assert!(!c["result"].to_string().contains("Ana"), "leaked: {c}");
        }
        // …nor can an end user who did not make it.
        let bob = app.mint_token(&key, "bob").await;
        mock.script([call("y1", "cancel_appointment", by_number), text("Sorry.")]);
        let res = app.post("/api/v1/chat").bearer_auth(&bob)
            .json(&json!({"message": "cancel", "session_id": Uuid::new_v4(), "org_id": "clinic"})).send().await.unwrap();
        let r: Value = res.json().await.unwrap();
        assert!(r["metadata"]["tool_calls"][0]["result"]["error"].is_string(), "{r}");
        let appt: Value = app.get(&format!("/api/v1/appointments/{number}")).header("X-API-Key", &key).send().await.unwrap().json().await.unwrap();
        assert_eq!(appt["status"], "booked");

        // A returning customer proves it is theirs with the email or phone number it was
        // booked with (issue 11.4); a wrong one leaves it as unknown as a wrong number.
        let with = |contact: &str| json!({"confirmation_number": number, "customer_contact": contact});
        mock.script([
            call("z1", "get_appointment", with("mallory@example.com")),
            call("z2", "cancel_appointment", with("555")),
            call("z3", "get_appointment", with("ANA@example.com")),
            call("z4", "reschedule_appointment", json!({"confirmation_number": number, "start": tomorrow_at(16), "customer_contact": "ana@example.com"})),
            text("Moved."),
        ]);
        let back: Value = app.chat(&key, "clinic", Uuid::new_v4(), "move it").await.json().await.unwrap();
        let calls = back["metadata"]["tool_calls"].as_array().unwrap();
        for c in &calls[..2] {
            assert!(c["result"]["error"].as_str().unwrap().contains("no appointment"), "{c}");
        }
        assert_eq!(calls[2]["result"]["customer_name"], "Ana Silva", "{back}");
        assert_eq!(calls[3]["result"]["start"], tomorrow_at(16), "{back}");
    }
}

backend_test! {
    async fn idempotency_keys_are_scoped_to_the_caller(backend: Backend) {
        let (app, _mock) = app_with_mock(backend, |_| {}).await;
        let key = booking_org(&app, "clinic", json!({})).await;
        for user in ["alice", "bob"] {
            let token = app.mint_token(&key, user).await;
            let res = app.post("/api/v1/chat").bearer_auth(&token).header("Idempotency-Key", "msg-1")
                .json(&json!({"message": format!("hi from {user}"), "session_id": Uuid::new_v4(), "org_id": "clinic"}))
                .send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{user}: two widgets may both say msg-1");
        }
    }
}

backend_test! {
    async fn twenty_concurrent_messages_to_one_session_never_interleave(backend: Backend) {
        let (app, _mock) = app_with_mock(backend, |_| {}).await;
        let key = booking_org(&app, "clinic", json!({"tier": "custom", "rate_limit": {"requests": 1000, "window_seconds": 60}})).await;
        let session = Uuid::new_v4();
        let sends = (0..20).map(|i| {
            let (app, key) = (&app, &key);
            async move { app.chat(key, "clinic", session, &format!("message {i}")).await.status() }
        });
        let statuses = futures_util::future::join_all(sends).await;
        assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");

        let history = app.history(&key, session).await;
        let msgs = history["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 40);
        let mut seen = std::collections::HashSet::new();
        for pair in msgs.chunks(2) {
            assert_eq!(pair[0]["role"], "user");
            let text = pair[0]["content"].as_str().unwrap();
            assert!(seen.insert(text.to_owned()), "{text} twice");
            assert_eq!(pair[1]["content"], format!("echo: {text}"), "reply out of order");
        }
        assert_eq!(seen.len(), 20);
    }
}

backend_test! {
    async fn turns_never_interleave_across_two_instances_on_one_database(backend: Backend) {
        let (app, _mock) = app_with_mock(backend, |_| {}).await;
        let key = booking_org(&app, "clinic", json!({"tier": "custom", "rate_limit": {"requests": 1000, "window_seconds": 60}})).await;
        let other = app.second_instance(|_| {}).await;
        let session = Uuid::new_v4();
        let sends = (0..10).map(|i| {
            let (target, key) = (if i % 2 == 0 { &app } else { &other }, &key);
            async move { target.chat(key, "clinic", session, &format!("message {i}")).await.status() }
        });
        let statuses = futures_util::future::join_all(sends).await;
        assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
        let history = app.history(&key, session).await;
        let msgs = history["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 20);
        for pair in msgs.chunks(2) {
            assert_eq!(pair[0]["role"], "user");
            assert_eq!(pair[1]["content"], format!("echo: {}", pair[0]["content"].as_str().unwrap()));
        }
    }
}

backend_test! {
    async fn with_policy_reject_a_concurrent_turn_is_409(backend: Backend) {
        let (app, mock) = app_with_mock(backend, |_| {}).await;
        let key = booking_org(&app, "clinic", json!({"turn_policy": "reject"})).await;
        let session = Uuid::new_v4();
        mock.script([Reply::Slow(Duration::from_millis(800), Box::new(text("slow")))]);
        let slow = app.chat(&key, "clinic", session, "first");
        let second = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            app.chat(&key, "clinic", session, "second").await
        };
        let (a, b) = tokio::join!(slow, second);
        assert_eq!(a.status(), StatusCode::OK);
        let (status, body) = problem(b).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("TURN_IN_PROGRESS")));
    }
}

backend_test! {
    async fn sessions_are_erased_on_delete_and_when_idle_past_their_ttl(backend: Backend) {
        let (app, _mock) = app_with_mock(backend, |_| {}).await;
        let key = booking_org(&app, "clinic", json!({"session_ttl_seconds": 60})).await;
        let (s1, s2) = (Uuid::new_v4(), Uuid::new_v4());
        app.chat(&key, "clinic", s1, "one").await;
        app.chat(&key, "clinic", s2, "two").await;

        let res = app.client.delete(app.url(&format!("/api/v1/sessions/{s1}"))).header("X-API-Key", &key).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let res = app.get(&format!("/api/v1/sessions/{s1}/history")).header("X-API-Key", &key).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
        assert!(app.state.store.list_runs(&OrgId::parse("clinic").unwrap(), s1.into()).await.unwrap().is_empty());

        // Fresh sessions survive a sweep; one idle past the TTL does not.
        assert_eq!(agentd::app::sweep_once(&app.state).await.unwrap(), 0);
        age_conversation(&app, s2, chrono::Duration::minutes(5)).await;
        assert_eq!(agentd::app::sweep_once(&app.state).await.unwrap(), 1);
        let res = app.get(&format!("/api/v1/sessions/{s2}/history")).header("X-API-Key", &key).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
    }
}

backend_test! {
    async fn erasing_a_session_removes_what_it_left_and_works_after_a_soft_delete(backend: Backend) {
        let (app, mock, key) = {
            let (app, mock) = app_with_mock(backend, |_| {}).await;
            let key = booking_org(&app, "clinic", json!({})).await;
            (app, mock, key)
        };
        let session = Uuid::new_v4();
        mock.script([call("t1", "add_task", json!({"title": "Call Bob"})), text("Added.")]);
        app.chat(&key, "clinic", session, "remind me to call Bob").await;
        let org = OrgId::parse("clinic").unwrap();
        let owner = format!("session:{session}");
        assert_eq!(Tasks(&app.state.store).list_tasks(&org, &owner, None).await.unwrap().len(), 1);

        // Soft-deleted through the conversations API, then erased through sessions.
        let res = app.client.delete(app.url(&format!("/api/v1/conversations/{session}"))).header("X-API-Key", &key).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let res = app.client.delete(app.url(&format!("/api/v1/sessions/{session}"))).header("X-API-Key", &key).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert!(Tasks(&app.state.store).list_tasks(&org, &owner, None).await.unwrap().is_empty());
        assert!(app.state.store.conversation_owner(&org, session.into()).await.unwrap().is_none());
        let res = app.client.delete(app.url(&format!("/api/v1/sessions/{session}"))).header("X-API-Key", &key).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
    }
}

backend_test! {
    async fn a_session_cannot_be_erased_under_a_running_turn(backend: Backend) {
        let (app, mock) = app_with_mock(backend, |_| {}).await;
        let key = booking_org(&app, "clinic", json!({})).await;
        let session = Uuid::new_v4();
        mock.script([Reply::Slow(Duration::from_millis(800), Box::new(text("slow")))]);
        let turn = app.chat(&key, "clinic", session, "hello");
        let erase = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            app.client.delete(app.url(&format!("/api/v1/sessions/{session}"))).header("X-API-Key", &key).send().await.unwrap()
        };
        let soft_delete = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            app.client.delete(app.url(&format!("/api/v1/conversations/{session}"))).header("X-API-Key", &key).send().await.unwrap()
        };
        let (turn, erase, soft_delete) = tokio::join!(turn, erase, soft_delete);
        assert_eq!(turn.status(), StatusCode::OK);
        for refused in [erase, soft_delete] {
            let (status, body) = problem(refused).await;
            assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("TURN_IN_PROGRESS")));
        }
        let res = app.client.delete(app.url(&format!("/api/v1/sessions/{session}"))).header("X-API-Key", &key).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
    }
}

/// Pretends a conversation was last active `ago`.
async fn age_conversation(app: &TestApp, id: Uuid, ago: chrono::Duration) {
    let then = chrono::Utc::now() - ago;
    // Time passing: the conversation was created and last active `ago`.
    let sql = "UPDATE conversations SET created_at = $1, updated_at = $1 WHERE id = $2";
    match &app.state.store {
        agentd::store::Store::Sqlite(pools) => {
            let p = &pools.write;
            sqlx::query(sql)
                .bind(then)
                .bind(id)
                .execute(p)
                .await
                .unwrap();
        }
        agentd::store::Store::Postgres(p) => {
            sqlx::query(sql)
                .bind(then)
                .bind(id)
                .execute(p)
                .await
                .unwrap();
        }
    }
}

backend_test! {
    async fn session_ids_are_scoped_to_their_org_and_another_users_is_403(backend: Backend) {
        let (app, _mock) = app_with_mock(backend, |_| {}).await;
        let key = booking_org(&app, "clinic", json!({})).await;
        let other = booking_org(&app, "other", json!({})).await;
        let session = Uuid::new_v4();
        app.chat(&key, "clinic", session, "mine").await;

        let res = app.get(&format!("/api/v1/sessions/{session}/history")).header("X-API-Key", &other).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
        // A session id is scoped to its organisation: another org using the same id gets a
        // session of its own, and neither sees the other's messages.
        let res = app.chat(&other, "other", session, "theirs").await;
        assert_eq!(res.status(), StatusCode::OK);
        let mine = app.history(&key, session).await;
        let theirs = app.history(&other, session).await;
        assert_eq!(mine["messages"][0]["content"], "mine");
        assert_eq!(theirs["messages"][0]["content"], "theirs");
        assert_eq!(theirs["messages"].as_array().unwrap().len(), 2);
        let res = app.client.delete(app.url(&format!("/api/v1/sessions/{session}"))).header("X-API-Key", &other).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(app.history(&key, session).await["messages"].as_array().unwrap().len(), 2);

        let alice = app.mint_token(&key, "alice").await;
        let bob = app.mint_token(&key, "bob").await;
        let s = Uuid::new_v4();
        let res = app.post("/api/v1/chat").bearer_auth(&alice).json(&json!({"message": "hi", "session_id": s, "org_id": "clinic"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = app.get(&format!("/api/v1/sessions/{s}/history")).bearer_auth(&bob).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::FORBIDDEN);
        let res = app.get(&format!("/api/v1/sessions/{s}/history")).bearer_auth(&alice).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = app.get("/api/v1/appointments").bearer_auth(&alice).send().await.unwrap();
        assert_eq!(problem(res).await.0, StatusCode::FORBIDDEN);
    }
}

/// Takes `session`'s turn lease as instance `owner` would have before it died mid-turn.
async fn leave_a_lease(
    app: &TestApp,
    org: &str,
    session: Uuid,
    owner: &str,
    ttl: chrono::Duration,
) {
    let org = OrgId::parse(org).unwrap();
    let now = agentd::domain::now();
    let taken = app
        .state
        .store
        .take_lease(&LeaseRequest {
            org: &org,
            id: session.into(),
            create: None,
            token: Uuid::now_v7(),
            owner,
            now,
            expires_at: now + ttl,
        })
        .await
        .unwrap();
    assert!(matches!(taken, Leased::Taken { .. }), "{taken:?}");
}

backend_test! {
    async fn a_restarted_instance_frees_the_leases_of_its_previous_life(backend: Backend) {
        let (app, _mock) = app_with_mock(backend, |s| s.instance_id = Some("instance-a".into())).await;
        let key = booking_org(&app, "clinic", json!({"turn_policy": "reject"})).await;
        let session = Uuid::new_v4();
        assert_eq!(app.chat(&key, "clinic", session, "hello").await.status(), StatusCode::OK);
        // The instance died mid-turn holding the lease (a long one, to be sure).
        leave_a_lease(&app, "clinic", session, "instance-a", chrono::Duration::hours(1)).await;
        let (status, body) = problem(app.chat(&key, "clinic", session, "anyone?").await).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("TURN_IN_PROGRESS")));

        // The same instance starts again: its previous life's lease is freed at once.
        let restarted = app.second_instance(|s| s.instance_id = Some("instance-a".into())).await;
        assert_eq!(restarted.chat(&key, "clinic", session, "back").await.status(), StatusCode::OK);
    }
}

backend_test! {
    async fn a_dead_instances_lease_expires_within_its_ttl(backend: Backend) {
        let (app, _mock) = app_with_mock(backend, |s| {
            s.lease_ttl_seconds = 1;
            s.turn_queue_timeout_seconds = 10;
        })
        .await;
        let key = booking_org(&app, "clinic", json!({})).await;
        let session = Uuid::new_v4();
        assert_eq!(app.chat(&key, "clinic", session, "hello").await.status(), StatusCode::OK);
        leave_a_lease(&app, "clinic", session, "some-dead-instance", chrono::Duration::seconds(1)).await;
        // Queued behind the dead lease, the turn runs as soon as it expires.
        assert_eq!(app.chat(&key, "clinic", session, "still there?").await.status(), StatusCode::OK);
    }
}

backend_test! {
    async fn a_running_turn_keeps_its_lease_past_the_ttl(backend: Backend) {
        let (app, mock) = app_with_mock(backend, |s| s.lease_ttl_seconds = 1).await;
        let key = booking_org(&app, "clinic", json!({"turn_policy": "reject"})).await;
        let other = app.second_instance(|s| s.lease_ttl_seconds = 1).await;
        let session = Uuid::new_v4();
        mock.script([Reply::Slow(Duration::from_millis(3000), Box::new(text("slow answer")))]);
        let slow = {
            let (app, key) = (&app, &key);
            async move { app.chat(key, "clinic", session, "take your time").await.status() }
        };
        let meanwhile = async {
            // Once the slow turn is with the model, wait well past the lease's TTL.
            while mock.requests().is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(1800)).await;
            problem(other.chat(&key, "clinic", session, "me too").await).await
        };
        let (slow, (status, body)) = tokio::join!(slow, meanwhile);
        assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("TURN_IN_PROGRESS")));
        assert_eq!(slow, StatusCode::OK);
    }
}
