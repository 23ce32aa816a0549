//! A real `mercato serve` killed with SIGKILL while a stream is delivering
//! events several per transaction (a group commit of the subscriber), then
//! started again on the same data: every acknowledged call is there, and every
//! event has been handled exactly once, in order.
use crate::common::{Backend, Teardown, on_both_backends};
use mercato::config::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Notes posted in bulk calls of this many, each note one event for audit.
const PER_CALL: u64 = 250;
const CALLS: u64 = 8;

/// A `mercato serve` with the notes and audit test plugins on `config`'s
/// storage; killed when dropped.
struct Serve {
    child: Child,
    url: String,
    token: String,
}

impl Serve {
    fn start(config: &Config) -> Serve {
        let dir = &config.data_dir;
        let file = dir.join("crash.toml");
        let storage = &config.storage;
        let url = storage.url.as_deref().unwrap_or_default();
        std::fs::write(
            &file,
            format!(
                "[storage]\nbackend = \"{}\"\nnamespace = \"{}\"\nmax_connections = {}\n{}",
                storage.backend.name(),
                storage.namespace,
                storage.max_connections,
                if url.is_empty() {
                    String::new()
                } else {
                    format!("url = \"{url}\"\n")
                },
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_mercato"))
            .args(["serve", "--no-embedded", "--listen", "127.0.0.1:0"])
            .arg("--config")
            .arg(&file)
            .arg("--data-dir")
            .arg(dir)
            .args(["--plugin", mercato_test_artifacts::path("notes")])
            .args(["--plugin", mercato_test_artifacts::path("audit")])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("MERCATO_DATABASE_URL")
            .env_remove("MERCATO_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let address = crate::common::logged_address(&mut child);
        let token = std::fs::read_to_string(dir.join("admin-token")).unwrap();
        Serve {
            child,
            url: format!("http://{address}"),
            token: token.trim().to_owned(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let resp = request.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Sequences of the notes events audit has handled, in handling order.
    async fn seen(&self) -> Vec<u64> {
        let (status, body) = self
            .call(reqwest::Method::GET, "/audit/seen?source=notes", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["sequence"].as_u64().unwrap())
            .collect()
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

on_both_backends!(
    a_host_killed_during_a_batch_loses_no_acknowledged_call_and_doubles_no_effect,
    a_host_killed_during_a_batch_loses_no_acknowledged_call_and_doubles_no_effect_on_sqlite,
    a_host_killed_during_a_batch_loses_no_acknowledged_call_and_doubles_no_effect_on_postgres,
);
async fn a_host_killed_during_a_batch_loses_no_acknowledged_call_and_doubles_no_effect(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let config = backend.config(dir.path()).await;
    let _teardown = Teardown::new(&config, &["notes", "audit"]);
    let total = PER_CALL * CALLS;
    let first = Serve::start(&config);
    for call in 0..CALLS {
        let (status, body) = first
            .call(
                reqwest::Method::POST,
                "/notes/notes/bulk",
                Some(json!({ "prefix": format!("c{call}"), "count": PER_CALL })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // Every call above was acknowledged. Kill the host while audit's stream
    // is part way through them, handing several events per transaction.
    let started = Instant::now();
    let seen_before = loop {
        let seen = first.seen().await.len() as u64;
        if seen > 0 {
            break seen;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "audit never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    first.kill();
    eprintln!("killed with {seen_before} of {total} events handled");
    assert!(
        seen_before < total,
        "the kill must land mid-stream to test anything"
    );

    let second = Serve::start(&config);
    let started = Instant::now();
    let seen = loop {
        let seen = second.seen().await;
        if seen.len() as u64 >= total {
            break seen;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{} of {total} events handled after the restart",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        seen,
        (1..=total).collect::<Vec<u64>>(),
        "each event handled exactly once, in order"
    );
    let (status, body) = second
        .call(reqwest::Method::GET, "/admin/events", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["dead_letters"], json!([]), "{body}");
    let notes = body["outboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["plugin"] == "notes")
        .unwrap()["head"]
        .clone();
    assert_eq!(
        notes,
        json!(total),
        "every acknowledged note's event is in the outbox"
    );
    second.kill();
}
