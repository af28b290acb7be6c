//! Contract consistency across resources (issue 11.8): one type for tool-call arguments, one
//! list envelope with cursor paging on the long lists, `Idempotency-Replayed` on replays,
//! plain dates in queries, and a `message_count` that equals the messages the API lists.

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use agentd::agent::scripted::{ScriptedModel, call, text};
use agentd::skills::booking::store::{Bookings, NewAppointment};

use crate::backend_test;
use crate::helpers::*;
use crate::streaming::parse_sse;

async fn app_with_mock(backend: Backend) -> (TestApp, ScriptedModel, String) {
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

async fn get_json(app: &TestApp, path: &str, key: &str) -> Value {
    let res = req(app, Method::GET, path, key).send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

backend_test! {
    async fn tool_call_arguments_are_the_same_json_object_in_chat_history_lists_and_streams(backend: Backend) {
        let (app, mock, key) = app_with_mock(backend).await;
        let args = json!({"service_id": "general-consultation", "date": "2026-12-03"});
        mock.script([call("call_1", "check_availability", args.clone()), text("Here are the free times.")]);
        let session = Uuid::new_v4();
        let res = app.chat(&key, "clinic", session, "Any time on December 3rd?").await;
        assert_eq!(res.status(), StatusCode::OK);
        let chat: Value = res.json().await.unwrap();
        assert_eq!(chat["metadata"]["tool_calls"][0]["arguments"], args);

        let history = app.history(&key, session).await;
        let call_msg = history["messages"].as_array().unwrap().iter().find(|m| m.get("tool_calls").is_some()).unwrap().clone();
        assert_eq!(call_msg["tool_calls"][0]["arguments"], args, "history shows another type: {call_msg}");
        assert_eq!(call_msg["tool_calls"][0]["id"], "call_1");

        let listed = get_json(&app, &format!("/api/v1/conversations/{session}/messages"), &key).await;
        let listed_call = listed["items"].as_array().unwrap().iter().find(|m| m.get("tool_calls").is_some()).unwrap();
        assert_eq!(listed_call["tool_calls"][0]["arguments"], args);

        // The stream's tool_call event carries the same object.
        mock.script([call("call_2", "check_availability", args.clone()), text("Done.")]);
        let res = app.post("/api/v1/chat/stream").header("X-API-Key", &key)
            .json(&json!({"message": "And again?", "session_id": session, "org_id": "clinic"})).send().await.unwrap();
        let events = parse_sse(&res.text().await.unwrap());
        let ev = events.iter().find(|e| e.event == "tool_call").unwrap();
        assert_eq!(ev.data["arguments"], args);

        // The document declares one type for every `arguments`.
        let spec: Value = app.get("/openapi.json").send().await.unwrap().json().await.unwrap();
        let mut seen = 0;
        fn walk(v: &Value, seen: &mut usize) {
            match v {
                Value::Object(m) => {
                    if let Some(args) = m.get("properties").and_then(|p| p.get("arguments")) {
                        *seen += 1;
                        // The one named schema for JSON objects.
                        assert_eq!(args["$ref"], "#/components/schemas/JsonObject", "an `arguments` that is not an object: {args}");
                    }
                    m.values().for_each(|x| walk(x, seen));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, seen)),
                _ => {}
            }
        }
        walk(&spec["components"]["schemas"], &mut seen);
        assert!(seen >= 3, "{seen}");
    }
}

backend_test! {
    async fn message_count_is_the_number_of_messages_the_api_lists(backend: Backend) {
        let (app, mock, key) = app_with_mock(backend).await;
        mock.script([call("call_1", "list_services", json!({})), text("We offer three services.")]);
        let session = Uuid::new_v4();
        let chat: Value = app.chat(&key, "clinic", session, "What can I book?").await.json().await.unwrap();
        let counted = chat["metadata"]["message_count"].as_i64().unwrap();
        let history = app.history(&key, session).await;
        let listed = get_json(&app, &format!("/api/v1/conversations/{session}/messages?limit=100"), &key).await;
        let conv = get_json(&app, &format!("/api/v1/conversations/{session}"), &key).await;
        assert_eq!(counted, history["messages"].as_array().unwrap().len() as i64);
        assert_eq!(counted, listed["total"].as_i64().unwrap());
        assert_eq!(counted, conv["message_count"].as_i64().unwrap());
        assert_eq!(counted, history["metadata"]["message_count"].as_i64().unwrap());

        // A deleted message leaves the count and the lists together.
        let first = listed["items"].as_array().unwrap().last().unwrap()["id"].as_str().unwrap().to_owned();
        let res = req(&app, Method::DELETE, &format!("/api/v1/conversations/{session}/messages/{first}"), &key).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let conv = get_json(&app, &format!("/api/v1/conversations/{session}"), &key).await;
        let listed = get_json(&app, &format!("/api/v1/conversations/{session}/messages"), &key).await;
        assert_eq!(conv["message_count"].as_i64().unwrap(), counted - 1);
        assert_eq!(listed["total"].as_i64().unwrap(), counted - 1);

        // And the document says so.
        let spec: Value = app.get("/openapi.json").send().await.unwrap().json().await.unwrap();
        for schema in ["ConversationView", "TurnMetadata", "SessionMetadata"] {
            let doc = spec["components"]["schemas"][schema]["properties"]["message_count"]["description"].as_str().unwrap_or("");
            assert!(doc.contains("messages"), "{schema}.message_count is undocumented: {doc:?}");
        }
    }
}

backend_test! {
    async fn a_replayed_reply_says_so_in_idempotency_replayed(backend: Backend) {
        let (app, mock, key) = app_with_mock(backend).await;
        mock.script([text("First answer.")]);
        let session = Uuid::new_v4();
        let send = || app.post("/api/v1/chat").header("X-API-Key", &key).header("Idempotency-Key", "order-42")
            .json(&json!({"message": "Hello", "session_id": session, "org_id": "clinic"})).send();
        let first = send().await.unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        assert!(first.headers().get("idempotency-replayed").is_none());
        let first: Value = first.json().await.unwrap();
        let again = send().await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
        assert_eq!(again.headers()["idempotency-replayed"], "true");
        let again: Value = again.json().await.unwrap();
        assert_eq!(again["message_id"], first["message_id"]);

        // The same on a conversation's messages.
        let conv: Value = created(req(&app, Method::POST, "/api/v1/conversations", &key).json(&json!({})).send().await.unwrap()).await;
        let path = format!("/api/v1/conversations/{}/messages", conv["id"].as_str().unwrap());
        let post = || req(&app, Method::POST, &path, &key).header("Idempotency-Key", "msg-1").json(&json!({"message": "Hi"})).send();
        let one = post().await.unwrap();
        assert_eq!(one.status(), StatusCode::CREATED);
        assert!(one.headers().get("idempotency-replayed").is_none());
        let two = post().await.unwrap();
        assert_eq!((two.status(), two.headers()["idempotency-replayed"].to_str().unwrap()), (StatusCode::CREATED, "true"));

        // And on a streamed message: the stream replays the stored reply.
        let stream = || app.post("/api/v1/chat/stream").header("X-API-Key", &key).header("Idempotency-Key", "order-42")
            .json(&json!({"message": "Hello", "session_id": session, "org_id": "clinic"})).send();
        let replay = stream().await.unwrap();
        assert_eq!(replay.headers()["idempotency-replayed"], "true");
        assert!(replay.text().await.unwrap().contains("First answer."));
        let fresh = app.post("/api/v1/chat/stream").header("X-API-Key", &key).header("Idempotency-Key", "order-43")
            .json(&json!({"message": "Hello again", "session_id": session, "org_id": "clinic"})).send().await.unwrap();
        assert!(fresh.headers().get("idempotency-replayed").is_none());
        let _ = fresh.text().await;

        let spec: Value = app.get("/openapi.json").send().await.unwrap().json().await.unwrap();
        for path in ["/api/v1/chat", "/api/v1/chat/stream", "/api/v1/conversations/{id}/messages/stream"] {
            assert!(spec["paths"][path]["post"]["responses"]["200"]["headers"].get("Idempotency-Replayed").is_some(), "{path}");
        }
    }
}

const ENVELOPE: [&str; 5] = ["has_more", "items", "limit", "offset", "total"];

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

async fn appointment(app: &TestApp, n: usize, start: chrono::DateTime<Utc>) -> NewAppointment {
    let org = agentd::domain::OrgId::parse("clinic").unwrap();
    let a = NewAppointment {
        confirmation_number: format!("APPT-CUR{n:03}"),
        service_id: "follow-up".into(),
        service_name: "Follow-up Visit".into(),
        start_at: start,
        end_at: start + Duration::minutes(15),
        customer_name: "Mary Jones".into(),
        customer_email: "mary@example.com".into(),
        customer_phone: None,
        end_user: None,
        conversation_id: None,
    };
    Bookings(&app.state.store)
        .create_appointment(&org, &a, agentd::domain::now())
        .await
        .unwrap();
    a
}

backend_test! {
    async fn every_list_has_one_envelope_and_long_lists_page_by_cursor_without_shifting(backend: Backend) {
        let (app, _mock, key) = app_with_mock(backend).await;
        let mut made = Vec::new();
        for i in 0..5 {
            let c: Value = created(req(&app, Method::POST, "/api/v1/conversations", &key).json(&json!({"title": format!("c{i}")})).send().await.unwrap()).await;
            made.push(c["id"].as_str().unwrap().to_owned());
        }
        // Newest first: c4 c3 | c2 c1 | c0.
        let first = get_json(&app, "/api/v1/conversations?limit=2", &key).await;
        assert_eq!(keys(&first), ENVELOPE);
        assert_eq!((first["total"].as_i64(), first["has_more"].as_bool()), (Some(5), Some(true)));
        let last_id = first["items"][1]["id"].as_str().unwrap().to_owned();
        assert_eq!(last_id, made[3]);
        // A conversation starting now would shift an offset page; the cursor page stays put.
        created(req(&app, Method::POST, "/api/v1/conversations", &key).json(&json!({"title": "new"})).send().await.unwrap()).await;
        let second = get_json(&app, &format!("/api/v1/conversations?limit=2&after={last_id}"), &key).await;
        assert_eq!(keys(&second), ENVELOPE);
        let ids: Vec<&str> = second["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [made[2].as_str(), made[1].as_str()]);
        assert_eq!((second["total"].as_i64(), second["has_more"].as_bool()), (Some(6), Some(true)));
        let third = get_json(&app, &format!("/api/v1/conversations?limit=2&after={}", made[1]), &key).await;
        let ids: Vec<&str> = third["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!((ids, third["has_more"].as_bool()), (vec![made[0].as_str()], Some(false)));

        // Bad cursors say what is wrong.
        let (status, body) = problem(req(&app, Method::GET, &format!("/api/v1/conversations?after={}", Uuid::new_v4()), &key).send().await.unwrap()).await;
        assert_eq!((status, body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("after")), "{body}");
        let (status, body) = problem(req(&app, Method::GET, &format!("/api/v1/conversations?after={}&offset=2", made[1]), &key).send().await.unwrap()).await;
        assert_eq!((status, body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("offset")), "{body}");

        // Messages, newest first, by cursor: echo turns make 2 messages each.
        let session = Uuid::new_v4();
        for m in ["one", "two", "three"] {
            assert_eq!(app.chat(&key, "clinic", session, m).await.status(), StatusCode::OK);
        }
        let page = get_json(&app, &format!("/api/v1/conversations/{session}/messages?limit=4"), &key).await;
        assert_eq!(keys(&page), ENVELOPE);
        assert_eq!((page["total"].as_i64(), page["has_more"].as_bool()), (Some(6), Some(true)));
        let cursor = page["items"][3]["id"].as_str().unwrap().to_owned();
        app.chat(&key, "clinic", session, "four").await;
        let rest = get_json(&app, &format!("/api/v1/conversations/{session}/messages?limit=4&after={cursor}"), &key).await;
        let contents: Vec<&str> = rest["items"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
        assert_eq!(contents, ["echo: one", "one"]);
        assert_eq!(rest["has_more"], false);
        // Another conversation's message is no cursor here.
        let (status, body) = problem(req(&app, Method::GET, &format!("/api/v1/conversations/{}/messages?after={cursor}", made[0]), &key).send().await.unwrap()).await;
        assert_eq!((status, body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("after")), "{body}");

        // Appointments, by start time, by cursor.
        let base = Utc::now() + Duration::days(3);
        for i in 0..3 {
            appointment(&app, i, base + Duration::hours(i as i64)).await;
        }
        let page = get_json(&app, "/api/v1/appointments?limit=2", &key).await;
        assert_eq!(keys(&page), ENVELOPE);
        assert_eq!(page["has_more"], true);
        let next = get_json(&app, &format!("/api/v1/appointments?limit=2&after={}", page["items"][1]["id"].as_str().unwrap()), &key).await;
        assert_eq!((next["items"][0]["confirmation_number"].as_str(), next["has_more"].as_bool()), (Some("APPT-CUR002"), Some(false)));

        // The other lists have the same envelope, keys included.
        let hook: Value = created(req(&app, Method::POST, "/api/v1/webhooks", &key)
            .json(&json!({"url": "https://93.184.216.34/hook", "event_type": "appointment.created"})).send().await.unwrap()).await;
        for path in ["/api/v1/webhooks".to_owned(), format!("/api/v1/webhooks/{}/deliveries", hook["id"].as_str().unwrap())] {
            assert_eq!(keys(&get_json(&app, &path, &key).await), ENVELOPE, "{path}");
        }
        for path in ["/api/v1/admin/orgs", "/api/v1/admin/orgs/clinic/keys"] {
            let res = app.admin(Method::GET, path).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let body: Value = res.json().await.unwrap();
            assert_eq!(keys(&body), ENVELOPE, "{path}");
            assert!(body["items"][0]["id"].is_string(), "{path}: {body}");
        }
        let keys_page: Value = app.admin(Method::GET, "/api/v1/admin/orgs/clinic/keys?limit=1&offset=1").send().await.unwrap().json().await.unwrap();
        assert_eq!((keys_page["total"].as_i64(), keys_page["items"].as_array().unwrap().len()), (Some(1), 0));
    }
}

backend_test! {
    async fn appointment_dates_accept_plain_dates_and_bad_ones_say_the_format(backend: Backend) {
        let (app, _mock, key) = app_with_mock(backend).await;
        // The org's zone is Europe/Berlin: 23:30 UTC on day D is already day D+1 there.
        let day = (Utc::now() + Duration::days(10)).date_naive();
        let at = |d: chrono::NaiveDate, h: u32, m: u32| d.and_hms_opt(h, m, 0).unwrap().and_utc();
        appointment(&app, 1, at(day, 10, 0)).await;
        appointment(&app, 2, at(day, 23, 30)).await;
        appointment(&app, 3, at(day.succ_opt().unwrap(), 12, 0)).await;

        let only_day = get_json(&app, &format!("/api/v1/appointments?from={day}&to={day}"), &key).await;
        let numbers: Vec<&str> = only_day["items"].as_array().unwrap().iter().map(|a| a["confirmation_number"].as_str().unwrap()).collect();
        assert_eq!(numbers, ["APPT-CUR001"]);
        let next_day = day.succ_opt().unwrap();
        let from_next = get_json(&app, &format!("/api/v1/appointments?from={next_day}"), &key).await;
        assert_eq!(from_next["total"], 2);
        // RFC 3339 still works (`+` escaped as it must be in a query).
        let exact = get_json(&app, &format!("/api/v1/appointments?from={}T23:00:00%2B00:00", day), &key).await;
        assert_eq!(exact["total"], 2);

        for bad in ["2026-12", "01/12/2026", "tomorrow", "2026-12-01T09:00"] {
            let (status, body) = problem(req(&app, Method::GET, &format!("/api/v1/appointments?from={bad}"), &key).send().await.unwrap()).await;
            assert_eq!((status, body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("from")), "{bad}: {body}");
            let msg = body["errors"][0]["message"].as_str().unwrap();
            assert!(msg.contains("2026-12-01") && msg.contains("RFC 3339") && !msg.contains("premature"), "{bad}: {msg}");
        }
    }
}
