//! The browser playground: its page and assets, and a booking made through it in headless
//! Chromium (`e2e/playground.mjs`, driven by playwright-core).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use reqwest::StatusCode;

use crate::backend_test;
use crate::helpers::*;

backend_test! {
    async fn the_playground_is_one_public_page_with_its_assets_compiled_in(backend: Backend) {
        let app = spawn_app(backend).await;

        // No credentials: the page is public.
        let res = app.get("/playground").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        assert_eq!(res.headers()["cache-control"], "no-cache");
        let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("default-src 'self'"), "{csp}");
        let html = res.text().await.unwrap();
        assert!(html.contains(r#"<script src="/playground/app.js" defer></script>"#), "{html}");
        assert!(html.contains(r#"href="/playground/style.css""#), "{html}");
        for id in ["credential", "org", "session", "new-session", "message", "send", "transcript", "state", "confirmation", "error"] {
            assert!(html.contains(&format!(r#"data-testid="{id}""#)), "data-testid {id} missing");
        }
        assert!(html.contains(r#"aria-live="polite""#));
        // The CSP forbids inline scripts: every script is a file.
        assert_eq!(html.matches("<script").count(), html.matches("<script src=").count());

        let res = app.get("/playground/app.js").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/javascript") || ct.starts_with("application/javascript"), "{ct}");
        assert_eq!(res.headers()["cache-control"], "no-cache");
        let js = res.text().await.unwrap();
        assert!(js.contains("/api/v1/chat/stream") && js.contains("getReader"), "the script streams the chat");

        let res = app.get("/playground/style.css").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
        let css = res.text().await.unwrap();

        // Self-contained: nothing is loaded from anywhere else.
        for (name, body) in [("html", &html), ("js", &js), ("css", &css)] {
            assert!(!body.contains("http://") && !body.contains("https://"), "{name} names an external URL");
            assert!(!body.contains("//cdn") && !body.contains("@import"), "{name} loads something external");
        }
    }
}

/// Why the browser test cannot run here, if it cannot.
fn e2e_missing(root: &Path) -> Option<String> {
    if !Path::new("/usr/bin/chromium").exists() {
        return Some("/usr/bin/chromium is not installed (apt-get install chromium)".into());
    }
    if !root.join("e2e/node_modules/playwright-core").exists() {
        return Some("e2e/node_modules/playwright-core is missing (cd e2e && npm ci)".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is not on PATH".into());
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playground_books_an_appointment_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(why) = e2e_missing(root) {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must run the browser test: {why}"
        );
        eprintln!("SKIPPED playground_books_an_appointment_in_headless_chromium: {why}");
        return;
    }
    let app = spawn_app(Backend::Sqlite).await;
    let key = agentd::admin::bootstrap_demo(&app.state.store, &app.state.tool_names())
        .await
        .unwrap()
        .unwrap();

    // Twice on the same database: each run frees the slot it booked (issue 11.9).
    let mut line = String::new();
    for run in 1..=2 {
        let shot = std::env::var("PLAYGROUND_SCREENSHOT").ok();
        let (base, dir, k) = (app.base.clone(), root.to_owned(), key.clone());
        let started = Instant::now();
        // Blocking on the child would stall a runtime worker the server needs.
        let out = tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new("node");
            cmd.current_dir(dir)
                .args(["e2e/playground.mjs", &base, &k, "demo"]);
            if let Some(path) = shot {
                cmd.env("PLAYGROUND_SCREENSHOT", path);
            }
            cmd.output()
        })
        .await
        .unwrap()
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "e2e/playground.mjs run {run} took {:?}\n{stderr}",
            started.elapsed()
        );
        assert!(
            out.status.success(),
            "the browser test failed on run {run} ({}):\n{stdout}\n{stderr}",
            out.status
        );
        line = stdout
            .lines()
            .find(|l| l.starts_with("CONFIRMATION "))
            .unwrap_or_default()
            .to_owned();
        assert!(
            line.contains("APPT-"),
            "no booking number printed:\n{stdout}"
        );
    }

    // The booking the page showed is real.
    let number = line.trim_start_matches("CONFIRMATION ").trim();
    let res = app
        .get(&format!("/api/v1/appointments/{number}"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{number} was not stored");
}
