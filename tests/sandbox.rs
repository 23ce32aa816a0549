//! The sandbox contains a hostile plugin: runaway loops, huge allocations, panics,
//! and SQL aimed at other plugins' data or the host's own tables.
mod common;

use common::{TestApp, config, drop_postgres, postgres_config, sqlite_count};
use mercato::runtime::Limits;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn strict(dir: &std::path::Path) -> mercato::config::Config {
    mercato::config::Config {
        limits: Limits {
            memory_mib: 64,
            deadline_ms: 300,
            fuel: None,
        },
        ..config(dir)
    }
}

async fn assert_still_serving(app: &TestApp) {
    let (status, body) = app
        .post("/hostile/sql", &json!({ "sql": "SELECT 1 AS one" }))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "next request after a failure: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_is_stopped_by_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(strict(dir.path()), &["hostile"]).await;
    let (status, body) = app.get("/hostile/loop").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["code"], "plugin_timeout", "{body}");
    assert_still_serving(&app).await;
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"mercato_plugin_calls_total{kind="request",outcome="timeout",plugin="hostile"} 1"#
        ),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_allocation_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(strict(dir.path()), &["hostile"]).await;
    let (status, body) = app.post("/hostile/alloc", &json!({ "mib": 1024 })).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["code"], "plugin_out_of_memory", "{body}");
    // Within the limit, allocation works.
    let (status, body) = app.post("/hostile/alloc", &json!({ "mib": 8 })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_still_serving(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_limits_stop_a_busy_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = strict(dir.path());
    config.limits.fuel = Some(5_000_000);
    config.limits.deadline_ms = 10_000;
    let app = TestApp::start(config, &["hostile"]).await;
    let (status, body) = app.get("/hostile/loop").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["code"], "plugin_out_of_fuel", "{body}");
    assert_still_serving(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_500_with_a_request_id_and_output_is_captured() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(strict(dir.path()), &["hostile"]).await;
    let resp = app
        .client
        .get(format!("{}/hostile/panic", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let header_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "plugin_trap");
    assert_eq!(body["error"]["request_id"], header_id.as_str());
    // Writing to stdout/stderr is allowed (it goes to the host log), not fatal.
    assert_eq!(app.get("/hostile/stderr").await.0, StatusCode::NO_CONTENT);
    assert_still_serving(&app).await;
    app.stop().await;
}

async fn attempt(app: &TestApp, sql: &str) -> (StatusCode, Value) {
    app.post("/hostile/sql", &json!({ "sql": sql })).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_attach_extensions_and_host_table_writes() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["notes", "audit", "hostile"]).await;
    let (status, _) = app
        .post(
            "/notes/notes",
            &json!({ "id": "secret", "body": "private" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.drain().await;
    let notes_db = dir.path().join("notes.db").display().to_string();
    let attacks = [
        format!("ATTACH DATABASE '{notes_db}' AS other"),
        "SELECT load_extension('libsqlite3_mod_spatialite')".to_owned(),
        "INSERT INTO outbox_events (id, sequence, aggregate_id, event_type, payload, created_at) \
         VALUES ('x', 99, 'a', 'Forged', '{}', 'now')"
            .to_owned(),
        "UPDATE mercato_cursors SET sequence = 0".to_owned(),
        "DELETE FROM _sqlx_migrations".to_owned(),
        "DROP TABLE loot".to_owned(),
        "CREATE TABLE sneaky (x)".to_owned(),
        "PRAGMA writable_schema = ON".to_owned(),
        "COMMIT".to_owned(),
        format!("VACUUM INTO '{}'", dir.path().join("copy.db").display()),
    ];
    for sql in &attacks {
        let (status, body) = attempt(&app, sql).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "`{sql}` must be refused: {body}"
        );
        assert_eq!(body["allowed"], false);
    }
    let (_, body) = attempt(&app, &attacks[0]).await;
    assert!(
        body["error"].as_str().unwrap().contains("not authorized"),
        "{body}"
    );
    // Nothing changed: the hostile outbox is empty, its table and migrations intact,
    // no copy was written, and the notes' cursor in audit is untouched.
    assert_eq!(
        sqlite_count(dir.path(), "hostile", "SELECT COUNT(*) FROM outbox_events"),
        0
    );
    assert_eq!(
        sqlite_count(
            dir.path(),
            "hostile",
            "SELECT COUNT(*) FROM _sqlx_migrations"
        ),
        1
    );
    assert_eq!(
        sqlite_count(dir.path(), "hostile", "SELECT COUNT(*) FROM loot"),
        0
    );
    assert!(!dir.path().join("copy.db").exists());
    assert_eq!(
        sqlite_count(
            dir.path(),
            "audit",
            "SELECT sequence FROM mercato_cursors WHERE source = 'notes'"
        ),
        1
    );
    // Reading its own outbox is harmless and allowed.
    assert_eq!(
        attempt(&app, "SELECT COUNT(*) FROM outbox_events").await.0,
        StatusCode::OK
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emitting_an_invalid_event_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["hostile"]).await;
    let (status, body) = app.post("/hostile/emit-invalid", &json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("payload is not JSON"),
        "{body}"
    );
    assert_eq!(
        sqlite_count(dir.path(), "hostile", "SELECT COUNT(*) FROM outbox_events"),
        0
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_reads_of_another_plugins_schema() {
    let dir = tempfile::tempdir().unwrap();
    let config = postgres_config(dir.path()).await;
    let namespace = config.storage.namespace.clone();
    let plugins = ["notes", "hostile"];
    let app = TestApp::start(config.clone(), &plugins).await;
    let (status, _) = app
        .post(
            "/notes/notes",
            &json!({ "id": "secret", "body": "private" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let attacks = [
        format!("SELECT body FROM {namespace}notes.notes"),
        format!("SELECT * FROM {namespace}notes.outbox_events"),
        "SET ROLE postgres".to_owned(),
        "SELECT set_config('role', 'postgres', false)".to_owned(),
        "CREATE TABLE sneaky (x int)".to_owned(),
        "DROP TABLE loot".to_owned(),
    ];
    for sql in &attacks {
        let (status, body) = attempt(&app, sql).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "`{sql}` must be refused: {body}"
        );
    }
    let (_, body) = attempt(&app, &attacks[0]).await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("permission denied"),
        "{body}"
    );
    // Its own schema works.
    assert_eq!(
        attempt(&app, "SELECT COUNT(*) AS n FROM loot").await.0,
        StatusCode::OK
    );
    app.stop().await;
    drop_postgres(&config, &plugins).await;
}
