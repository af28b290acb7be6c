//! The built-in offline model through the real API: a fresh install holds whole conversations.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::backend_test;
use crate::helpers::*;

async fn say(app: &TestApp, key: &str, org: &str, session: Uuid, message: &str) -> Value {
    let res = app.chat(key, org, session, message).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

backend_test! {
    async fn the_seed_flow_books_an_appointment_through_chat(backend: Backend) {
        let app = spawn_app(backend).await;
        let key = booking_org(&app, "clinic", json!({})).await;
        let session = Uuid::new_v4();
        let mut states = Vec::new();
        let mut last = Value::Null;
        for message in [
            "Hello, I need to book an appointment",
            "I need a general consultation",
            "Tomorrow at 2 PM",
            "John Doe, john@example.com, 555-1234",
            "yes",
        ] {
            last = say(&app, &key, "clinic", session, message).await;
            states.push(last["metadata"]["current_state"].as_str().unwrap().to_owned());
        }
        assert_eq!(states, ["COLLECT_SERVICE", "COLLECT_DATETIME", "COLLECT_CONTACT", "CONFIRM", "COMPLETE"]);
        let reply = last["response"].as_str().unwrap();
        let number = reply.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).find(|w| w.starts_with("APPT-")).expect(reply);
        assert_eq!(last["metadata"]["model"], "offline");
        assert_eq!(last["metadata"]["tool_calls"][0]["name"], "create_appointment");

        // The booking is real: the appointments API shows it, tomorrow at 14:00 Berlin time.
        let appt: Value = app.get(&format!("/api/v1/appointments/{number}")).header("X-API-Key", &key).send().await.unwrap().json().await.unwrap();
        assert_eq!((appt["customer_name"].as_str(), appt["customer_email"].as_str()), (Some("John Doe"), Some("john@example.com")));
        assert_eq!(appt["customer_phone"], "555-1234");
        assert_eq!(appt["service_id"], "general-consultation");
        let start: chrono::DateTime<chrono::Utc> = appt["start_at"].as_str().unwrap().parse().unwrap();
        let local = start.with_timezone(&chrono_tz::Europe::Berlin);
        let tomorrow = (chrono::Utc::now().with_timezone(&chrono_tz::Europe::Berlin) + chrono::Duration::days(1)).date_naive();
        assert_eq!((local.date_naive(), local.format("%H:%M").to_string()), (tomorrow, "14:00".to_owned()));

        // The same slot cannot be booked twice: a second conversation is offered other times.
        let other = Uuid::new_v4();
        say(&app, &key, "clinic", other, "I'd like a general consultation").await;
        let r = say(&app, &key, "clinic", other, "tomorrow at 2pm").await;
        assert_eq!(r["metadata"]["current_state"], "COLLECT_DATETIME", "{r}");

        let history = app.history(&key, session).await;
        assert_eq!(history["metadata"]["current_state"], "COMPLETE");
    }
}

backend_test! {
    async fn tasks_are_added_listed_and_completed_by_title(backend: Backend) {
        let app = spawn_app(backend).await;
        let key = booking_org(&app, "clinic", json!({})).await;
        let token = app.mint_token(&key, "alice").await;
        let session = Uuid::new_v4();
        let say = |message: &'static str| {
            let (app, token) = (&app, &token);
            async move {
                let res = app.post("/api/v1/chat").bearer_auth(token)
                    .json(&json!({"message": message, "session_id": session, "org_id": "clinic"})).send().await.unwrap();
                assert_eq!(res.status(), StatusCode::OK);
                res.json::<Value>().await.unwrap()
            }
        };
        let r = say("add a task to buy milk").await;
        assert_eq!(r["metadata"]["tool_calls"][0]["name"], "add_task");
        say("remind me to call Bob").await;
        let r = say("mark buy milk as done").await;
        let names: Vec<&str> = r["metadata"]["tool_calls"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["list_tasks", "complete_task"]);
        assert_eq!(r["metadata"]["tool_calls"][1]["result"]["task"]["status"], "completed");
        let r = say("list completed tasks").await;
        let tasks = r["metadata"]["tool_calls"][0]["result"]["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 1);
        assert!(r["response"].as_str().unwrap().to_lowercase().contains("buy milk"), "{r}");

        // Tasks belong to the end user: bob has none.
        let bob = app.mint_token(&key, "bob").await;
        let res = app.post("/api/v1/chat").bearer_auth(&bob)
            .json(&json!({"message": "show my tasks", "session_id": Uuid::new_v4(), "org_id": "clinic"})).send().await.unwrap();
        let r: Value = res.json().await.unwrap();
        assert_eq!(r["metadata"]["tool_calls"][0]["result"]["tasks"].as_array().unwrap().len(), 0);
    }
}

backend_test! {
    async fn the_first_run_demo_org_holds_a_booking_conversation(backend: Backend) {
        let app = spawn_app(backend).await;
        let key = agentd::admin::bootstrap_demo(&app.state.store, &app.state.tool_names()).await.unwrap().unwrap();
        let session = Uuid::new_v4();
        let mut last = Value::Null;
        for m in ["Hello, I need to book an appointment", "I need a general consultation", "Tomorrow at 2 PM",
                  "John Doe, john@example.com, 555-1234", "yes"] {
            last = say(&app, &key, "demo", session, m).await;
        }
        assert!(last["response"].as_str().unwrap().contains("APPT-"), "{last}");
    }
}

backend_test! {
    async fn the_readme_flow_runs_twice_on_one_database_when_the_booking_is_cancelled(backend: Backend) {
        let app = spawn_app(backend).await;
        let key = agentd::admin::bootstrap_demo(&app.state.store, &app.state.tool_names()).await.unwrap().unwrap();
        for run in 1..=2 {
            let session = Uuid::new_v4();
            let mut last = Value::Null;
            for m in ["Hello, I need to book an appointment", "I need a general consultation", "Tomorrow at 2 PM",
                      "John Doe, john@example.com, 555-1234", "yes"] {
                last = say(&app, &key, "demo", session, m).await;
            }
            let reply = last["response"].as_str().unwrap();
            let number = reply.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).find(|w| w.starts_with("APPT-"))
                .unwrap_or_else(|| panic!("run {run} booked nothing: {last}")).to_owned();
            // The README's last step: cancel it, which frees the slot for the next run.
            let res = app.post(&format!("/api/v1/appointments/{number}/cancel")).header("X-API-Key", &key).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let appt: Value = res.json().await.unwrap();
            assert_eq!(appt["status"], "cancelled");
            // Cancelling again is harmless; an unknown number is 404.
            let again = app.post(&format!("/api/v1/appointments/{}/cancel", number.to_lowercase())).header("X-API-Key", &key).send().await.unwrap();
            assert_eq!(again.status(), StatusCode::OK);
            let missing = app.post("/api/v1/appointments/APPT-NOPE00/cancel").header("X-API-Key", &key).send().await.unwrap();
            assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        }
        // Bookings are the business's records: an end user's token cannot cancel through the API.
        let token = app.mint_token(&key, "visitor").await;
        let res = app.post("/api/v1/appointments/APPT-NOPE00/cancel").bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
}
