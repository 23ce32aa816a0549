//! The sandbox contains a hostile plugin: runaway loops, huge allocations, panics,
//! and SQL aimed at other plugins' data or the host's own tables.
use crate::common::{
    TestApp, config, drop_postgres, hostile_with_migration, postgres_config, put_component,
    sqlite_count,
};
use mercato::runtime::Limits;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn strict(dir: &std::path::Path) -> mercato::config::Config {
    mercato::config::Config {
        limits: Limits {
            memory_mib: 64,
            deadline_ms: 300,
            fuel: None,
            ..Limits::default()
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
            r#"mercato_plugin_calls_total{kind="request",outcome="timeout",plugin="hostile",version="0.1.0"} 1"#
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

/// Rows in the hostile plugin's own table.
fn loot(dir: &std::path::Path) -> i64 {
    sqlite_count(dir, "hostile", "SELECT COUNT(*) FROM loot")
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
    assert_eq!(loot(dir.path()), 0);
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

/// A recursive CTE that never ends on its own.
const RUNAWAY: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn in_flight(app: &TestApp, plugin: &str) -> i64 {
    let metrics = app.metrics().await;
    let prefix = format!("mercato_plugin_calls_in_flight{{plugin=\"{plugin}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_runaway_sql_is_stopped_at_the_deadline_while_the_host_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = strict(dir.path());
    config.limits.deadline_ms = 1_000;
    let deadline = Duration::from_millis(config.limits.deadline_ms);
    let app = std::sync::Arc::new(TestApp::start(config, &["notes", "hostile"]).await);
    // As many runaway statements as the runtime has workers, and one more:
    // if statements ran on the async workers, nothing else could be served.
    let started = Instant::now();
    let runaways: Vec<_> = (0..3)
        .map(|_| {
            let app = app.clone();
            // GET: read-only calls run side by side on the reader connections.
            tokio::spawn(async move {
                let (status, body) = app
                    .request(
                        "GET",
                        &format!("/hostile/sql?q={}", urlencode(RUNAWAY)),
                        None,
                        &[],
                    )
                    .await;
                (status, body, started.elapsed())
            })
        })
        .collect();
    crate::common::within(Duration::from_secs(5), async || {
        in_flight(&app, "hostile").await == 3
    })
    .await;
    // While all three run: the host answers health checks and another plugin.
    let served = Instant::now();
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .post(
            "/notes/notes",
            &json!({ "id": "n1", "body": "still served" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = app.get("/notes/notes/n1").await;
    assert_eq!(status, StatusCode::OK);
    let serving_took = served.elapsed();
    assert_eq!(
        in_flight(&app, "hostile").await,
        3,
        "the other requests were answered while the runaway statements still ran"
    );
    assert!(
        serving_took < deadline / 2,
        "health check and notes took {serving_took:?} during runaway SQL"
    );
    for runaway in runaways {
        let (status, body, took) = runaway.await.unwrap();
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(body["error"]["code"], "plugin_timeout", "{body}");
        assert!(
            took < deadline * 2,
            "runaway SQL answered after {took:?}, deadline {deadline:?}"
        );
    }
    assert_still_serving(&app).await;
    let app = std::sync::Arc::into_inner(app).expect("no other handle");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_runaway_write_rolls_back_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = strict(dir.path());
    config.limits.deadline_ms = 500;
    let app = TestApp::start(config, &["hostile"]).await;
    let (status, body) = attempt(
        &app,
        "INSERT INTO loot (v) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
         SELECT x FROM c",
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["error"]["code"], "plugin_timeout", "{body}");
    assert_eq!(loot(dir.path()), 0);
    // The writer connection is usable again: the next write commits.
    let (status, body) = attempt(&app, "INSERT INTO loot (v) VALUES ('ok')").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(loot(dir.path()), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_second_statement_in_one_call_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["hostile"]).await;
    assert_eq!(
        attempt(&app, "INSERT INTO loot (v) VALUES ('keep')")
            .await
            .0,
        StatusCode::OK
    );
    for sql in [
        "SELECT 1; DELETE FROM loot",
        "SELECT 1 ;\n DELETE FROM loot;",
        "INSERT INTO loot (v) VALUES ('x'); DELETE FROM loot",
    ] {
        let (status, body) = attempt(&app, sql).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "`{sql}`: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("one statement"),
            "{body}"
        );
    }
    // A trailing semicolon or comment is still one statement.
    assert_eq!(
        attempt(&app, "SELECT COUNT(*) FROM loot; -- count").await.0,
        StatusCode::OK
    );
    assert_eq!(loot(dir.path()), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_only_allow_listed_functions_run() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["hostile"]).await;
    for sql in [
        "SELECT fts3_tokenizer('simple')",
        "SELECT fts3_tokenizer(?1)",
        "SELECT load_extension('x')",
        "SELECT sqlite_compileoption_get(0)",
        "SELECT readfile('/etc/passwd')",
    ] {
        let (status, body) = attempt(&app, sql).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "`{sql}`: {body}");
    }
    let (status, body) = attempt(
        &app,
        "SELECT abs(-1), upper('x'), json_extract('{\"a\":1}', '$.a'), \
         strftime('%Y', 'now'), round(2.5), coalesce(NULL, 1), group_concat(v) FROM loot",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_oversized_values_results_and_events_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["hostile"]).await;
    let (status, body) = attempt(&app, "SELECT randomblob(400000000)").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("too big"),
        "{body}"
    );
    let (status, body) = attempt(
        &app,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 9000) \
         SELECT zeroblob(100000) FROM c",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("exceeds 8388608 bytes"),
        "{body}"
    );
    let body = refuses_ten_thousand_big_events(&app).await;
    assert!(body["accepted"].as_u64().unwrap() < 16, "{body}");
    // Within the budgets, the same things work.
    let (status, body) = attempt(&app, "SELECT zeroblob(100000)").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post("/hostile/emit-many", &json!({ "count": 10, "bytes": 1024 }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}

/// 10,000 events of 256 KiB from one call are refused at the event budget.
async fn refuses_ten_thousand_big_events(app: &TestApp) -> Value {
    let (status, body) = app
        .post(
            "/hostile/emit-many",
            &json!({ "count": 10_000, "bytes": 256 * 1024 }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("at most 4194304 bytes"),
        "{body}"
    );
    body
}

/// Deploys a copy of `hostile` whose second migration is `sql`.
async fn deploy_migration(app: &TestApp, sql: &str) -> (StatusCode, Value) {
    put_component(app, "hostile", hostile_with_migration(sql), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_malicious_migrations_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.migration_deadline_ms = 1_000;
    let app = TestApp::start(config, &["notes", "hostile"]).await;
    let (status, _) = app
        .post("/notes/notes", &json!({ "id": "n1", "body": "private" }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        attempt(&app, "INSERT INTO loot (v) VALUES ('before')")
            .await
            .0,
        StatusCode::OK
    );
    app.drain().await;
    let notes_db = dir.path().join("notes.db").display().to_string();
    let attacks = [
        format!("COMMIT;ATTACH '{notes_db}' AS c;UPDATE c.notes SET body = 'pwned';BEGIN;"),
        format!("ATTACH DATABASE '{notes_db}' AS c; UPDATE c.notes SET body = 'pwned';"),
        "CREATE TABLE stolen (x); COMMIT;".to_owned(),
        "PRAGMA writable_schema = ON;".to_owned(),
        "UPDATE sqlite_master SET sql = 'CREATE TABLE loot (v)' WHERE name = 'loot';".to_owned(),
        "DROP TABLE outbox_events;".to_owned(),
        // Past the destructive-change check, the sandbox still refuses it.
        "-- mercato:contract\nDROP TABLE outbox_events;".to_owned(),
        "DELETE FROM mercato_cursors;".to_owned(),
        "CREATE TRIGGER forge AFTER INSERT ON outbox_events BEGIN DELETE FROM loot; END;"
            .to_owned(),
        "CREATE TEMP TABLE shadow (x);".to_owned(),
        "CREATE TABLE ok_then (x); SELECT load_extension('x');".to_owned(),
        "SELECT fts3_tokenizer('simple');".to_owned(),
        format!("VACUUM INTO '{}';", dir.path().join("copy.db").display()),
        "CREATE TABLE big AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
         SELECT x FROM c;"
            .to_owned(),
    ];
    let (_, running) = crate::common::plugin_version(&app, "hostile").await;
    for sql in &attacks {
        let (status, body) = deploy_migration(&app, sql).await;
        assert!(
            status.is_client_error() || status.is_server_error(),
            "`{sql}` must be refused: {status} {body}"
        );
        assert_eq!(
            crate::common::plugin_version(&app, "hostile").await.1,
            running,
            "the running version keeps serving after `{sql}`"
        );
    }
    // Nothing changed anywhere: the other plugin's data, this plugin's
    // tables, host tables and migrations.
    assert_eq!(
        sqlite_count(
            dir.path(),
            "notes",
            "SELECT COUNT(*) FROM notes WHERE body = 'private'"
        ),
        1
    );
    for (sql, expected) in [
        ("SELECT COUNT(*) FROM loot", 1),
        ("SELECT COUNT(*) FROM _sqlx_migrations", 1),
        (
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('stolen', 'ok_then', 'big', 'forge')",
            0,
        ),
        (
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'outbox_events'",
            1,
        ),
    ] {
        assert_eq!(sqlite_count(dir.path(), "hostile", sql), expected, "{sql}");
    }
    assert!(!dir.path().join("copy.db").exists());
    // A well-behaved second migration deploys.
    let (status, body) = deploy_migration(
        &app,
        "CREATE TABLE loot_v2 (v TEXT NOT NULL);\nCREATE INDEX loot_v2_v ON loot_v2 (v);",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        attempt(&app, "INSERT INTO loot_v2 (v) VALUES ('x')")
            .await
            .0,
        StatusCode::OK
    );
    app.stop().await;
}

/// Peak resident memory of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kib * 1024
}

/// A real `mercato serve` process with only the hostile plugin, so its memory
/// is the host's alone; stopped when dropped.
struct ServeProcess {
    child: std::process::Child,
    url: String,
}

impl ServeProcess {
    fn start(dir: &std::path::Path) -> ServeProcess {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mercato"))
            .args([
                "serve",
                "--no-embedded",
                "--listen",
                "127.0.0.1:0",
                "--plugin",
            ])
            .arg(mercato_test_artifacts::path("hostile"))
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("MERCATO_DATABASE_URL")
            .env_remove("MERCATO_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let address = crate::common::logged_address(&mut child);
        ServeProcess {
            child,
            url: format!("http://{address}"),
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_memory_attacks_leave_the_host_rss_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(dir.path());
    let client = reqwest::Client::new();
    // The hostile plugin's routes are undocumented, so the merchant's.
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let post = async |path: &str, body: Value| {
        let resp = client
            .post(format!("{}{path}", server.url))
            .bearer_auth(token.trim())
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    };
    // Warm up: the engine, the instance pool and SQLite's caches.
    for _ in 0..20 {
        let (status, body) =
            post("/hostile/sql", json!({ "sql": "SELECT zeroblob(100000)" })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = post(
            "/hostile/emit-many",
            json!({ "count": 10, "bytes": 100_000 }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let pid = server.child.id();
    let before = peak_rss(pid);
    let rows = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 9000)";
    for sql in [
        "SELECT randomblob(400000000)".to_owned(),
        "SELECT zeroblob(400000000)".to_owned(),
        format!("{rows} SELECT zeroblob(100000) FROM c"),
        format!("{rows} SELECT group_concat(zeroblob(100000)) FROM c"),
        format!("{rows} SELECT length(group_concat(hex(zeroblob(100000)))) FROM c"),
    ] {
        let (status, body) = post("/hostile/sql", json!({ "sql": sql })).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "`{sql}`: {body}");
    }
    let (status, body) = post(
        "/hostile/emit-many",
        json!({ "count": 10_000, "bytes": 256 * 1024 }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Sorting big rows is allowed: SQLite's sorter spills to disk.
    let (status, body) = post(
        "/hostile/sql",
        json!({ "sql": format!("{rows} SELECT length(zeroblob(100000) || x) AS n FROM c ORDER BY n DESC LIMIT 1") }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let grown = peak_rss(pid).saturating_sub(before);
    eprintln!(
        "peak RSS before attacks {} MiB, grew by {} KiB",
        before >> 20,
        grown >> 10
    );
    assert!(
        grown < 100 << 20,
        "host peak RSS grew by {} MiB under memory attacks",
        grown >> 20
    );
}

// ---- PostgreSQL: what every role may do by default, a plugin may not ----

/// A PostgreSQL-backed host with the hostile plugin beside `others`.
async fn postgres_app(
    dir: &std::path::Path,
    others: &[&'static str],
    deadline_ms: u64,
) -> (TestApp, mercato::config::Config, Vec<&'static str>) {
    let mut config = postgres_config(dir).await;
    config.limits.deadline_ms = deadline_ms;
    let mut plugins = others.to_vec();
    plugins.push("hostile");
    let app = TestApp::start(config.clone(), &plugins).await;
    (app, config, plugins)
}

/// A connection with the admin URL, to look behind the host's back.
async fn admin(config: &mercato::config::Config) -> sqlx::PgConnection {
    <sqlx::PgConnection as sqlx::Connection>::connect(config.storage.url.as_deref().unwrap())
        .await
        .unwrap()
}

async fn count(conn: &mut sqlx::PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
}

/// Each statement is refused with 403 and a message containing `says`.
async fn all_refused(app: &TestApp, attacks: &[String], says: &str) {
    for sql in attacks {
        let (status, body) = attempt(app, sql).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "`{sql}` must be refused: {body}"
        );
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "`{sql}`: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_advisory_locks_cannot_block_the_host() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let (app, config, plugins) = postgres_app(dir.path(), &["notes", "audit"], 1_000).await;
    let ns = &config.storage.namespace;
    // The keys earlier builds used: the outbox lock of `notes` and provisioning.
    let notes_key = i64::from_le_bytes(
        sha2::Sha256::digest(format!("{ns}notes").as_bytes())[..8]
            .try_into()
            .unwrap(),
    );
    let attacks = [
        format!("SELECT pg_advisory_lock({notes_key})"),
        "SELECT pg_advisory_lock(7394021)".to_owned(),
        "SELECT pg_catalog.pg_advisory_xact_lock(7394021)".to_owned(),
        "SELECT pg_try_advisory_lock(1, 2)".to_owned(),
        "SELECT x FROM (SELECT pg_advisory_lock(42) AS x) AS l".to_owned(),
    ];
    all_refused(&app, &attacks, "not available to plugins").await;

    // Whoever holds those keys, the host does not wait for them.
    let mut holder = admin(&config).await;
    for key in [notes_key, 7394021] {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(key)
            .execute(&mut holder)
            .await
            .unwrap();
    }
    let started = std::time::Instant::now();
    let (status, body) = app
        .post("/notes/notes", &json!({ "id": "n1", "body": "x" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.drain().await;
    let (status, body) =
        crate::common::put_component(&app, "notes", crate::common::component("notes"), None).await;
    assert_eq!(status, StatusCode::OK, "a deploy provisions again: {body}");
    app.stop().await;
    let app = TestApp::start(config.clone(), &plugins).await;
    assert_eq!(app.get("/notes/notes/n1").await.0, StatusCode::OK);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    app.stop().await;
    drop(holder);
    drop_postgres(&config, &plugins).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_the_server_closed_are_replaced_without_a_failed_call() {
    let dir = tempfile::tempdir().unwrap();
    let (app, config, plugins) = postgres_app(dir.path(), &["notes"], 1_000).await;
    // Several calls at once, so the pool holds several connections.
    let bodies: Vec<_> = (0..8)
        .map(|i| json!({ "id": format!("n{i}"), "body": "before" }))
        .collect();
    let posts = bodies.iter().map(|body| app.post("/notes/notes", body));
    for (status, body) in futures_util::future::join_all(posts).await {
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // The server ends every session of the plugin's role (a restart, an
    // operator, an idle timeout): the pool does not ping before handing one out.
    let mut admin = admin(&config).await;
    let role = format!("{}notes", config.storage.namespace);
    let ended = count(
        &mut admin,
        &format!(
            "WITH plugin AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE usename = '{role}') \
             SELECT count(*) FROM plugin WHERE pg_terminate_backend(pid)"
        ),
    )
    .await;
    assert!(ended > 0, "the plugin's pooled sessions were ended");
    for i in 0..8 {
        let (status, body) = app.get(&format!("/notes/notes/n{i}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = app
            .post(
                "/notes/notes",
                &json!({ "id": format!("m{i}"), "body": "after" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    app.stop().await;
    drop(admin);
    drop_postgres(&config, &plugins).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_host_tables_are_not_writable_by_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let (app, config, plugins) = postgres_app(dir.path(), &["audit"], 1_000).await;
    // The host writes its records: an event in hostile's outbox, a cursor in audit's.
    assert_eq!(
        app.post("/hostile/emit", &json!({})).await.0,
        StatusCode::ACCEPTED
    );
    app.drain().await;
    let host = format!("{}hostile_host", config.storage.namespace);
    let tables = [
        "outbox_events",
        "mercato_cursors",
        "mercato_idempotency",
        "mercato_dead_letters",
        "mercato_scheduled",
        "_sqlx_migrations",
        "mercato_outbox_staged",
    ];
    let mut conn = admin(&config).await;
    let mut before = Vec::new();
    for table in tables {
        before.push(
            count(
                &mut conn,
                &format!("SELECT COUNT(*) FROM \"{host}\".{table}"),
            )
            .await,
        );
    }
    let unpublished =
        format!("SELECT COUNT(*) FROM \"{host}\".outbox_events WHERE published_at IS NULL");
    // The router marks delivered events published shortly after delivery.
    let started = std::time::Instant::now();
    while count(&mut conn, &unpublished).await > 0 {
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let attacks = [
        "INSERT INTO mercato_cursors (source, sequence) VALUES ('notes', 99)".to_owned(),
        "INSERT INTO mercato_idempotency (key, request_hash, status, headers, body, created_at) \
         VALUES ('k', 'h', 200, '[]', 'x', 'now')"
            .to_owned(),
        "INSERT INTO outbox_events (id, sequence, aggregate_id, event_type, payload, created_at) \
         VALUES ('x', 99, 'a', 'Forged', '{}', 'now')"
            .to_owned(),
        "UPDATE outbox_events SET published_at = NULL".to_owned(),
        "DELETE FROM mercato_dead_letters".to_owned(),
        "DELETE FROM _sqlx_migrations".to_owned(),
        "INSERT INTO mercato_scheduled (event_id, source, sequence, event_type, aggregate_id, \
         payload, occurred_at, due_at_ms) VALUES ('e', 's', 1, 't', 'a', '{}', 'now', 0)"
            .to_owned(),
        format!("DELETE FROM \"{host}\".outbox_events"),
        "WITH gone AS (DELETE FROM outbox_events RETURNING id) SELECT COUNT(*) FROM gone"
            .to_owned(),
        // The outbox head: rewinding it would hand out sequences twice.
        "UPDATE mercato_outbox_lock SET head = 0".to_owned(),
        format!("UPDATE \"{host}\".mercato_outbox_lock SET head = head + 1000"),
        // Staged events are numbered into the outbox after commit: a forged
        // one would become an event, a deleted one would be lost.
        "INSERT INTO mercato_outbox_staged (id, aggregate_id, event_type, payload, created_at) \
         VALUES ('x', 'a', 'Forged', '{}', 'now')"
            .to_owned(),
        format!("DELETE FROM \"{host}\".mercato_outbox_staged"),
        "UPDATE mercato_outbox_staged SET payload = '{}'".to_owned(),
    ];
    all_refused(&app, &attacks, "only the Mercato host writes").await;
    all_refused(
        &app,
        &[
            "TRUNCATE outbox_events".to_owned(),
            "SELECT set_config('mercato.host_key', 'guess', true)".to_owned(),
        ],
        "not available to plugins",
    )
    .await;
    // The key itself is out of reach.
    all_refused(
        &app,
        &["SELECT key FROM mercato_host_key".to_owned()],
        "permission denied",
    )
    .await;

    for (table, n) in tables.iter().zip(before) {
        assert_eq!(
            count(
                &mut conn,
                &format!("SELECT COUNT(*) FROM \"{host}\".{table}")
            )
            .await,
            n,
            "{table} changed"
        );
    }
    assert_eq!(count(&mut conn, &unpublished).await, 0);
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT head FROM \"{host}\".mercato_outbox_lock")
        )
        .await,
        1,
        "the outbox head moved"
    );
    // Reading them is harmless and allowed, as on SQLite.
    assert_eq!(
        attempt(&app, "SELECT COUNT(*) AS n FROM outbox_events")
            .await
            .0,
        StatusCode::OK
    );
    // And the host still writes them.
    assert_eq!(
        app.post("/hostile/emit", &json!({})).await.0,
        StatusCode::ACCEPTED
    );
    app.drain().await;
    assert_eq!(app.seen().await.len(), 2);
    app.stop().await;
    drop_postgres(&config, &plugins).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_temp_tables_cannot_shadow_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let (app, config, plugins) = postgres_app(dir.path(), &["audit"], 1_000).await;
    let ns = &config.storage.namespace;
    all_refused(
        &app,
        &[
            "CREATE TEMP TABLE outbox_events (id TEXT)".to_owned(),
            "SELECT * INTO TEMP outbox_events FROM loot".to_owned(),
        ],
        "not available to plugins",
    )
    .await;
    let mut conn = admin(&config).await;
    let may_temp: bool = sqlx::query_scalar(
        "SELECT has_database_privilege($1, current_database(), 'TEMPORARY') \
             OR has_database_privilege($2, current_database(), 'TEMPORARY')",
    )
    .bind(format!("{ns}hostile"))
    .bind(format!("{ns}hostile_owner"))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(!may_temp, "plugin roles must not create temporary tables");

    // A table named like the outbox earlier on the search path (as a plugin's
    // migration could create in its own schema) does not catch the host's writes.
    sqlx::query(&format!(
        "CREATE TABLE \"{ns}hostile\".outbox_events (id TEXT, sequence BIGINT, aggregate_id TEXT, \
         event_type TEXT, payload TEXT, created_at TEXT, deliver_after_ms BIGINT, published_at TEXT)"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    for _ in 0..2 {
        assert_eq!(
            app.post("/hostile/emit", &json!({})).await.0,
            StatusCode::ACCEPTED
        );
    }
    app.drain().await;
    assert_eq!(app.seen().await.len(), 2, "both events delivered");
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT COUNT(*) FROM \"{ns}hostile_host\".outbox_events")
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT COUNT(*) FROM \"{ns}hostile\".outbox_events")
        )
        .await,
        0
    );
    app.stop().await;
    drop_postgres(&config, &plugins).await;
}

/// A statement the checker lets through that runs for minutes.
const SLOW: &str =
    "SELECT COUNT(*) AS n FROM generate_series(1, 100000) a, generate_series(1, 100000) b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_slow_statement_is_stopped_at_the_deadline() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let (app, config, plugins) = postgres_app(dir.path(), &[], 1_000).await;
    // pg_sleep itself never reaches the database.
    let started = Instant::now();
    all_refused(
        &app,
        &["SELECT pg_sleep(6)".to_owned()],
        "not available to plugins",
    )
    .await;
    assert!(started.elapsed() < Duration::from_millis(500));

    let health = {
        let client = app.client.clone();
        let url = format!("{}/healthz", app.url);
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            for _ in 0..40 {
                let asked = Instant::now();
                let status = client.get(&url).send().await.unwrap().status();
                assert!(status.is_success(), "{status}");
                slowest = slowest.max(asked.elapsed());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            slowest
        })
    };
    let mut timings = Vec::new();
    for _ in 0..8 {
        let started = Instant::now();
        let (status, body) = attempt(&app, SLOW).await;
        let took = started.elapsed();
        timings.push(took);
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(body["error"]["code"], "plugin_timeout", "{body}");
        assert!(took < Duration::from_secs(2), "answered after {took:?}");
    }
    // The pool is not starved: a normal call answers at once.
    let started = Instant::now();
    assert_eq!(attempt(&app, "SELECT 1 AS one").await.0, StatusCode::OK);
    let next = started.elapsed();
    assert!(next < Duration::from_millis(500), "next call took {next:?}");
    let slowest_health = health.await.unwrap();
    assert!(
        slowest_health < Duration::from_millis(500),
        "{slowest_health:?}"
    );
    // Nothing of them still runs in the database. (Only the slow statement
    // counts: the host's own background work on the plugin's database, its
    // outbox reads and numbering, runs as the same role at any moment.)
    let mut conn = admin(&config).await;
    let running = count(
        &mut conn,
        &format!(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE usename = '{}hostile' AND state = 'active' \
             AND query LIKE '%generate_series%'",
            config.storage.namespace
        ),
    )
    .await;
    assert_eq!(running, 0);
    eprintln!(
        "slow statement answered after {timings:?}; next call {next:?}; slowest /healthz {slowest_health:?}"
    );
    app.stop().await;
    drop_postgres(&config, &plugins).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_catalog_and_activity_are_not_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (app, config, plugins) = postgres_app(dir.path(), &["notes"], 1_000).await;
    let ns = &config.storage.namespace;
    let attacks = [
        "SELECT pid, usename, query FROM pg_stat_activity".to_owned(),
        "SELECT * FROM pg_catalog.pg_stat_activity".to_owned(),
        format!(
            "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
             ON n.oid = c.relnamespace WHERE n.nspname = '{ns}notes'"
        ),
        "SELECT COUNT(*) FROM pg_class".to_owned(),
        "SELECT table_name FROM information_schema.tables".to_owned(),
        "SELECT column_name FROM information_schema.columns".to_owned(),
        "SELECT * FROM pg_roles".to_owned(),
        format!("SELECT '{ns}notes.notes'::regclass"),
        format!("SELECT to_regclass('{ns}notes.notes')"),
        "SELECT pg_read_file('postgresql.conf')".to_owned(),
        "SELECT * FROM pg_ls_dir('.')".to_owned(),
    ];
    all_refused(&app, &attacks, "not available to plugins").await;
    // Another plugin's data stays unreachable through the privileges as well.
    all_refused(
        &app,
        &[format!("SELECT * FROM \"{ns}notes\".notes")],
        "permission denied",
    )
    .await;
    app.stop().await;
    drop_postgres(&config, &plugins).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_runaway_sql_is_stopped_at_the_deadline_while_the_host_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = postgres_config(dir.path()).await;
    config.limits.deadline_ms = 1_000;
    let deadline = Duration::from_millis(config.limits.deadline_ms);
    let plugins = ["notes", "hostile"];
    let app = TestApp::start(config.clone(), &plugins).await;
    let started = Instant::now();
    let runaway = {
        let client = app.client.clone();
        let url = format!("{}/hostile/sql", app.url);
        tokio::spawn(async move {
            let resp = client
                .post(url)
                .json(&json!({ "sql": RUNAWAY }))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            (
                status,
                resp.json::<Value>().await.unwrap(),
                started.elapsed(),
            )
        })
    };
    crate::common::within(Duration::from_secs(5), async || {
        in_flight(&app, "hostile").await == 1
    })
    .await;
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .post(
            "/notes/notes",
            &json!({ "id": "n1", "body": "still served" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body, took) = runaway.await.unwrap();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["error"]["code"], "plugin_timeout", "{body}");
    assert!(took < deadline * 2, "runaway SQL answered after {took:?}");
    assert_still_serving(&app).await;
    app.stop().await;
    drop_postgres(&config, &plugins).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_oversized_results_and_events_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = postgres_config(dir.path()).await;
    let plugins = ["hostile"];
    let app = TestApp::start(config.clone(), &plugins).await;
    for sql in [
        "SELECT repeat('x', 20000000) AS big",
        "SELECT repeat('x', 100000) AS row FROM generate_series(1, 9000)",
    ] {
        let (status, body) = attempt(&app, sql).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "`{sql}`: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("exceeds 8388608 bytes"),
            "{body}"
        );
    }
    refuses_ten_thousand_big_events(&app).await;
    for sql in ["SELECT 1 AS one; DELETE FROM loot", "SELECT 1 AS one"] {
        let (status, body) = attempt(&app, sql).await;
        let expected = if sql.contains(';') {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::OK
        };
        assert_eq!(status, expected, "`{sql}`: {body}");
    }
    app.stop().await;
    drop_postgres(&config, &plugins).await;
}
