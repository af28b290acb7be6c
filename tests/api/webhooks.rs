//! Webhooks end to end: a real HTTP receiver records what agentd sends, verifies signatures as
//! a customer's endpoint would, and can be told to fail. The worker is driven with `run_once`
//! (at an injected time when a retry must become due), never by sleeping.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{Duration, Utc};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

use agentd::skills::booking::store::Bookings;

use crate::backend_test;
use crate::helpers::*;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).unwrap().to_str().unwrap()
    }
}

#[derive(Default)]
struct ReceiverInner {
    requests: Vec<Received>,
    /// Statuses to answer with, in order; 200 once empty.
    statuses: VecDeque<u16>,
    /// Answer every request with this status (after `statuses` ran out).
    always: Option<u16>,
}

/// A webhook endpoint on 127.0.0.1 that records requests.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Mutex<ReceiverInner>>,
    pub url: String,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> AxumStatus {
    let mut inner = r.inner.lock().unwrap();
    inner.requests.push(Received { headers, body });
    let code = inner.statuses.pop_front().or(inner.always).unwrap_or(200);
    AxumStatus::from_u16(code).unwrap()
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut r = Self {
            inner: Arc::default(),
            url: String::new(),
        };
        r.url = format!("http://{}/hooks/agentd", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/hooks/agentd", axum::routing::post(receive))
            .with_state(r.clone());
        #[allow(clippy::disallowed_methods)]
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        r
    }

    pub fn answer(&self, statuses: &[u16]) {
        self.inner.lock().unwrap().statuses.extend(statuses);
    }

    pub fn always(&self, status: Option<u16>) {
        self.inner.lock().unwrap().always = status;
    }

    pub fn requests(&self) -> Vec<Received> {
        self.inner.lock().unwrap().requests.clone()
    }

    pub fn of_type(&self, kind: &str) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| r.json()["type"] == kind)
            .collect()
    }
}

/// Verifies a delivery exactly as a receiver following Standard Webhooks does: the HMAC key is
/// the base64 part of the secret, the signed content is `id.timestamp.raw-body`, any of the
/// space-separated `v1,` signatures may match, and the timestamp is within 5 minutes.
fn verify(secret: &str, r: &Received) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    verify_with_key(&key, r)
}

/// Verifies as a plugin holding a raw secret does (PHP's `hash_hmac('sha256', …, $secret)`):
/// the HMAC key is the secret's own bytes.
fn verify_raw(secret: &str, r: &Received) -> bool {
    verify_with_key(secret.as_bytes(), r)
}

