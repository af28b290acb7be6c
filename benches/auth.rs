//! What authentication and rate limiting add to a request: an authenticated `GET /api/v1/me`
//! with a cached API key against `GET /health`, both through the full middleware stack
//! (in-process, no sockets), plus the limiter on its own. Run with `cargo bench --bench auth`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use agentd::domain::{OrgId, RateLimit};
use agentd::rate_limit::OrgRateLimiter;
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
    let me = || {
        Request::get("/api/v1/me")
            .header("x-api-key", &key)
            .body(Body::empty())
            .unwrap()
    };
    // Warm the key and org caches: the first request pays the argon2 verification.
    let res = rt.block_on(router.clone().oneshot(me())).unwrap();
    assert_eq!(res.status(), 200);

    let mut group = c.benchmark_group("request");
    group.bench_function("GET /health (no auth)", |b| {
        b.to_async(&rt).iter(|| async {
            router
                .clone()
                .oneshot(Request::get("/health").body(Body::empty()).unwrap())
                .await
                .unwrap()
        });
    });
    group.bench_function("GET /api/v1/me (cached API key + rate limit)", |b| {
        b.to_async(&rt)
            .iter(|| async { router.clone().oneshot(me()).await.unwrap() });
    });
    group.finish();

    let limiter = OrgRateLimiter::new(0.25);
    let org = OrgId::parse("bench").unwrap();
    let quota = RateLimit {
        requests: 1_000_000,
        window_seconds: 1,
    };
    c.bench_function("rate limiter check (org + end user)", |b| {
        b.iter(|| limiter.check(&org, quota, Some("visitor-1")));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
