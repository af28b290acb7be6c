//! A client generated from `/openapi.json` with openapi-python-client does a chat turn, reads
//! a problem and streams a turn (issue 11.10): the document is good enough for the tools
//! plugin authors use. `.ci/run` installs the generator from PyPI; elsewhere the test is
//! skipped when it is missing (CI never skips it).

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::helpers::*;

fn generator_missing() -> Option<String> {
    match Command::new("python3")
        .args(["-m", "openapi_python_client", "--version"])
        .output()
    {
        Ok(out) if out.status.success() => None,
        _ => Some(
            "openapi-python-client is not installed (pip install openapi-python-client)".into(),
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_python_client_chats_reads_a_problem_and_streams() {
    if let Some(why) = generator_missing() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must run the generated-client test: {why}"
        );
        eprintln!("SKIPPED a_generated_python_client_chats_reads_a_problem_and_streams: {why}");
        return;
    }
    let app = spawn_app(Backend::Sqlite).await;
    let key = booking_org(&app, "clinic", json!({})).await;
    let spec = app
        .get("/openapi.json")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("openapi.json"), spec).unwrap();

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).to_owned();
    let (work, base) = (dir.path().to_owned(), app.base.clone());
    // Blocking on the children would stall a runtime worker the server needs.
    let out = tokio::task::spawn_blocking(move || {
        let generated = Command::new("python3")
            .current_dir(&work)
            .args([
                "-m",
                "openapi_python_client",
                "generate",
                "--path",
                "openapi.json",
            ])
            .args(["--output-path", "client"])
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&generated.stdout),
            String::from_utf8_lossy(&generated.stderr)
        );
        assert!(generated.status.success(), "generation failed: {said}");
        // Every schema becomes a model: no "Unable to process schema … duplicate models".
        assert!(
            !said.contains("Warning"),
            "the generator skipped something: {said}"
        );
        Command::new("python3")
            .arg(root.join("e2e/python/generated_client.py"))
            .arg(work.join("client"))
            .args([base.as_str(), key.as_str(), "clinic"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "the generated client failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
