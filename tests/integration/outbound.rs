//! Outbound HTTP through an outbox (`crate::outbound`), attacked on both
//! backends with the `courier` test plugin and a real receiver: requests go
//! out only after commit, retry with the same bytes, die after the limit, are
//! reported back once per attempt, never reach what the allowlist does not
//! name, and a slow or endless answer is cut off without holding a
//! transaction.
use crate::common::receiver::Receiver;
use crate::common::*;
use mercato::config::{Config, PluginConfig};
use mercato::outbound::{AllowedHost, OutboundConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const COURIER: [&str; 1] = ["courier"];

/// `courier` may reach `allowed`, with test-sized limits.
fn allow(config: &mut Config, allowed: Vec<AllowedHost>, max_attempts: u32) {
    config.plugins.insert(
        "courier".into(),
        PluginConfig {
            outbound: Some(OutboundConfig {
                allowed_hosts: allowed,
                timeout_ms: 3_000,
                max_response_bytes: 4096,
                max_request_bytes: 1024,
                max_attempts,
                backoff_base_ms: 10,
                backoff_max_ms: 50,
                concurrency: 4,
            }),
            ..PluginConfig::default()
        },
    );
}

/// `courier` on `backend`, allowed `allowed`, with what the test keeps until
/// its end (the PostgreSQL tear-down, the data directory).
async fn courier(
    backend: Backend,
    allowed: Vec<AllowedHost>,
    max_attempts: u32,
) -> (TestApp, Config, (Teardown, tempfile::TempDir)) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = backend.config(dir.path()).await;
    allow(&mut config, allowed, max_attempts);
    let teardown = Teardown::new(&config, &COURIER);
    let app = TestApp::start(config.clone(), &COURIER).await;
    (app, config, (teardown, dir))
}

fn receiver_only(receiver: &Receiver) -> Vec<AllowedHost> {
    vec![AllowedHost::Pattern(format!("http://{}", receiver.addr))]
}

async fn send(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.post("/courier/send", &body).await
}

async fn reports(app: &TestApp, key: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/courier/reports?key={key}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["reports"].as_array().unwrap().clone()
}

async fn drain_outbound(app: &TestApp) {
    app.host
        .relay()
        .drain_outbound(Duration::from_secs(60))
        .await
        .expect("outbound requests settle");
}

async fn queued(config: &Config) -> i64 {
    host_count(config, "courier", "SELECT COUNT(*) FROM mercato_outbound").await
}

