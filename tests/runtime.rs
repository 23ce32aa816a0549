//! The unit of work through real components: commit on success, roll back on
//! error or trap, exactly-once effects across a restart, idempotency keys.
mod common;

use common::{TestApp, config, sqlite_count, within};
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

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
    let notes = app.host.registry.get("notes").unwrap();
    within(Duration::from_secs(10), async || {
        notes.inflight_keys.lock().unwrap().contains("key-slow") || first.is_finished()
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
