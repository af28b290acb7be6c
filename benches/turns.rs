//! A whole chat turn through the full stack, in-process: `POST /api/v1/chat` with the offline
//! model on SQLite (lease, history window, model, commit). New session per iteration or one
//! long session, to show the history read stays O(window). Run with
//! `cargo bench --bench turns`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};

mod common;
use tower::ServiceExt;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (router, key, _dir) = common::app(&rt);
    let chat = |session: uuid::Uuid| {
        let body =
            serde_json::json!({"message": "Hello there", "session_id": session, "org_id": "bench"});
        Request::post("/api/v1/chat")
            .header("x-api-key", &key)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let mut group = c.benchmark_group("turn");
    group.bench_function("POST /api/v1/chat, new session each time", |b| {
        b.to_async(&rt).iter(|| async {
            let res = router
                .clone()
                .oneshot(chat(uuid::Uuid::new_v4()))
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        });
    });
    let long = uuid::Uuid::new_v4();
    group.bench_function("POST /api/v1/chat, one ever-growing session", |b| {
        b.to_async(&rt).iter(|| async {
            let res = router.clone().oneshot(chat(long)).await.unwrap();
            assert_eq!(res.status(), 200);
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
