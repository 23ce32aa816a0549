//! The unit of work through real components: commit on success, roll back on
//! error or trap, exactly-once effects across a restart, idempotency keys and
//! their expiry.
use crate::common::{TestApp, config, drop_postgres, postgres_config, sqlite_count, within};
use mercato::config::Config;
use mercato::retention::IdempotencyConfig;
use mercato::storage::{SqlValueExt, TxMode, cell};
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_event_is_handled_once_and_a_restart_neither_repeats_nor_loses_it() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["notes", "audit"]).await;
    let (status, body) = app
        .post("/notes/notes", &json!({ "id": "n1", "body": "hello" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, note) = app.get("/notes/notes/n1").await;
    assert_eq!(
        (status, note["body"].as_str()),
        (StatusCode::OK, Some("hello"))
    );
    app.drain().await;
    let seen = app.seen().await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["event_type"], "NoteCreated");
    assert_eq!(seen[0]["source"], "notes");
    app.stop().await;

    // Same data dir, fresh host: nothing is delivered again…
    let app = TestApp::start(config(dir.path()), &["notes", "audit"]).await;
    app.drain().await;
    assert_eq!(app.seen().await.len(), 1);
    // …and the next event still flows.
    let (status, _) = app
        .post("/notes/notes", &json!({ "id": "n2", "body": "again" }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.drain().await;
    let seen = app.seen().await;
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1]["sequence"], 2);
    app.stop().await;
    assert_eq!(
        sqlite_count(dir.path(), "notes", "SELECT COUNT(*) FROM outbox_events"),
        2
    );
    assert_eq!(
        sqlite_count(
            dir.path(),
            "notes",
            "SELECT COUNT(*) FROM outbox_events WHERE published_at IS NULL"
        ),
        0,
        "events every subscriber consumed are stamped published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_committed_while_the_subscriber_was_down_arrive_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["notes"]).await;
    for i in 0..3 {
        let (status, _) = app
            .post(
                "/notes/notes",
                &json!({ "id": format!("n{i}"), "body": "x" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    app.stop().await;
    let app = TestApp::start(config(dir.path()), &["notes", "audit"]).await;
    app.drain().await;
    let sequences: Vec<_> = app
        .seen()
        .await
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, [1, 2, 3]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_fails_after_writing_leaves_neither_row_nor_event() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["notes", "audit"]).await;
    let (status, body) = app
        .post(
            "/notes/notes",
            &json!({ "id": "e1", "body": "x", "then": "error" }),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["code"], "planned_failure");
    let (status, body) = app
        .post(
            "/notes/notes",
            &json!({ "id": "t1", "body": "x", "then": "trap" }),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["code"], "plugin_trap");
    assert!(
        body["error"]["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{body}"
    );

    for id in ["e1", "t1"] {
        assert_eq!(
            app.get(&format!("/notes/notes/{id}")).await.0,
            StatusCode::NOT_FOUND
        );
    }
    app.drain().await;
    assert!(app.seen().await.is_empty());
    assert_eq!(
        sqlite_count(dir.path(), "notes", "SELECT COUNT(*) FROM notes"),
        0
    );
    assert_eq!(
        sqlite_count(dir.path(), "notes", "SELECT COUNT(*) FROM outbox_events"),
        0
    );
    // The plugin keeps serving after the trap.
    let (status, _) = app
        .post("/notes/notes", &json!({ "id": "ok", "body": "x" }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_replay_returns_the_first_response_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["notes"]).await;
    let body = json!({ "id": "i1", "body": "once" });
    let key = [("idempotency-key", "key-1")];
    let first = app
        .client
        .post(format!("{}/notes/notes", app.url))
        .header("idempotency-key", "key-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = first.bytes().await.unwrap();

    let replay = app
        .client
        .post(format!("{}/notes/notes", app.url))
        .header("idempotency-key", "key-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.bytes().await.unwrap(), first_body);
    // The same object serialised with its keys in another order and other
    // spacing is the same request: replayed, not refused as reused.
    let reordered = app
        .client
        .post(format!("{}/notes/notes", app.url))
        .header("idempotency-key", "key-1")
        .header("content-type", "application/json")
        .body(r#"{ "body" : "once", "id" : "i1" }"#)
        .send()
        .await
        .unwrap();
    assert_eq!(reordered.status(), StatusCode::CREATED);
    assert_eq!(reordered.headers()["idempotent-replayed"], "true");
    assert_eq!(reordered.bytes().await.unwrap(), first_body);
    assert_eq!(
        sqlite_count(dir.path(), "notes", "SELECT COUNT(*) FROM notes"),
        1
    );
    assert_eq!(
        sqlite_count(dir.path(), "notes", "SELECT COUNT(*) FROM outbox_events"),
        1
    );

    let (status, err) = app
        .request(
            "POST",
            "/notes/notes",
            Some(&json!({ "id": "i2", "body": "other" })),
            &key,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["code"], "idempotency_key_reused");
    assert_eq!(
        sqlite_count(dir.path(), "notes", "SELECT COUNT(*) FROM notes"),
        1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_duplicate_gets_409_while_the_first_is_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["notes"]).await;
    let body = json!({ "id": "slow", "body": "x", "busy_ms": 600 });
    let key = [("idempotency-key", "key-slow")];
    let first = {
        let (client, url, body) = (app.client.clone(), app.url.clone(), body.clone());
        tokio::spawn(async move {
            client
                .post(format!("{url}/notes/notes"))
                .header("idempotency-key", "key-slow")
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // Send the duplicate only once the first holds the key: otherwise the
    // duplicate could reach the host first and become the original.
    let notes = app.host.registry().get("notes").unwrap();
    within(Duration::from_secs(10), async || {
        notes
            .slot
            .inflight_keys
            .lock()
            .unwrap()
            .contains("key-slow")
            || first.is_finished()
    })
    .await;
    // Retry the duplicate until the first request is seen in flight (or done).
    let mut saw_conflict = false;
    while !first.is_finished() {
        let (status, err) = app.request("POST", "/notes/notes", Some(&body), &key).await;
        if status == StatusCode::CONFLICT {
            assert_eq!(err["error"]["code"], "idempotency_key_in_use");
            saw_conflict = true;
            break;
        }
        assert_eq!(
            status,
            StatusCode::CREATED,
            "only a replay may succeed: {err}"
        );
    }
    assert_eq!(first.await.unwrap(), StatusCode::CREATED);
    assert!(
        saw_conflict,
        "the duplicate never overlapped the 600 ms first request"
    );
    assert_eq!(
        sqlite_count(dir.path(), "notes", "SELECT COUNT(*) FROM notes"),
        1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_requests_run_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["hostile"]).await;
    let (status, body) = app
        .get("/hostile/sql?q=INSERT%20INTO%20loot%20(v)%20VALUES%20('x')")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        sqlite_count(dir.path(), "hostile", "SELECT COUNT(*) FROM loot"),
        0
    );
    // The same statement through POST is the plugin's right.
    let (status, body) = app
        .post(
            "/hostile/sql",
            &json!({ "sql": "INSERT INTO loot (v) VALUES ('x')" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        sqlite_count(dir.path(), "hostile", "SELECT COUNT(*) FROM loot"),
        1
    );
    app.stop().await;
}

/// POSTs note `id` under Idempotency-Key `key`: the status, whether it was a
/// replay, and the body.
async fn keyed_note(app: &TestApp, key: &str, id: &str) -> (StatusCode, bool, Vec<u8>) {
    let resp = app
        .client
        .post(format!("{}/notes/notes", app.url))
        .header("idempotency-key", key)
        .json(&json!({ "id": id, "body": "x" }))
        .send()
        .await
        .unwrap();
    let replayed = resp.headers().get("idempotent-replayed").is_some();
    (
        resp.status(),
        replayed,
        resp.bytes().await.unwrap().to_vec(),
    )
}

/// The keys in the notes database's idempotency table, read through the
/// host's own connection (so the same on both backends).
async fn stored_keys(app: &TestApp) -> Vec<String> {
    let notes = app.host.registry().get("notes").unwrap();
    let mut tx = notes.slot.db.begin(TxMode::ReadOnly).await.unwrap();
    let rows = tx
        .host_query("SELECT key FROM mercato_idempotency ORDER BY key", &[])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    (0..rows.rows.len())
        .map(|i| cell(&rows, i, "key").as_text())
        .collect()
}

const PRUNED_NOTES: &str = "mercato_idempotency_pruned_total{plugin=\"notes\"}";

async fn idempotency_keys_expire(mut config: Config) {
    let retention = Duration::from_secs(1);
    config.idempotency = IdempotencyConfig {
        retention_ms: retention.as_millis() as u64,
        // Only this test prunes, so it knows exactly what is expired when.
        prune_interval_ms: Some(3_600_000),
        prune_batch: 2,
    };
    let app = TestApp::start(config, &["notes"]).await;
    let (status, replayed, first) = keyed_note(&app, "k1", "a").await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false));
    for (key, id) in [("k2", "b"), ("k3", "c")] {
        assert_eq!(keyed_note(&app, key, id).await.0, StatusCode::CREATED);
    }
    let written = Instant::now();
    // Within the retention the first response answers, and the key stays bound
    // to its request.
    let (status, replayed, again) = keyed_note(&app, "k1", "a").await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true));
    assert_eq!(again, first);
    let (status, _, body) = keyed_note(&app, "k1", "other").await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        String::from_utf8_lossy(&body)
    );

    // What is waited for is the clock: the three records' retention has passed.
    tokio::time::sleep_until((written + retention + Duration::from_millis(5)).into()).await;
    assert_eq!(keyed_note(&app, "k4", "d").await.0, StatusCode::CREATED);
    assert_eq!(
        app.host.pruner().prune_expired_now().await.unwrap(),
        3,
        "the three expired records, in batches of two; not the fresh one"
    );
    assert_eq!(stored_keys(&app).await, ["k4"]);
    assert!(
        app.metrics().await.contains(&format!("{PRUNED_NOTES} 3")),
        "{}",
        app.metrics().await
    );

    // The expired key is new: a different request under it runs, and is then
    // what the key replays.
    let (status, replayed, _) = keyed_note(&app, "k1", "e").await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false));
    let (status, replayed, _) = keyed_note(&app, "k1", "e").await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true));
    let (status, replayed, _) = keyed_note(&app, "k4", "d").await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true));
    for id in ["a", "b", "c", "d", "e"] {
        assert_eq!(
            app.get(&format!("/notes/notes/{id}")).await.0,
            StatusCode::OK,
            "note {id}"
        );
    }
    assert_eq!(stored_keys(&app).await, ["k1", "k4"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_expire_after_the_retention_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    idempotency_keys_expire(config(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_expire_after_the_retention_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let config = postgres_config(dir.path()).await;
    idempotency_keys_expire(config.clone()).await;
    drop_postgres(&config, &["notes"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_pruner_deletes_expired_records_and_stops_with_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.idempotency = IdempotencyConfig {
        retention_ms: 1,
        prune_interval_ms: Some(20),
        prune_batch: 2,
    };
    let app = TestApp::start(config, &["notes"]).await;
    for i in 0..5 {
        let (status, _, _) = keyed_note(&app, &format!("k{i}"), &format!("n{i}")).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    within(Duration::from_secs(30), async || {
        app.metrics().await.contains(&format!("{PRUNED_NOTES} 5"))
    })
    .await;
    assert!(stored_keys(&app).await.is_empty());
    // Stopping waits for the host's tasks, the pruner included.
    app.stop().await;
}