async fn requests_go_out_after_commit_retry_byte_for_byte_and_are_reported_once(backend: Backend) {
    let receiver = Receiver::start().await;
    let (app, config, _cleanup) = courier(backend, receiver_only(&receiver), 5).await;

    let flaky = receiver.url("/flaky/2");
    let (status, body) = send(
        &app,
        json!({ "url": flaky, "key": "k1", "headers": [["x-shop", "mercato"]], "body": "hello" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A call that fails after queueing sends nothing.
    let (status, _) = send(
        &app,
        json!({ "url": receiver.url("/ok"), "key": "k2", "then": "error" }),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // A key queued before is not queued again.
    let (status, body) = send(&app, json!({ "url": flaky, "key": "k1", "body": "other" })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    drain_outbound(&app).await;

    let got = receiver.received();
    assert_eq!(got.len(), 3, "two failures and the success: {got:?}");
    for r in &got {
        assert_eq!(r.path, "/flaky/2");
        assert_eq!(&r.body[..], b"hello", "every retry sends the same bytes");
        assert_eq!(r.header("x-shop"), "mercato");
    }
    let k1 = reports(&app, "k1").await;
    let summary: Vec<(i64, &str, i64)> = k1
        .iter()
        .map(|r| {
            (
                r["attempt"].as_i64().unwrap(),
                r["outcome"].as_str().unwrap(),
                r["status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "retrying", 503),
            (2, "retrying", 503),
            (3, "delivered", 200)
        ]
    );
    assert_eq!(k1[2]["response_body"], "thanks at last");
    assert!(reports(&app, "k2").await.is_empty());
    assert_eq!(queued(&config).await, 1, "k2 never committed");
    assert_eq!(
        host_count(
            &config,
            "courier",
            "SELECT COUNT(*) FROM mercato_outbound WHERE state = 'delivered' AND report IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        host_count(
            &config,
            "courier",
            "SELECT COUNT(*) FROM mercato_dead_letters"
        )
        .await,
        0,
        "no report was delivered twice (the plugin's key would refuse it)"
    );
    app.stop().await;
}

on_both_backends!(
    requests_go_out_after_commit_retry_byte_for_byte_and_are_reported_once,
    requests_go_out_after_commit_retry_byte_for_byte_and_are_reported_once_on_sqlite,
    requests_go_out_after_commit_retry_byte_for_byte_and_are_reported_once_on_postgres,
);

async fn a_request_failing_every_attempt_is_dead_after_the_limit(backend: Backend) {
    let receiver = Receiver::start().await;
    let (app, config, _cleanup) = courier(backend, receiver_only(&receiver), 3).await;
    let (status, body) = send(
        &app,
        json!({ "url": receiver.url("/fail"), "key": "doomed" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    drain_outbound(&app).await;
    let outcomes: Vec<String> = reports(&app, "doomed")
        .await
        .iter()
        .map(|r| format!("{} {}", r["outcome"], r["error"]))
        .collect();
    assert_eq!(
        outcomes,
        [
            "\"retrying\" \"answered 500\"",
            "\"retrying\" \"answered 500\"",
            "\"dead\" \"answered 500\""
        ]
    );
    assert_eq!(receiver.received().len(), 3);
    assert_eq!(
        host_count(
            &config,
            "courier",
            "SELECT COUNT(*) FROM mercato_outbound WHERE state = 'dead'"
        )
        .await,
        1
    );
    let destination = format!("http://{}", receiver.addr);
    let metrics = app.metrics().await;
    for (outcome, n) in [("retrying", 2), ("dead", 1)] {
        let line = format!(
            "mercato_outbound_attempts_total{{destination=\"{destination}\",outcome=\"{outcome}\",plugin=\"courier\"}} {n}"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    app.stop().await;
}

on_both_backends!(
    a_request_failing_every_attempt_is_dead_after_the_limit,
    a_request_failing_every_attempt_is_dead_after_the_limit_on_sqlite,
    a_request_failing_every_attempt_is_dead_after_the_limit_on_postgres,
);

async fn destinations_the_allowlist_does_not_name_are_never_reached(backend: Backend) {
    let receiver = Receiver::start().await;
    let port = receiver.addr.port();
    // Wildcards only: public addresses, never loopback or private ones.
    let wildcards = vec![
        AllowedHost::Pattern("http://*:*".into()),
        AllowedHost::Pattern("https://*".into()),
    ];
    let (app, mut config, _cleanup) = courier(backend, wildcards, 2).await;
    for url in [
        format!("http://127.0.0.1:{port}/ok"),
        format!("http://[::1]:{port}/ok"),
        format!("http://127.0.0.2:{port}/ok"),
        format!("http://10.0.0.1:{port}/ok"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        format!("http://[::ffff:127.0.0.1]:{port}/ok"),
    ] {
        let (status, body) = send(&app, json!({ "url": url, "key": "k" })).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{url}: {body}");
        assert_eq!(body["error"]["code"], "denied");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not in this plugin's outbound.allowed_hosts"),
            "{body}"
        );
    }
    // A name is allowed by the wildcard, but it resolves to loopback: the
    // resolver refuses it at send time, so nothing reaches the receiver.
    let (status, body) = send(
        &app,
        json!({ "url": format!("http://localhost:{port}/ok"), "key": "rebind" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    drain_outbound(&app).await;
    let rebind = reports(&app, "rebind").await;
    assert_eq!(rebind.len(), 2);
    assert_eq!(rebind[1]["outcome"], "dead");
    assert!(
        rebind[1]["error"]
            .as_str()
            .unwrap()
            .contains("resolves to no public address"),
        "{rebind:?}"
    );
    assert!(receiver.received().is_empty(), "nothing got through");
    assert_eq!(queued(&config).await, 1, "only the name was queued");
    app.stop().await;

    // A plugin the operator granted nothing can send nowhere.
    config.plugins.clear();
    let app = TestApp::start(config.clone(), &COURIER).await;
    let (status, body) = send(&app, json!({ "url": "https://example.com/", "key": "x" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    app.stop().await;
}

on_both_backends!(
    destinations_the_allowlist_does_not_name_are_never_reached,
    destinations_the_allowlist_does_not_name_are_never_reached_on_sqlite,
    destinations_the_allowlist_does_not_name_are_never_reached_on_postgres,
);

async fn hostile_requests_are_refused_and_queue_nothing(backend: Backend) {
    let receiver = Receiver::start().await;
    let ok = receiver.url("/ok");
    let (app, config, _cleanup) = courier(backend, receiver_only(&receiver), 2).await;
    let cases = [
        json!({ "url": ok, "key": "has space" }),
        json!({ "url": ok, "key": "k".repeat(201) }),
        json!({ "url": ok, "key": "k", "method": "TRACE" }),
        json!({ "url": ok, "key": "k", "headers": [["x-a", "b\r\nx-injected: 1"]] }),
        json!({ "url": ok, "key": "k", "headers": [["host", "elsewhere"]] }),
        json!({ "url": ok, "key": "k", "headers": [["bad name", "v"]] }),
        json!({ "url": "ftp://127.0.0.1/", "key": "k" }),
        json!({ "url": format!("http://user:pw@{}/ok", receiver.addr), "key": "k" }),
        json!({ "url": "not a url", "key": "k" }),
        json!({ "url": ok, "key": "k", "body": "x", "repeat": 1025 }),
    ];
    for case in cases {
        let (status, body) = send(&app, case.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{case}: {body}");
        assert_eq!(body["error"]["code"], "invalid", "{body}");
    }
    // A read-only call cannot queue.
    let (status, body) = app.get("/courier/send").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("read-only")
    );
    assert_eq!(queued(&config).await, 0);
    assert_eq!(
        count(&config, "courier", "SELECT COUNT(*) FROM sent").await,
        0
    );
    // What is well-formed still goes out, and no smuggled header came along.
    let (status, _) = send(&app, json!({ "url": ok, "key": "fine" })).await;
    assert_eq!(status, StatusCode::CREATED);
    drain_outbound(&app).await;
    assert!(
        receiver
            .received()
            .iter()
            .all(|r| r.header("x-injected").is_empty())
    );
    app.stop().await;
}

on_both_backends!(
    hostile_requests_are_refused_and_queue_nothing,
    hostile_requests_are_refused_and_queue_nothing_on_sqlite,
    hostile_requests_are_refused_and_queue_nothing_on_postgres,
);

async fn a_slow_or_endless_answer_is_cut_off_without_holding_a_transaction(backend: Backend) {
    let receiver = Receiver::start().await;
    let (app, _config, _cleanup) = courier(backend, receiver_only(&receiver), 1).await;

    let (status, _) = send(&app, json!({ "url": receiver.url("/slow"), "key": "slow" })).await;
    assert_eq!(status, StatusCode::CREATED);
    receiver.slow_request_arrived().await;
    // The attempt is in flight and will be for seconds: the plugin's
    // database is free meanwhile (a held transaction would block this write).
    let (status, body) = send(&app, json!({ "url": receiver.url("/huge"), "key": "huge" })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        reports(&app, "slow").await.is_empty(),
        "the write ran while the slow attempt was still waiting"
    );
    drain_outbound(&app).await;

    let slow = reports(&app, "slow").await;
    assert_eq!(slow[0]["outcome"], "dead");
    assert_eq!(slow[0]["error"], "timed out after 3000 ms");
    let huge = reports(&app, "huge").await;
    assert_eq!(huge[0]["outcome"], "dead");
    assert_eq!(huge[0]["status"], 200);
    assert_eq!(
        huge[0]["error"],
        "the answer's body exceeds 4096 bytes; it was cut off"
    );
    assert!(huge[0]["response_body"].as_str().unwrap().len() <= 1024);
    assert!(
        huge[0]["duration_ms"].as_i64().unwrap() < 3_000,
        "cut off at the cap, not at the timeout: {huge:?}"
    );
    app.stop().await;
}

on_both_backends!(
    a_slow_or_endless_answer_is_cut_off_without_holding_a_transaction,
    a_slow_or_endless_answer_is_cut_off_without_holding_a_transaction_on_sqlite,
    a_slow_or_endless_answer_is_cut_off_without_holding_a_transaction_on_postgres,
);
