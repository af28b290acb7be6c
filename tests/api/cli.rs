//! The `agentd` binary: first run, management commands, JSON logs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const CLI_JWT_SECRET: &str = "cli-test-secret-of-at-least-32-bytes";

fn agentd(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentd"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("JWT_SECRET", CLI_JWT_SECRET);
    cmd
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `agentd` on a free port; returns it and a channel of its stdout and stderr lines.
fn start(cmd: &mut Command) -> (Server, mpsc::Receiver<String>) {
    let mut child = cmd
        .env("PORT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .for_each(|l| {
                let _ = tx.send(l);
            })
    });
    std::thread::spawn(move || {
        BufReader::new(err)
            .lines()
            .map_while(Result::ok)
            .for_each(|l| {
                let _ = tx2.send(l);
            })
    });
    (Server(child), rx)
}

fn wait_for(rx: &mpsc::Receiver<String>, what: impl Fn(&str) -> bool) -> String {
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server output timed out");
        if what(&line) {
            return line;
        }
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn first_run_creates_the_demo_org_and_prints_a_working_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let (server, rx) = start(&mut agentd(dir.path()));
    let key_line = wait_for(&rx, |l| l.trim_start().starts_with("ak_"));
    let key = key_line.trim().to_owned();
    let curl = wait_for(&rx, |l| l.contains("curl -i http://"));
    let url = curl
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    assert!(url.ends_with("/api/v1/me"), "{url}");
    assert!(
        dir.path().join("data/agentd.db").exists(),
        "SQLite file created under ./data"
    );

    let res = reqwest::blocking_get(&url, &key);
    assert_eq!(res["org_id"], "demo");
    drop(server);

    // Second start: the org exists, no new key is printed.
    let (_server, rx) = start(&mut agentd(dir.path()));
    let line = wait_for(&rx, |l| l.contains("listening") || l.contains("ak_"));
    assert!(
        line.contains("listening"),
        "a key was printed again: {line}"
    );

    let list = run(agentd(dir.path()).args(["orgs", "list"]));
    assert!(
        list.contains("demo") && list.contains("Demo Clinic"),
        "{list}"
    );
}

#[test]
fn management_commands_work_on_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/cli.db?mode=rwc", dir.path().display());
    let cmd = || {
        let mut c = agentd(dir.path());
        c.env("DATABASE_URL", &db);
        c
    };
    assert!(run(cmd().arg("migrate")).contains("up to date"));
    let created: Value = serde_json::from_str(&run(cmd().args([
        "orgs",
        "create",
        "acme",
        "--name",
        "Acme",
        "--tier",
        "basic",
        "--json",
        r#"{"time_zone": "Europe/Berlin"}"#,
    ])))
    .unwrap();
    assert_eq!(
        (created["tier"].as_str(), created["time_zone"].as_str()),
        (Some("basic"), Some("Europe/Berlin"))
    );

    let updated: Value = serde_json::from_str(&run(cmd().args([
        "orgs",
        "update",
        "acme",
        "--tier",
        "custom",
        "--requests",
        "5",
        "--window-seconds",
        "60",
    ])))
    .unwrap();
    assert_eq!(updated["rate_limit"]["requests"], 5);
    assert_eq!(updated["version"], 2);

    let out = cmd().args(["orgs", "create", "bad id"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("id: must match"));

    let created = run(cmd().args(["keys", "create", "--org", "acme", "--name", "wp"]));
    let key = created.lines().last().unwrap().trim();
    assert!(key.starts_with("ak_"), "{created}");
    let listing = run(cmd().args(["keys", "list", "--org", "acme"]));
    assert!(
        listing.contains("active") && !listing.contains(key),
        "{listing}"
    );
    let key_id = listing
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(run(cmd().args(["keys", "revoke", "--org", "acme", &key_id])).contains("revoked"));
    assert!(run(cmd().args(["keys", "list", "--org", "acme"])).contains("revoked"));

    let token = run(cmd().args([
        "token", "--org", "acme", "--sub", "dev-user", "--ttl", "600",
    ]));
    let keys = agentd::auth::jwt::JwtKeys::new(CLI_JWT_SECRET.as_bytes());
    let claims = keys.verify(token.trim()).unwrap();
    assert_eq!(
        (claims.org.as_str(), claims.sub.as_str()),
        ("acme", "dev-user")
    );

    assert!(run(cmd().args(["orgs", "deactivate", "acme"])).contains("deactivated"));
    let shown: Value = serde_json::from_str(&run(cmd().args(["orgs", "show", "acme"]))).unwrap();
    assert_eq!(shown["active"], false);
}

#[test]
fn json_logs_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, rx) = start(
        agentd(dir.path())
            .env("LOG_FORMAT", "json")
            .env("ACCESS_LOG", "all")
            .env("BOOTSTRAP_DEMO", "false"),
    );
    let line = wait_for(&rx, |l| l.contains("listening"));
    let started: Value = serde_json::from_str(&line).unwrap();
    let addr = started["addr"].as_str().unwrap().to_owned();
    let _ = reqwest::blocking_status(&format!("http://{addr}/health"), "log-me-123");
    let line = wait_for(&rx, |l| l.contains("log-me-123"));
    let entry: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["span"]["request_id"], "log-me-123", "{entry}");
    assert_eq!(entry["status"], 200, "{entry}");
    assert!(entry["latency_ms"].is_number(), "{entry}");
}

#[test]
fn by_default_only_slow_responses_are_access_logged() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, rx) = start(
        agentd(dir.path())
            .env("LOG_FORMAT", "json")
            .env("BOOTSTRAP_DEMO", "false"),
    );
    let line = wait_for(&rx, |l| l.contains("listening"));
    let started: Value = serde_json::from_str(&line).unwrap();
    let addr = started["addr"].as_str().unwrap().to_owned();
    let _ = reqwest::blocking_status(&format!("http://{addr}/health"), "quiet-1");
    // Nothing about that fast request within a second (the server logs as it answers).
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        if let Ok(line) = rx.recv_timeout(left) {
            assert!(
                !line.contains("quiet-1"),
                "a fast response was logged: {line}"
            );
        }
    }
}

#[test]
fn help_is_written_for_a_person() {
    let dir = tempfile::tempdir().unwrap();
    let help = run(agentd(dir.path())
        .arg("--help")
        .env("ADMIN_TOKEN", "very-secret-admin")
        .env("DATABASE_URL", "postgres://u:pw-secret@h/db"));
    for word in [
        "serve",
        "migrate",
        "orgs",
        "keys",
        "token",
        "DATABASE_URL",
        "ADMIN_TOKEN",
    ] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
    assert!(
        !help.contains("very-secret-admin") && !help.contains("pw-secret"),
        "secrets echoed: {help}"
    );
}

/// Tiny blocking HTTP helpers for the CLI tests (they run outside an async runtime).
mod reqwest {
    pub fn blocking_get(url: &str, key: &str) -> serde_json::Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            ::reqwest::Client::new()
                .get(url)
                .header("X-API-Key", key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    }

    pub fn blocking_status(url: &str, request_id: &str) -> u16 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            ::reqwest::Client::new()
                .get(url)
                .header("X-Request-ID", request_id)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    }
}

#[test]
fn unsafe_settings_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, says) in [
        ("ADMIN_TOKEN", "short", "ADMIN_TOKEN"),
        ("JWT_SECRET", "short", "JWT_SECRET"),
    ] {
        let out = agentd(dir.path())
            .env(var, value)
            .env("PORT", "0")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}={value} accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains(says));
    }
}
