//! End-user tokens: minting, authenticating with them, and every way a token can be bad.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_test;
use crate::helpers::*;

fn sign(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn claims(org: &str, exp_in: Duration) -> Value {
    let now = Utc::now();
    json!({"sub": "visitor-1", "org": org, "iat": now.timestamp(), "exp": (now + exp_in).timestamp(), "iss": "agentd"})
}

backend_test! {
    async fn a_minted_token_authenticates_as_the_end_user(backend: Backend) {
        let app = spawn_app(backend).await;
        let key = app.org_with_key("acme").await;
        let res = app.post("/api/v1/auth/token").header("X-API-Key", &key)
            .json(&json!({"user_id": "wp-user-42", "ttl_seconds": 600})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        assert!(res.headers().contains_key("ratelimit-remaining"));
        let issued: Value = res.json().await.unwrap();
        assert_eq!((issued["token_type"].as_str(), issued["expires_in"].as_u64()), (Some("Bearer"), Some(600)));

        let me: Value = app.me_with_token(issued["token"].as_str().unwrap()).await.json().await.unwrap();
        assert_eq!(me["org_id"], "acme");
        assert_eq!(me["credential"], "end_user_token");
        assert_eq!(me["user_id"], "wp-user-42");
    }
}

backend_test! {
    async fn token_requests_are_validated_and_bounded(backend: Backend) {
        let app = spawn_app(backend).await;
        let key = app.org_with_key("acme").await;
        for (body, field) in [
            (json!({"user_id": "u", "ttl_seconds": 10}), "ttl_seconds"),
            (json!({"user_id": "u", "ttl_seconds": 10_000_000}), "ttl_seconds"),
            (json!({"user_id": "  "}), "user_id"),
            (json!({"ttl_seconds": 60}), "user_id"),
        ] {
            let res = app.post("/api/v1/auth/token").header("X-API-Key", &key).json(&body).send().await.unwrap();
            let (status, problem) = problem(res).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        }
        // End users cannot mint tokens for others.
        let token = app.mint_token(&key, "visitor").await;
        let res = app.post("/api/v1/auth/token").bearer_auth(&token).json(&json!({"user_id": "else"})).send().await.unwrap();
        let (status, body) = problem(res).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")));
    }
}

backend_test! {
    async fn bad_tokens_are_unauthorized(backend: Backend) {
        let app = spawn_app(backend).await;
        app.org_with_key("acme").await;
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let alg_none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims("acme", Duration::minutes(5)).to_string()));
        let mut no_exp = claims("acme", Duration::minutes(5));
        no_exp.as_object_mut().unwrap().remove("exp");
        let hs512 = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims("acme", Duration::minutes(5)),
            &EncodingKey::from_secret(JWT_SECRET.as_bytes())).unwrap();
        let cases = [
            ("alg none", alg_none),
            ("wrong signature", sign(&claims("acme", Duration::minutes(5)), "another-secret")),
            ("no exp", sign(&no_exp, JWT_SECRET)),
            ("other algorithm", hs512),
            ("unknown org", sign(&claims("ghost", Duration::minutes(5)), JWT_SECRET)),
            ("invalid org id", sign(&claims("../etc", Duration::minutes(5)), JWT_SECRET)),
            ("garbage", "not.a.jwt".to_owned()),
        ];
        for (case, token) in cases {
            let (status, body) = problem(app.me_with_token(&token).await).await;
            assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHORIZED")), "{case}");
        }
        let expired = sign(&claims("acme", Duration::hours(-1)), JWT_SECRET);
        let (status, body) = problem(app.me_with_token(&expired).await).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("TOKEN_EXPIRED")));
        // A well-formed token for the org works, so the cases above failed for their own reason.
        let good = sign(&claims("acme", Duration::minutes(5)), JWT_SECRET);
        assert_eq!(app.me_with_token(&good).await.status(), StatusCode::OK);
    }
}
