//! One storage conformance suite, run on SQLite and on PostgreSQL, plus the
//! host's end-to-end guarantees on PostgreSQL with real components.
mod common;

use common::{TestApp, drop_postgres, postgres_config, postgres_url};
use mercato::bindings::{GuestError, SqlValue};
use mercato::events::{PendingEvent, flush};
use mercato::migrate::{self, MigrationError, Mode};
use mercato::storage::postgres::PgDb;
use mercato::storage::sqlite::SqliteDb;
use mercato::storage::{Database, StorageError, TxMode};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;

fn migrations() -> Vec<(String, String)> {
    vec![
        (
            "0001_conformance.sqlite.sql".into(),
            "CREATE TABLE conf (id TEXT PRIMARY KEY, n BIGINT, r REAL, b BLOB, t TEXT);".into(),
        ),
        (
            "0001_conformance.postgres.sql".into(),
            "CREATE TABLE conf (id TEXT PRIMARY KEY, n BIGINT, r DOUBLE PRECISION, b BYTEA, t TEXT);".into(),
        ),
        (
            "0002_index.sql".into(),
            "CREATE INDEX conf_t ON conf (t);".into(),
        ),
    ]
}

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.into())
}

async fn count(db: &Database) -> i64 {
    let mut tx = db.begin(TxMode::ReadOnly).await.unwrap();
    let rows = tx
        .guest_query("SELECT COUNT(*) AS n FROM conf", &[])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    match rows.rows[0][0] {
        SqlValue::Integer(n) => n,
        ref other => panic!("count is {other:?}"),
    }
}