fn verify_with_key(key: &[u8], r: &Received) -> bool {
    let (id, ts) = (r.header("webhook-id"), r.header("webhook-timestamp"));
    let ts_num: i64 = ts.parse().unwrap();
    if (Utc::now().timestamp() - ts_num).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    r.header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

async fn app_allowing_private(
    backend: Backend,
    tweak: impl FnOnce(&mut agentd::Settings),
) -> TestApp {
    spawn_app_with(backend, |s| {
        s.webhook_allow_private_networks = true;
        tweak(s);
    })
    .await
}

/// Registers a webhook; returns the 201 body.
async fn register(app: &TestApp, key: &str, url: &str, types: &[&str]) -> Value {
    let res = app
        .post("/api/v1/webhooks")
        .header("X-API-Key", key)
        .json(&json!({"url": url, "event_types": types, "description": "test receiver"}))
        .send()
        .await
        .unwrap();
    created(res).await
}

async fn new_conversation(app: &TestApp, key: &str) -> Value {
    let res = app
        .post("/api/v1/conversations")
        .header("X-API-Key", key)
        .json(&json!({"title": "Hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

fn call(app: &TestApp, method: Method, path: &str, key: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .header("X-API-Key", key)
}

async fn deliveries(app: &TestApp, key: &str, hook: &str) -> Vec<Value> {
    let res = call(
        app,
        Method::GET,
        &format!("/api/v1/webhooks/{hook}/deliveries?limit=100"),
        key,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body["items"].as_array().unwrap().clone()
}

backend_test! {
    async fn a_booking_made_through_chat_is_delivered_signed(backend: Backend) {
        let app = app_allowing_private(backend, |_| {}).await;
        let receiver = Receiver::start().await;
        let key = booking_org(&app, "clinic", json!({})).await;
        let hook = register(&app, &key, &receiver.url, &["appointment.created", "appointment.cancelled",
            "appointment.rescheduled", "conversation.created", "session.deleted"]).await;
        let secret = hook["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_") && STANDARD.decode(&secret[6..]).unwrap().len() >= 24);

        let session = Uuid::new_v4();
        for m in ["Hello, I need to book an appointment", "I need a general consultation", "Tomorrow at 2 PM",
                  "John Doe, john@example.com, 555-1234", "yes"] {
            assert_eq!(app.chat(&key, "clinic", session, m).await.status(), StatusCode::OK);
        }
        // Nothing is sent from the request path: the worker delivers.
        assert!(receiver.requests().is_empty());
        let stats = app.state.webhooks.run_once().await.unwrap();
        assert_eq!((stats.delivered, stats.retrying, stats.failed), (2, 0, 0), "{stats:?}");

        let created = receiver.of_type("appointment.created");
        assert_eq!(created.len(), 1);
        let r = &created[0];
        assert!(verify(&secret, r), "signature does not verify");
        assert_eq!(r.header("content-type"), "application/json");
        let event = r.json();
        assert_eq!(event["id"], r.header("webhook-id"));
        assert_eq!(event["org_id"], "clinic");
        assert!(event["created_at"].as_str().is_some());
        let number = event["data"]["confirmation_number"].as_str().unwrap().to_owned();
        assert!(number.starts_with("APPT-"));
        assert_eq!(event["data"]["customer_email"], "john@example.com");
        assert_eq!(event["data"]["conversation_id"], session.to_string());
        // A tampered body or another secret does not verify.
        let mut tampered = r.clone();
        tampered.body = Bytes::from(r.body.iter().rev().copied().collect::<Vec<u8>>());
        assert!(!verify(&secret, &tampered));
        assert!(!verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", r));

        let conv = receiver.of_type("conversation.created");
        assert_eq!(conv.len(), 1);
        assert_eq!(conv[0].json()["data"]["conversation_id"], session.to_string());
        assert_eq!(conv[0].json()["data"]["kind"], "session");

        // Cancellation and rescheduling emit their events; so does erasing the session.
        let org = agentd::domain::OrgId::parse("clinic").unwrap();
        let appt = Bookings(&app.state.store).get_appointment(&org, &number).await.unwrap().unwrap();
        let later = appt.start_at + Duration::hours(1);
        Bookings(&app.state.store).reschedule_appointment(&org, &number, later, later + Duration::minutes(30), agentd::domain::now()).await.unwrap();
        Bookings(&app.state.store).cancel_appointment(&org, &number, agentd::domain::now()).await.unwrap();
        let res = call(&app, Method::DELETE, &format!("/api/v1/sessions/{session}"), &key).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let stats = app.state.webhooks.run_once().await.unwrap();
        assert_eq!(stats.delivered, 3, "{stats:?}");
        let moved = receiver.of_type("appointment.rescheduled");
        assert_eq!(moved[0].json()["data"]["start_at"].as_str().unwrap().parse::<chrono::DateTime<Utc>>().unwrap(), later);
        assert_eq!(receiver.of_type("appointment.cancelled")[0].json()["data"]["status"], "cancelled");
        let deleted = receiver.of_type("session.deleted");
        assert_eq!(deleted[0].json()["data"]["session_id"], session.to_string());
        assert!(receiver.requests().iter().all(|r| verify(&secret, r)));

        // The delivery log shows each attempt.
        let log = deliveries(&app, &key, hook["webhook_id"].as_str().unwrap()).await;
        assert_eq!(log.len(), 5);
        assert!(log.iter().all(|l| l["outcome"] == "delivered" && l["status_code"] == 200 && l["latency_ms"].is_i64()), "{log:?}");
    }
}

backend_test! {
    async fn an_event_is_committed_with_its_change_or_not_at_all(backend: Backend) {
        let app = app_allowing_private(backend, |_| {}).await;
        let receiver = Receiver::start().await;
        let key = booking_org(&app, "clinic", json!({})).await;
        register(&app, &key, &receiver.url, &["appointment.created"]).await;
        let org = agentd::domain::OrgId::parse("clinic").unwrap();
        let start = Utc::now() + Duration::days(2);
        let booking = |n: &str| agentd::skills::booking::store::NewAppointment {
            confirmation_number: n.to_owned(), service_id: "follow-up".into(), service_name: "Follow-up".into(),
            start_at: start, end_at: start + Duration::minutes(15), customer_name: "A".into(),
            customer_email: "a@example.com".into(), customer_phone: None, end_user: None, conversation_id: None,
        };
        Bookings(&app.state.store).create_appointment(&org, &booking("APPT-AAAAAA"), agentd::domain::now()).await.unwrap();
        // The second booking of the same slot rolls back, and its event with it.
        assert!(Bookings(&app.state.store).create_appointment(&org, &booking("APPT-BBBBBB"), agentd::domain::now()).await.is_err());
        app.state.webhooks.run_once().await.unwrap();
        let got = receiver.of_type("appointment.created");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].json()["data"]["confirmation_number"], "APPT-AAAAAA");
    }
}

backend_test! {
    async fn failed_deliveries_are_retried_with_the_same_event_id_then_given_up(backend: Backend) {
        let app = app_allowing_private(backend, |s| s.webhook_retry_schedule = "1s,1s".to_owned()).await;
        let receiver = Receiver::start().await;
        let key = app.org_with_key("acme").await;
        let hook = register(&app, &key, &receiver.url, &["conversation.created"]).await;
        let worker = &app.state.webhooks;

        // 500, 500, then 200: delivered at the third attempt, one event id throughout.
        receiver.answer(&[500, 500]);
        new_conversation(&app, &key).await;
        let t0 = Utc::now();
        assert_eq!(worker.run_once_at(t0).await.unwrap().retrying, 1);
        // Not due again until its retry time.
        assert_eq!(worker.run_once_at(t0).await.unwrap().attempts(), 0);
        assert_eq!(worker.run_once_at(t0 + Duration::minutes(1)).await.unwrap().retrying, 1);
        assert_eq!(worker.run_once_at(t0 + Duration::minutes(2)).await.unwrap().delivered, 1);
        let got = receiver.requests();
        assert_eq!(got.len(), 3);
        let ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        assert!(got.iter().all(|r| verify(hook["secret"].as_str().unwrap(), r)));

        // Always 500: the first attempt and both retries fail, then the delivery is failed.
        receiver.always(Some(500));
        new_conversation(&app, &key).await;
        let t1 = t0 + Duration::minutes(10);
        assert_eq!(worker.run_once_at(t1).await.unwrap().retrying, 1);
        assert_eq!(worker.run_once_at(t1 + Duration::minutes(1)).await.unwrap().retrying, 1);
        assert_eq!(worker.run_once_at(t1 + Duration::minutes(2)).await.unwrap().failed, 1);
        assert_eq!(worker.run_once_at(t1 + Duration::hours(1)).await.unwrap().attempts(), 0);
        assert_eq!(receiver.requests().len(), 6);

        let log = deliveries(&app, &key, hook["webhook_id"].as_str().unwrap()).await;
        let outcomes: Vec<&str> = log.iter().map(|l| l["outcome"].as_str().unwrap()).collect();
        assert_eq!(outcomes, ["failed", "retry_scheduled", "retry_scheduled", "delivered", "retry_scheduled", "retry_scheduled"]);
        assert_eq!(log[0]["attempt"], 3);
        assert_eq!(log[0]["status_code"], 500);
        assert_eq!(log[0]["error"], "HTTP 500 Internal Server Error");
        assert!(log[1]["next_retry_at"].is_string());
        assert!(log[0]["next_retry_at"].is_null());
    }
}

backend_test! {
    async fn an_endpoint_failing_continuously_is_disabled_and_reported(backend: Backend) {
        // Defaults: 5-day disable period, the long retry schedule.
        let app = app_allowing_private(backend, |_| {}).await;
        let receiver = Receiver::start().await;
        receiver.always(Some(503));
        let key = app.org_with_key("acme").await;
        let hook = register(&app, &key, &receiver.url, &["conversation.created"]).await;
        let id = hook["webhook_id"].as_str().unwrap();
        let worker = &app.state.webhooks;
        new_conversation(&app, &key).await;
        let t0 = Utc::now();
        assert_eq!(worker.run_once_at(t0).await.unwrap().retrying, 1);
        // Failing since t0; six days later the next failure switches the endpoint off.
        let stats = worker.run_once_at(t0 + Duration::days(6)).await.unwrap();
        assert_eq!((stats.retrying, stats.disabled), (1, 1), "{stats:?}");

        let view: Value = call(&app, Method::GET, &format!("/api/v1/webhooks/{id}"), &key).send().await.unwrap().json().await.unwrap();
        assert_eq!(view["active"], false);
        assert!(view["disabled_reason"].as_str().unwrap().contains("failed"), "{view}");
        let log = deliveries(&app, &key, id).await;
        assert_eq!(log[0]["outcome"], "endpoint_disabled", "{log:?}");

        // Disabled: nothing more is sent, and new events are not queued for it.
        new_conversation(&app, &key).await;
        assert_eq!(worker.run_once_at(t0 + Duration::days(8)).await.unwrap().attempts(), 0);
        assert_eq!(receiver.requests().len(), 2);

        // Re-enabled after the fix: the pending delivery goes out.
        receiver.always(None);
        let res = call(&app, Method::PATCH, &format!("/api/v1/webhooks/{id}"), &key).json(&json!({"active": true})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let view: Value = res.json().await.unwrap();
        assert_eq!((view["active"].as_bool(), view["disabled_reason"].is_null()), (Some(true), true), "{view}");
        assert_eq!(worker.run_once_at(t0 + Duration::days(9)).await.unwrap().delivered, 1);
    }
}

backend_test! {
    async fn pending_events_are_delivered_after_a_restart_with_the_same_id(backend: Backend) {
        let first = app_allowing_private(backend, |_| {}).await;
        let receiver = Receiver::start().await;
        let key = first.org_with_key("acme").await;
        let hook = register(&first, &key, &receiver.url, &["conversation.created"]).await;
        // One event gets an attempt that fails; two are never attempted before the "crash".
        receiver.answer(&[500]);
        new_conversation(&first, &key).await;
        assert_eq!(first.state.webhooks.run_once().await.unwrap().retrying, 1);
        let failed_id = receiver.requests()[0].header("webhook-id").to_owned();
        let mut expected = vec![new_conversation(&first, &key).await["id"].clone(), new_conversation(&first, &key).await["id"].clone()];
        first.stop.cancel();

        let second = first.second_instance(|s| s.webhook_allow_private_networks = true).await;
        let stats = second.state.webhooks.run_once_at(Utc::now() + Duration::hours(1)).await.unwrap();
        assert_eq!(stats.delivered, 3, "{stats:?}");
        let got = receiver.requests();
        assert_eq!(got.len(), 4);
        assert_eq!(got.iter().filter(|r| r.header("webhook-id") == failed_id).count(), 2);
        let mut seen: Vec<Value> = got[1..].iter().map(|r| r.json()["data"]["conversation_id"].clone()).collect();
        seen.retain(|c| expected.contains(c));
        expected.sort_by_key(|v| v.to_string());
        seen.sort_by_key(|v| v.to_string());
        assert_eq!(seen, expected);
        assert!(got.iter().all(|r| verify(hook["secret"].as_str().unwrap(), r)));
    }
}

backend_test! {
    async fn two_instances_never_send_the_same_attempt_twice(backend: Backend) {
        let a = app_allowing_private(backend, |_| {}).await;
        let b = a.second_instance(|s| s.webhook_allow_private_networks = true).await;
        let receiver = Receiver::start().await;
        let key = a.org_with_key("acme").await;
        register(&a, &key, &receiver.url, &["conversation.created"]).await;
        for _ in 0..12 {
            new_conversation(&a, &key).await;
        }
        let (x, y) = tokio::join!(a.state.webhooks.run_once(), b.state.webhooks.run_once());
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.delivered + y.delivered, 12, "{x:?} {y:?}");
        let mut ids: Vec<String> = receiver.requests().iter().map(|r| r.header("webhook-id").to_owned()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 12);
        assert_eq!(receiver.requests().len(), 12);
    }
}

backend_test! {
    async fn webhooks_are_managed_per_organisation(backend: Backend) {
        let app = app_allowing_private(backend, |_| {}).await;
        let receiver = Receiver::start().await;
        let a = app.org_with_key("org-a").await;
        let b = app.org_with_key("org-b").await;
        let hook = register(&app, &a, &receiver.url, &["conversation.created"]).await;
        let id = hook["webhook_id"].as_str().unwrap();

        // Another organisation sees nothing of it.
        for (method, path) in [(Method::GET, format!("/api/v1/webhooks/{id}")), (Method::DELETE, format!("/api/v1/webhooks/{id}")),
                               (Method::POST, format!("/api/v1/webhooks/{id}/test")), (Method::GET, format!("/api/v1/webhooks/{id}/deliveries"))] {
            let (status, body) = problem(call(&app, method.clone(), &path, &b).send().await.unwrap()).await;
            assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")), "{method} {path}");
        }
        let (status, _) = problem(call(&app, Method::PATCH, &format!("/api/v1/webhooks/{id}"), &b).json(&json!({"active": false})).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let list: Value = call(&app, Method::GET, "/api/v1/webhooks", &b).send().await.unwrap().json().await.unwrap();
        assert_eq!(list["total"], 0);
        // Org B's events do not reach org A's endpoint.
        new_conversation(&app, &b).await;
        assert_eq!(app.state.webhooks.run_once().await.unwrap().attempts(), 0);

        // Org A manages its own: list (no secret), update, test ping, delete.
        let list: Value = call(&app, Method::GET, "/api/v1/webhooks", &a).send().await.unwrap().json().await.unwrap();
        assert_eq!((list["total"].as_i64(), list["has_more"].as_bool()), (Some(1), Some(false)));
        assert!(list["items"][0].get("secret").is_none(), "{list}");
        let res = call(&app, Method::PATCH, &format!("/api/v1/webhooks/{id}"), &a)
            .json(&json!({"event_types": ["appointment.created", "session.deleted"], "description": "renamed"})).send().await.unwrap();
        let view: Value = res.json().await.unwrap();
        assert_eq!(view["event_types"], json!(["appointment.created", "session.deleted"]));
        assert_eq!(view["description"], "renamed");
        let res = call(&app, Method::POST, &format!("/api/v1/webhooks/{id}/test"), &a).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let test: Value = res.json().await.unwrap();
        assert_eq!((test["attempt"]["outcome"].as_str(), test["attempt"]["status_code"].as_i64()), (Some("delivered"), Some(200)), "{test}");
        let ping = receiver.of_type("webhook.test");
        assert_eq!(ping.len(), 1);
        assert_eq!(ping[0].header("webhook-id"), test["event"]["id"].as_str().unwrap());
        assert!(verify(hook["secret"].as_str().unwrap(), &ping[0]));
        assert_eq!(ping[0].json()["data"]["webhook_id"], id);
        let res = call(&app, Method::DELETE, &format!("/api/v1/webhooks/{id}"), &a).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let res = call(&app, Method::GET, &format!("/api/v1/webhooks/{id}"), &a).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);

        // End users cannot manage webhooks.
        let token = app.mint_token(&a, "alice").await;
        let (status, body) = problem(app.get("/api/v1/webhooks").bearer_auth(&token).send().await.unwrap()).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")));
    }
}

backend_test! {
    async fn registration_validates_targets_event_types_and_secrets(backend: Backend) {
        let app = spawn_app_with(backend, |s| s.webhook_allow_private_networks = false).await;
        let key = app.org_with_key("acme").await;
        let post = |body: Value| {
            let (app, key) = (&app, &key);
            async move { problem(app.post("/api/v1/webhooks").header("X-API-Key", key).json(&body).send().await.unwrap()).await }
        };
        for url in ["http://127.0.0.1/hook", "http://10.0.0.1/", "http://169.254.169.254/", "http://[::1]/", "http://localhost:8080/",
                    "http://[::ffff:0:7f00:1]/", "http://[::ffff:0:a9fe:a9fe]/", "http://[64:ff9b::a9fe:a9fe]/", "http://[fd00::1]/",
                    "ftp://93.184.216.34/", "not a url"] {
            let (status, body) = post(json!({"url": url, "event_type": "appointment.created"})).await;
            assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_ERROR")), "{url}: {body}");
            assert_eq!(body["errors"][0]["field"], "url", "{body}");
        }
        let (status, body) = post(json!({"url": "https://93.184.216.34/", "event_types": ["appointment.created", "appointment.deleted"]})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let msg = body["errors"][0]["message"].as_str().unwrap();
        assert!(msg.contains("appointment.deleted") && msg.contains("appointment.cancelled") && msg.contains("session.deleted"), "{msg}");
        assert_eq!(body["errors"][0]["field"], "event_types[1]");
        let (status, body) = post(json!({"url": "https://93.184.216.34/"})).await;
        assert_eq!((status, body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("event_types")));
        for bad in ["whsec_c2hvcnQ=", "fifteen-chars!!", " wordpress_webhook_secret "] {
            let (status, body) = post(json!({"url": "https://93.184.216.34/", "event_type": "appointment.created", "secret": bad})).await;
            assert_eq!((status, body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("secret")), "{bad:?}: {body}");
            assert!(body["errors"][0]["message"].as_str().unwrap().contains("whsec_") || bad.starts_with(' '), "{body}");
        }

        // A given secret is kept; the alias route works; a public IP literal is accepted.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let res = app.post("/api/v1/webhooks/register").header("X-API-Key", &key)
            .json(&json!({"url": "https://93.184.216.34/hook", "event_type": "appointment.created", "secret": secret})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let body: Value = res.json().await.unwrap();
        assert_eq!((body["secret"].as_str(), body["active"].as_bool()), (Some(secret), Some(true)));
        assert_eq!(body["event_types"], json!(["appointment.created"]));
        assert!(body["created_at"].is_string());

        // Unsafe targets are refused when updating too.
        let id = body["webhook_id"].as_str().unwrap();
        let (status, _) = problem(call(&app, Method::PATCH, &format!("/api/v1/webhooks/{id}"), &key)
            .json(&json!({"url": "http://192.168.0.10/"})).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

backend_test! {
    async fn the_openapi_document_describes_webhook_events(backend: Backend) {
        let app = spawn_app(backend).await;
        let spec: Value = app.get("/openapi.json").send().await.unwrap().json().await.unwrap();
        let schemas = &spec["components"]["schemas"];
        for s in ["WebhookEvent", "WebhookEventData", "ConversationCreatedData", "SessionDeletedData", "WebhookTestData", "DeliveryAttempt", "RegisteredWebhook"] {
            assert!(schemas.get(s).is_some(), "schema {s} missing");
        }
        for path in ["/api/v1/webhooks", "/api/v1/webhooks/register", "/api/v1/webhooks/{id}", "/api/v1/webhooks/{id}/test", "/api/v1/webhooks/{id}/deliveries"] {
            assert!(spec["paths"].get(path).is_some(), "{path} undocumented");
        }
        assert!(spec["tags"].as_array().unwrap().iter().any(|t| t["name"] == "webhooks"));
    }
}

backend_test! {
    async fn the_wordpress_plugins_registration_with_a_plain_secret_is_accepted_and_verifies(backend: Backend) {
        let app = app_allowing_private(backend, |_| {}).await;
        let receiver = Receiver::start().await;
        let key = booking_org(&app, "clinic", json!({})).await;

        // Exactly what the seed WordPress plugin sends.
        let res = app.post("/api/v1/webhooks/register").header("X-API-Key", &key)
            .json(&json!({"event_type": "appointment.created", "url": receiver.url, "secret": "wordpress_webhook_secret"}))
            .send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let hook: Value = res.json().await.unwrap();
        assert_eq!(hook["secret"], "wordpress_webhook_secret");
        assert_eq!(hook["event_types"], json!(["appointment.created"]));
        // The plugin reads webhook_id; every resource also has id.
        assert_eq!(hook["webhook_id"], hook["id"]);
        assert!(hook["id"].as_str().unwrap().parse::<Uuid>().is_ok());

        let org = agentd::domain::OrgId::parse("clinic").unwrap();
        let start = Utc::now() + Duration::days(2);
        let booking = agentd::skills::booking::store::NewAppointment {
            confirmation_number: "APPT-WPWPWP".to_owned(), service_id: "follow-up".into(), service_name: "Follow-up".into(),
            start_at: start, end_at: start + Duration::minutes(15), customer_name: "Mary Jones".into(),
            customer_email: "mary@example.com".into(), customer_phone: None, end_user: None, conversation_id: None,
        };
        Bookings(&app.state.store).create_appointment(&org, &booking, agentd::domain::now()).await.unwrap();
        let stats = app.state.webhooks.run_once().await.unwrap();
        assert_eq!(stats.delivered, 1, "{stats:?}");

        let got = receiver.of_type("appointment.created");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].json()["data"]["confirmation_number"], "APPT-WPWPWP");
        // Verified with the secret's own bytes, as the plugin's hash_hmac does...
        assert!(verify_raw("wordpress_webhook_secret", &got[0]), "raw signature does not verify");
        assert!(!verify_raw("wordpress_webhook_secreT", &got[0]));
        // ...and the test ping verifies the same way.
        let res = call(&app, Method::POST, &format!("/api/v1/webhooks/{}/test", hook["id"].as_str().unwrap()), &key).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(verify_raw("wordpress_webhook_secret", &receiver.of_type("webhook.test")[0]));

        // GET and the list carry both id and webhook_id.
        let view: Value = call(&app, Method::GET, &format!("/api/v1/webhooks/{}", hook["id"].as_str().unwrap()), &key)
            .send().await.unwrap().json().await.unwrap();
        assert_eq!((&view["id"], &view["webhook_id"]), (&hook["id"], &hook["id"]));
        let list: Value = call(&app, Method::GET, "/api/v1/webhooks", &key).send().await.unwrap().json().await.unwrap();
        assert_eq!(list["items"][0]["id"], hook["id"]);

        // Without a secret, one is generated: whsec_ and 32 random bytes.
        let res = app.post("/api/v1/webhooks/register").header("X-API-Key", &key)
            .json(&json!({"event_type": "appointment.created", "url": receiver.url})).send().await.unwrap();
        let generated: Value = created(res).await;
        let secret = generated["secret"].as_str().unwrap();
        assert_eq!(STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap().len(), 32);
    }
}
