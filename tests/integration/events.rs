//! Event routing through real components: retries with backoff, dead letters that
//! do not block other sources, source order at volume, delayed delivery.
use crate::common::{
    Backend, Teardown, TestApp, config, drop_postgres, on_both_backends, postgres_config,
    sqlite_count, within,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

async fn note(app: &TestApp, id: &str, audit: Value) {
    let (status, body) = app
        .post(
            "/notes/notes",
            &json!({ "id": id, "body": "x", "audit": audit }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

fn metric(text: &str, line_prefix: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_fails_three_times_is_retried_with_backoff_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.events.backoff_base_ms = 40;
    let app = TestApp::start(config, &["notes", "audit"]).await;
    let started = std::time::Instant::now();
    note(&app, "flaky", json!({ "fail_times": 3 })).await;
    app.drain().await;
    let seen = app.seen().await;
    assert_eq!(seen.len(), 1, "handled exactly once: {seen:?}");
    assert_eq!(seen[0]["attempt"], 4);
    // Backoff 40 + 80 + 160 ms separates the four attempts.
    assert!(
        started.elapsed() >= Duration::from_millis(280),
        "{:?}",
        started.elapsed()
    );
    let metrics = app.metrics().await;
    let prefix =
        r#"mercato_event_deliveries_total{outcome="retry",source="notes",subscriber="audit"}"#;
    assert_eq!(metric(&metrics, prefix), 3, "{metrics}");
    let (_, events) = app.get("/admin/events").await;
    assert_eq!(events["dead_letters"], json!([]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_always_failing_event_is_dead_lettered_while_other_sources_keep_flowing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // Slow retries keep the poisoned notes stream busy while hostile events flow.
    config.events.backoff_base_ms = 150;
    let app = TestApp::start(config, &["notes", "audit", "hostile"]).await;
    note(&app, "poison", json!({ "always_fail": true })).await;
    note(&app, "after-poison", json!({})).await;
    for _ in 0..3 {
        assert_eq!(
            app.post("/hostile/emit", &json!({})).await.0,
            StatusCode::ACCEPTED
        );
    }
    // Hostile's pings are handled while the poisoned notes event is still retrying
    // (five attempts with 150-1,200 ms backoff take over two seconds).
    app.host
        .relay()
        .drain_stream("audit", "hostile", Duration::from_secs(10))
        .await
        .unwrap();
    let (_, pings) = app.get("/audit/seen?source=hostile").await;
    assert_eq!(pings["events"].as_array().unwrap().len(), 3);
    let (_, notes) = app.get("/audit/seen?source=notes").await;
    assert_eq!(
        notes["events"],
        json!([]),
        "the notes stream is still held by the failing event"
    );

    app.drain().await;
    let (_, events) = app.get("/admin/events").await;
    let letters = events["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{events}");
    assert_eq!(letters[0]["subscriber"], "audit");
    assert_eq!(letters[0]["source"], "notes");
    assert_eq!(letters[0]["attempts"], 5);
    assert!(
        letters[0]["error"]
            .as_str()
            .unwrap()
            .contains("planned failure")
    );
    // The event after the poisoned one, from the same source, was then delivered in order.
    let (_, notes) = app.get("/audit/seen?source=notes").await;
    assert_eq!(notes["events"].as_array().unwrap().len(), 1);
    assert_eq!(notes["events"][0]["sequence"], 2);
    app.stop().await;
    assert_eq!(
        sqlite_count(
            dir.path(),
            "audit",
            "SELECT COUNT(*) FROM mercato_dead_letters"
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_handler_is_retried_then_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["notes", "audit"]).await;
    note(&app, "trap", json!({ "trap": true })).await;
    note(&app, "fine", json!({})).await;
    app.drain().await;
    let (_, events) = app.get("/admin/events").await;
    assert_eq!(
        events["dead_letters"].as_array().unwrap().len(),
        1,
        "{events}"
    );
    assert!(
        events["dead_letters"][0]["error"]
            .as_str()
            .unwrap()
            .contains("trap")
    );
    assert_eq!(app.seen().await.len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_events_from_one_source_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["notes", "audit"]).await;
    for batch in 0..4 {
        let (status, body) = app
            .post(
                "/notes/notes/bulk",
                &json!({ "prefix": format!("b{batch}"), "count": 250 }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    app.drain().await;
    let seen = app.seen().await;
    assert_eq!(seen.len(), 1000);
    let sequences: Vec<u64> = seen
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, (1..=1000).collect::<Vec<u64>>());
    assert!(seen.iter().all(|e| e["attempt"] == 1));
    app.stop().await;
}

on_both_backends!(
    a_subscriber_emitting_its_limit_on_every_event_cannot_make_a_batch_hold_more,
    a_subscriber_emitting_its_limit_on_every_event_cannot_make_a_batch_hold_more_on_sqlite,
    a_subscriber_emitting_its_limit_on_every_event_cannot_make_a_batch_hold_more_on_postgres,
);
/// A batch keeps its calls' emitted events until it commits. A subscriber
/// that emits close to its event budget for every event it handles must not
/// make the host hold 64 calls' worth: the batch commits once what it holds
/// reaches one call's budget, so here at most two events go per batch.
async fn a_subscriber_emitting_its_limit_on_every_event_cannot_make_a_batch_hold_more(
    backend: Backend,
) {
    use mercato::config::{PartialLimits, PluginConfig};
    const BUDGET: u64 = 64 * 1024;
    const EVENTS: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let mut config = backend.config(dir.path()).await;
    config.plugins.insert(
        "audit".into(),
        PluginConfig {
            limits: Some(PartialLimits {
                max_event_bytes: Some(BUDGET),
                ..PartialLimits::default()
            }),
            ..PluginConfig::default()
        },
    );
    let plugins = ["notes", "audit"];
    let _teardown = Teardown::new(&config, &plugins);
    let app = TestApp::start(config, &plugins).await;
    // Queued while audit's stream is held, so that it is behind and batches.
    app.host
        .relay()
        .paused("audit", async {
            for n in 1..=EVENTS {
                note(&app, &format!("e{n}"), json!({ "echo_bytes": 40 * 1024 })).await;
            }
        })
        .await;
    app.drain().await;

    assert_eq!(app.seen().await.len() as u64, EVENTS, "each handled");
    let metrics = app.metrics().await;
    let labels = r#"source="notes",subscriber="audit""#;
    let batches = metric(
        &metrics,
        &format!("mercato_event_delivery_batch_size_count{{{labels}}}"),
    );
    let within_two = metric(
        &metrics,
        &format!("mercato_event_delivery_batch_size_bucket{{{labels},le=\"2\"}}"),
    );
    assert!(batches > 0, "the stream batched: {metrics}");
    assert_eq!(
        within_two, batches,
        "no batch held more than two events of 40 KiB under a 64 KiB budget: {metrics}"
    );
    let ok = metric(
        &metrics,
        &format!("mercato_event_deliveries_total{{outcome=\"ok\",{labels}}}"),
    );
    assert_eq!(ok, EVENTS, "{metrics}");
    let echoed = crate::common::host_count(
        app.host.config(),
        "audit",
        "SELECT COUNT(*) FROM outbox_events WHERE event_type = 'Echoed'",
    )
    .await;
    assert_eq!(echoed as u64, EVENTS, "every emitted event committed");
    app.stop().await;
}

on_both_backends!(
    a_stream_behind_delivers_in_batches_and_a_failing_event_falls_back_alone,
    a_stream_behind_delivers_in_batches_and_a_failing_event_falls_back_alone_on_sqlite,
    a_stream_behind_delivers_in_batches_and_a_failing_event_falls_back_alone_on_postgres,
);
/// Events pile up while the subscriber's deliveries are held; once released,
/// the stream hands them over several per transaction. A poisoned event in
/// the middle rolls its batch back: it is retried and dead-lettered alone,
/// and every other event is handled exactly once, in order.
async fn a_stream_behind_delivers_in_batches_and_a_failing_event_falls_back_alone(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = backend.config(dir.path()).await;
    config.events.backoff_base_ms = 10;
    let plugins = ["notes", "audit"];
    let _teardown = Teardown::new(&config, &plugins);
    let app = TestApp::start(config, &plugins).await;
    app.host
        .relay()
        .paused("audit", async {
            for n in 1..=200 {
                let audit = if n == 100 {
                    json!({ "always_fail": true })
                } else {
                    json!({})
                };
                note(&app, &format!("n{n}"), audit).await;
            }
        })
        .await;
    app.drain().await;

    let seen = app.seen().await;
    let sequences: Vec<u64> = seen
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=200).filter(|n| *n != 100).collect();
    assert_eq!(sequences, expected, "each handled once, in order");
    let (_, events) = app.get("/admin/events").await;
    let letters = events["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{events}");
    assert_eq!(letters[0]["sequence"], 100, "{events}");

    let metrics = app.metrics().await;
    let labels = r#"{source="notes",subscriber="audit"}"#;
    let batches = metric(
        &metrics,
        &format!("mercato_event_delivery_batch_size_count{labels}"),
    );
    let batched = metric(
        &metrics,
        &format!("mercato_event_delivery_batch_size_sum{labels}"),
    );
    // Most events went in batches of several (the poisoned one's batch fell
    // back, and the events after it went one by one for a while).
    assert!(
        batched >= 100 && batches * 4 <= batched,
        "{batches} batches, {batched} events: {metrics}"
    );
    let ok = metric(
        &metrics,
        r#"mercato_event_deliveries_total{outcome="ok",source="notes",subscriber="audit"}"#,
    );
    assert_eq!(ok, 199, "{metrics}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_event_is_delivered_once_after_its_delay() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["notes", "audit"]).await;
    let committed = std::time::Instant::now();
    let (status, _) = app
        .post(
            "/notes/notes",
            &json!({ "id": "later", "body": "x", "delay_ms": 400 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    note(&app, "now", json!({})).await;
    app.drain().await;
    // The immediate event is not held back by the delayed one before it.
    let seen = app.seen().await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["sequence"], 2);
    let due_by = mercato::clock::now_millis() + 400;
    app.host
        .relay()
        .drain_scheduled(due_by, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(committed.elapsed() >= Duration::from_millis(400));
    let seen = app.seen().await;
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1]["sequence"], 1);
    app.stop().await;
    assert_eq!(
        sqlite_count(
            dir.path(),
            "audit",
            "SELECT COUNT(*) FROM mercato_scheduled"
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_scheduled_event_source_never_becomes_a_metric_label() {
    let dir = tempfile::tempdir().unwrap();
    let config = postgres_config(dir.path()).await;
    let app = TestApp::start(config.clone(), &["notes", "audit"]).await;
    // Plugins cannot write host tables (a trigger wants the host's key); the
    // admin, with triggers off for its session, plays a forger that could.
    let url = config.storage.url.as_deref().unwrap();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!(
        "INSERT INTO \"{}audit_host\".mercato_scheduled \
         (event_id, source, sequence, event_type, aggregate_id, payload, occurred_at, due_at_ms) \
         VALUES ('forged-1', 'forged-source-1', 1, 'Forged', 'a', '{{}}', '2026-01-01T00:00:00.000Z', 0)",
        config.storage.namespace
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    // The scheduler polls; the forged event is delivered, counted under `_unknown`.
    let delivered =
        "mercato_event_deliveries_total{outcome=\"ok\",source=\"_unknown\",subscriber=\"audit\"} 1";
    within(Duration::from_secs(30), async || {
        app.metrics().await.contains(delivered)
    })
    .await;
    assert!(!app.metrics().await.contains("forged-source"));
    assert_eq!(app.seen().await[0]["source"], "forged-source-1");
    app.stop().await;
    drop_postgres(&config, &["notes", "audit"]).await;
}