/// The behaviour every backend must share.
async fn conformance(db: Database) {
    migrate::run("conf", &db, &migrations(), Mode::Forward)
        .await
        .unwrap();
    // Applying the same migrations again is a no-op.
    migrate::run("conf", &db, &migrations(), Mode::Forward)
        .await
        .unwrap();

    // Every value type round-trips through `$n` placeholders.
    let mut tx = db.begin(TxMode::ReadWrite).await.unwrap();
    let changed = tx
        .guest_execute(
            "INSERT INTO conf (id, n, r, b, t) VALUES ($1, $2, $3, $4, $5)",
            &[
                text("a"),
                SqlValue::Integer(i64::MAX),
                SqlValue::Real(1.5),
                SqlValue::Blob(vec![0, 255, 7]),
                text("zoë ✓"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);
    // Placeholders may appear out of order and repeat.
    tx.guest_execute(
        "INSERT INTO conf (id, n, t) VALUES ($3, $1, $2)",
        &[SqlValue::Integer(-7), text("second"), text("b")],
    )
    .await
    .unwrap();
    tx.guest_execute(
        "INSERT INTO conf (id, t) VALUES ($1, $2)",
        &[text("c"), SqlValue::Null],
    )
    .await
    .unwrap();
    let rows = tx
        .guest_query(
            "SELECT id, n, r, b, t FROM conf WHERE id = $1 OR t = $1 ORDER BY id",
            &[text("a")],
        )
        .await
        .unwrap();
    assert_eq!(rows.columns, ["id", "n", "r", "b", "t"]);
    assert_eq!(
        rows.rows,
        vec![vec![
            text("a"),
            SqlValue::Integer(i64::MAX),
            SqlValue::Real(1.5),
            SqlValue::Blob(vec![0, 255, 7]),
            text("zoë ✓"),
        ]]
    );
    let rows = tx
        .guest_query(
            "SELECT id, n, t FROM conf WHERE id IN ($1, $2) ORDER BY id",
            &[text("b"), text("c")],
        )
        .await
        .unwrap();
    assert_eq!(
        rows.rows,
        vec![
            vec![text("b"), SqlValue::Integer(-7), text("second")],
            vec![text("c"), SqlValue::Null, SqlValue::Null]
        ]
    );
    // An empty result still names its columns.
    let empty = tx
        .guest_query("SELECT id, n FROM conf WHERE id = $1", &[text("none")])
        .await
        .unwrap();
    assert_eq!((empty.columns.len(), empty.rows.len()), (2, 0));
    tx.commit().await.unwrap();
    assert_eq!(count(&db).await, 3);

    // Rollback and an abandoned transaction both discard.
    let mut tx = db.begin(TxMode::ReadWrite).await.unwrap();
    tx.guest_execute("DELETE FROM conf", &[]).await.unwrap();
    tx.rollback().await.unwrap();
    let mut tx = db.begin(TxMode::ReadWrite).await.unwrap();
    tx.guest_execute("DELETE FROM conf", &[]).await.unwrap();
    drop(tx);
    assert_eq!(count(&db).await, 3);

    // A constraint violation is a conflict, and it aborts the transaction.
    let mut tx = db.begin(TxMode::ReadWrite).await.unwrap();
    tx.guest_execute("INSERT INTO conf (id) VALUES ($1)", &[text("d")])
        .await
        .unwrap();
    let err = tx
        .guest_execute("INSERT INTO conf (id) VALUES ($1)", &[text("a")])
        .await
        .unwrap_err();
    assert!(matches!(err, GuestError::Conflict(_)), "{err:?}");
    let err = tx.guest_query("SELECT 1 AS one", &[]).await.unwrap_err();
    assert!(
        matches!(err, GuestError::Internal(ref m) if m.contains("aborted")),
        "{err:?}"
    );
    assert!(matches!(tx.commit().await, Err(StorageError::Aborted(_))));
    assert_eq!(
        count(&db).await,
        3,
        "the aborted transaction's insert must not survive"
    );

    // Wrong parameter counts and bad SQL are invalid, not crashes.
    let mut tx = db.begin(TxMode::ReadWrite).await.unwrap();
    let err = tx
        .guest_execute("INSERT INTO conf (id) VALUES ($1)", &[])
        .await
        .unwrap_err();
    assert!(matches!(err, GuestError::Invalid(_)), "{err:?}");
    drop(tx);
    let mut tx = db.begin(TxMode::ReadWrite).await.unwrap();
    let err = tx.guest_query("SELEC nonsense", &[]).await.unwrap_err();
    assert!(matches!(err, GuestError::Invalid(_)), "{err:?}");
    drop(tx);

    // Read-only transactions refuse writes.
    let mut tx = db.begin(TxMode::ReadOnly).await.unwrap();
    let err = tx.guest_execute("DELETE FROM conf", &[]).await.unwrap_err();
    assert!(matches!(err, GuestError::Denied(_)), "{err:?}");
    drop(tx);

    // Guests cannot rewrite the host's records.
    for sql in ["DELETE FROM outbox_events", "DELETE FROM _sqlx_migrations"] {
        let mut tx = db.begin(TxMode::ReadWrite).await.unwrap();
        let err = tx.guest_execute(sql, &[]).await.unwrap_err();
        assert!(matches!(err, GuestError::Denied(_)), "{sql}: {err:?}");
    }

    // Outbox sequences are dense and unique under concurrent writers.
    let writers = (0..16).map(|i| {
        let db = db.clone();
        tokio::spawn(async move {
            let mut tx = db.begin(TxMode::ReadWrite).await.unwrap();
            let event = PendingEvent {
                event_type: "Happened".into(),
                aggregate_id: format!("agg-{i}"),
                payload: "{}".into(),
                deliver_after_ms: None,
            };
            let head = flush(&mut tx, &[event.clone(), event]).await.unwrap();
            tx.commit().await.unwrap();
            head.unwrap()
        })
    });
    let mut heads = Vec::new();
    for w in writers {
        heads.push(w.await.unwrap());
    }
    heads.sort();
    assert_eq!(heads, (1..=16).map(|i| i * 2).collect::<Vec<u64>>());

    // An edited, already-applied migration refuses to load and names the file.
    let mut edited = migrations();
    edited[2].1 = "CREATE INDEX conf_t ON conf (t, id);".into();
    match migrate::run("conf", &db, &edited, Mode::Forward).await {
        Err(e @ MigrationError::Changed { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("0002_index.sql") && message.contains("new migration"),
                "{message}"
            );
        }
        other => panic!("expected a changed-migration error, got {other:?}"),
    }
    // A build that no longer carries an applied migration is refused too.
    let missing = migrations()[..2].to_vec();
    assert!(matches!(
        migrate::run("conf", &db, &missing, Mode::Forward).await,
        Err(MigrationError::Missing { version: 2, .. })
    ));
    // …unless it is a rollback onto the expanded schema.
    migrate::run("conf", &db, &missing, Mode::AllowNewerSchema)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_storage_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDb::open(&dir.path().join("conf.db")).unwrap();
    conformance(Database::Sqlite(Arc::new(db))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_storage_conformance_suite() {
    let url = postgres_url().await;
    let namespace = format!("t{}_", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let db = PgDb::open(&url, &namespace, "conf", 8).await.unwrap();
    conformance(Database::Postgres(Arc::new(db))).await;
    PgDb::drop_schema(&url, &namespace, "conf").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_host_commits_delivers_once_and_rolls_back_failures() {
    let dir = tempfile::tempdir().unwrap();
    let config = postgres_config(dir.path()).await;
    let plugins = ["notes", "audit"];
    let app = TestApp::start(config.clone(), &plugins).await;
    let (status, _) = app
        .post("/notes/notes", &json!({ "id": "p1", "body": "hello" }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .post(
            "/notes/notes",
            &json!({ "id": "p2", "body": "x", "then": "trap" }),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, _) = app
        .post(
            "/notes/notes",
            &json!({ "id": "p3", "body": "x", "audit": { "fail_times": 2 } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.drain().await;
    let seen = app.seen().await;
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0]["sequence"].as_u64(), seen[1]["attempt"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(app.get("/notes/notes/p2").await.0, StatusCode::NOT_FOUND);
    let (_, count) = app.get("/notes/notes").await;
    assert_eq!(count["count"], 2);
    app.stop().await;

    let app = TestApp::start(config.clone(), &plugins).await;
    app.drain().await;
    assert_eq!(
        app.seen().await.len(),
        2,
        "a restart delivers nothing twice"
    );
    app.stop().await;
    drop_postgres(&config, &plugins).await;
}
