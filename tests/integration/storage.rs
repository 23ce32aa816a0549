//! One storage conformance suite, run on SQLite and on PostgreSQL, plus the
//! host's end-to-end guarantees on PostgreSQL with real components.
use crate::common::{TestApp, drop_postgres, postgres_config, postgres_url};
use mercato::bindings::{GuestError, SqlValue};
use mercato::migrate::{self, MigrationError, Mode};
use mercato::outbox::store::{outbox_head, read_outbox};
use mercato::outbox::{Flushed, PendingEvent, flush};
use mercato::storage::postgres::PgDb;
use mercato::storage::sqlite::SqliteDb;
use mercato::storage::{BackendKind, Database, MigrationStep, StorageError, TxMode};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;

/// Tables in a plugin's PostgreSQL host schema: the host tables, the outbox
/// lock, the staged events and the host key.
const HOST_SCHEMA_TABLES: i64 = mercato::storage::schema::HOST_TABLES.len() as i64 + 3;

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

    // Outbox sequences are dense and unique under concurrent writers, and a
    // call's events stay together in its order. PostgreSQL numbers them after
    // commit (the writers never wait for each other); SQLite as they are written.
    let writers = (0..16).map(|i| {
        let db = db.clone();
        tokio::spawn(async move {
            let mut tx = db.begin(TxMode::ReadWrite).await.unwrap();
            let events = ["first", "second"].map(|n| PendingEvent {
                event_type: "Happened".into(),
                aggregate_id: format!("agg-{i}"),
                payload: format!(r#"{{"n":"{n}"}}"#),
                deliver_after_ms: None,
                correlation_id: None,
                trace: None,
            });
            let flushed = flush(&mut tx, &events).await.unwrap();
            tx.commit().await.unwrap();
            flushed
        })
    });
    let mut numbered_at_commit = Vec::new();
    for w in writers {
        match w.await.unwrap() {
            Flushed::Numbered(head) => numbered_at_commit.push(head),
            Flushed::Staged => assert_eq!(db.kind(), BackendKind::Postgres),
            Flushed::Nothing => panic!("two events were flushed"),
        }
    }
    let head = loop {
        match db.number_staged(5).await.unwrap() {
            Some(head) => assert!(head <= 32, "{head}"),
            None => break outbox_head(&db).await.unwrap(),
        }
    };
    assert_eq!(head, 32);
    if db.kind() == BackendKind::Sqlite {
        numbered_at_commit.sort();
        assert_eq!(
            numbered_at_commit,
            (1..=16).map(|i| i * 2).collect::<Vec<u64>>()
        );
    }
    let events = read_outbox(&db, "conf", 0).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        (1..=32).collect::<Vec<u64>>()
    );
    for pair in events.chunks(2) {
        assert_eq!(pair[0].aggregate_id, pair[1].aggregate_id, "{pair:?}");
        assert_eq!(
            (pair[0].payload.as_str(), pair[1].payload.as_str()),
            (r#"{"n":"first"}"#, r#"{"n":"second"}"#)
        );
    }

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

/// Under steady writes, with some read always open (as while buyers poll
/// their orders), a passive checkpoint never lets the WAL start over; the
/// checkpointer restarts it, so it stays near `RESTART_FRAMES` pages instead
/// of growing with everything ever written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_wal_stays_bounded_under_steady_writes_with_reads_always_open() {
    use mercato::storage::sqlite::RESTART_FRAMES;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let db = Database::Sqlite(Arc::new(SqliteDb::open(&path).unwrap()));
    db.prepare_host_tables().await.unwrap();
    db.apply_migration(&step(
        1,
        "CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB NOT NULL)",
    ))
    .await
    .unwrap();
    // Readers one after another, each open for a moment.
    let writing = Arc::new(AtomicBool::new(true));
    let reader = tokio::spawn({
        let (db, writing) = (db.clone(), writing.clone());
        async move {
            let mut reads = 0u64;
            while writing.load(Ordering::Relaxed) {
                let mut tx = db.begin(TxMode::ReadOnly).await.unwrap();
                tx.host_query("SELECT COUNT(*) AS n FROM blobs", &[])
                    .await
                    .unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                tx.rollback().await.unwrap();
                reads += 1;
            }
            reads
        }
    });
    let limit = (RESTART_FRAMES * 4096 * 3) as u64;
    let blob = SqlValue::Blob(vec![7u8; 64 * 1024]);
    let wal = dir.path().join("wal.db-wal");
    let mut written = 0u64;
    let mut largest = 0u64;
    // Four times what the WAL may hold, in rows of 64 KiB at a steady pace
    // (up to ~64 MiB/s); old rows are deleted so that the database itself
    // stays small.
    while written < 4 * limit {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        let mut tx = db.begin(TxMode::ReadWrite).await.unwrap();
        tx.host_execute(
            "INSERT INTO blobs (b) VALUES ($1)",
            std::slice::from_ref(&blob),
        )
        .await
        .unwrap();
        tx.host_execute(
            "DELETE FROM blobs WHERE id < (SELECT MAX(id) FROM blobs) - 16",
            &[],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        written += 64 * 1024;
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    writing.store(false, Ordering::Relaxed);
    let reads = reader.await.unwrap();
    assert!(
        reads > 100,
        "the reader ran alongside the writes ({reads} reads)"
    );
    assert!(
        largest < limit,
        "the WAL grew to {largest} bytes after {written} bytes were written (limit {limit})"
    );
}

/// Dropping a SQLite database closes every connection to it before the drop
/// returns, the checkpointer's too. The last connection to close deletes the
/// `-wal` and `-shm` files by name: one closing later would delete those of a
/// new database made at the same path meanwhile (a plugin's files removed and
/// the plugin started again), and its connections would stop seeing each
/// other's commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_dropped_database_has_closed_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.db");
    let wal = dir.path().join("gone.db-wal");
    let db = Database::Sqlite(Arc::new(SqliteDb::open(&path).unwrap()));
    db.prepare_host_tables().await.unwrap();
    assert!(wal.exists(), "a database in use has its WAL");
    // The checkpointer has opened the WAL once it copied pages into the file.
    let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let before = size();
    crate::common::within(std::time::Duration::from_secs(10), async || {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        size() > before
    })
    .await;
    drop(db);
    assert!(
        !wal.exists(),
        "the last connection closed, and removed the WAL, before the drop returned"
    );
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

// ---- PostgreSQL sandbox at the storage level ----

/// A fresh PostgreSQL database for plugin `plugin` under a fresh namespace.
async fn postgres_db(plugin: &str) -> (String, String, Arc<PgDb>) {
    let url = postgres_url().await;
    let namespace = format!("t{}_", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let db = PgDb::open(&url, &namespace, plugin, 2).await.unwrap();
    (url, namespace, Arc::new(db))
}

async fn admin(url: &str) -> sqlx::PgConnection {
    <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap()
}

async fn scalar_i64(conn: &mut sqlx::PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
}

fn step(version: i64, sql: &str) -> MigrationStep {
    use sha2::Digest;
    MigrationStep {
        version,
        description: "attack".into(),
        file: format!("{version:04}_attack.sql"),
        sql: sql.into(),
        checksum: sha2::Sha384::digest(sql.as_bytes()).to_vec(),
        deadline: mercato::migrate::DEFAULT_DEADLINE,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_malicious_migration_is_refused_and_changes_nothing() {
    let (url, ns, db) = postgres_db("mal").await;
    let other = PgDb::open(&url, &ns, "other", 2).await.unwrap();
    let base = vec![(
        "0001_base.sql".to_owned(),
        "CREATE TABLE t (v TEXT NOT NULL);".to_owned(),
    )];
    let mal = Database::Postgres(db.clone());
    migrate::run("mal", &mal, &base, Mode::Forward)
        .await
        .unwrap();
    migrate::run(
        "other",
        &Database::Postgres(Arc::new(other)),
        &base,
        Mode::Forward,
    )
    .await
    .unwrap();
    let (s, host, other_s) = (
        format!("{ns}mal"),
        format!("{ns}mal_host"),
        format!("{ns}other"),
    );
    let mut conn = admin(&url).await;
    sqlx::query(&format!(
        "INSERT INTO \"{host}\".outbox_events (id, sequence, aggregate_id, event_type, payload, created_at) \
         VALUES ('e1', 1, 'a', 'T', '{{}}', 'now')"
    ))
    .execute(&mut conn)
    .await
    .expect_err("even the admin needs the host key to write host tables");

    let attacks = [
        "CREATE TABLE x (v INT); COMMIT; CREATE TABLE y (v INT)".to_owned(),
        "CREATE TABLE x (v INT);\n-- then\nSET ROLE postgres".to_owned(),
        "CREATE TABLE x (v INT); RESET ALL".to_owned(),
        format!("CREATE TABLE x (v INT); ALTER TABLE \"{other_s}\".t ADD COLUMN evil INT"),
        format!("CREATE TABLE x (v INT); INSERT INTO \"{other_s}\".t VALUES ('planted')"),
        format!("CREATE TABLE x (v INT); UPDATE \"{host}\".outbox_events SET published_at = 'x'"),
        format!("CREATE TABLE x (v INT); DROP SCHEMA \"{host}\" CASCADE"),
        format!("CREATE TABLE x (v INT); CREATE TABLE \"{host}\".outbox_events_2 (v INT)"),
        format!(
            "CREATE TABLE x (v INT); INSERT INTO \"{host}\"._sqlx_migrations \
             (version, description, success, checksum, execution_time) VALUES (99, 'forged', TRUE, '', 0)"
        ),
        "CREATE TABLE x (v INT); DO $$ BEGIN CREATE TABLE y (v INT); COMMIT; END $$".to_owned(),
        "CREATE TABLE x (v INT); CREATE TEMP TABLE outbox_events (v INT)".to_owned(),
        "CREATE TABLE x (v INT); CREATE SCHEMA sneaky".to_owned(),
        "CREATE TABLE x (v INT); CREATE ROLE sneaky SUPERUSER".to_owned(),
        "CREATE TABLE x (v INT); COPY t FROM '/etc/passwd'".to_owned(),
        "CREATE TABLE x (v INT); SELECT pg_catalog.set_config('role', 'postgres', true)".to_owned(),
    ];
    for sql in &attacks {
        let err = mal.apply_migration(&step(2, sql)).await.expect_err(sql);
        eprintln!("{sql}\n  -> {err}");
        assert!(matches!(err, StorageError::Refused(_)), "`{sql}`: {err:?}");
    }
    // Nothing of any of them happened.
    for (what, sql, expected) in [
        (
            "x",
            format!(
                "SELECT COUNT(*) FROM pg_tables WHERE schemaname = '{s}' AND tablename IN ('x', 'y')"
            ),
            0,
        ),
        (
            "other's columns",
            format!(
                "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = '{other_s}' AND table_name = 't'"
            ),
            1,
        ),
        (
            "other's rows",
            format!("SELECT COUNT(*) FROM \"{other_s}\".t"),
            0,
        ),
        (
            "host schema",
            format!("SELECT COUNT(*) FROM pg_namespace WHERE nspname = '{host}'"),
            1,
        ),
        (
            "host tables",
            format!("SELECT COUNT(*) FROM pg_tables WHERE schemaname = '{host}'"),
            HOST_SCHEMA_TABLES,
        ),
        (
            "bookkeeping",
            format!("SELECT COUNT(*) FROM \"{host}\"._sqlx_migrations"),
            1,
        ),
        (
            "schemas",
            "SELECT COUNT(*) FROM pg_namespace WHERE nspname = 'sneaky'".to_owned(),
            0,
        ),
        (
            "roles",
            "SELECT COUNT(*) FROM pg_roles WHERE rolname = 'sneaky'".to_owned(),
            0,
        ),
    ] {
        assert_eq!(scalar_i64(&mut conn, &sql).await, expected, "{what}");
    }
    assert_eq!(
        mal.applied_migrations().await.unwrap().len(),
        1,
        "only the base migration is recorded"
    );

    // A well-behaved migration applies, functions and triggers included, and
    // the plugin's calls can use what it created.
    let good = "CREATE TABLE x (v INT);\n\
                CREATE FUNCTION x_positive() RETURNS trigger LANGUAGE plpgsql AS $$\n\
                BEGIN IF NEW.v < 0 THEN RAISE EXCEPTION 'negative; refused'; END IF; RETURN NEW; END;\n\
                $$;\n\
                CREATE TRIGGER x_positive BEFORE INSERT ON x FOR EACH ROW EXECUTE FUNCTION x_positive();\n\
                SET CONSTRAINTS ALL IMMEDIATE;";
    mal.apply_migration(&step(2, good)).await.unwrap();
    let mut tx = mal.begin(TxMode::ReadWrite).await.unwrap();
    tx.guest_execute("INSERT INTO x (v) VALUES (1)", &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(mal.applied_migrations().await.unwrap().len(), 2);
    let owner: String = sqlx::query_scalar(&format!(
        "SELECT tableowner::text FROM pg_tables WHERE schemaname = '{s}' AND tablename = 'x'"
    ))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(owner, format!("{s}_owner"));
    PgDb::drop_schema(&url, &ns, "mal").await.unwrap();
    PgDb::drop_schema(&url, &ns, "other").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_migration_that_outruns_its_timeout_is_stopped() {
    let url = postgres_url().await;
    let ns = format!("t{}_", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let db = PgDb::open(&url, &ns, "slow", 2)
        .await
        .unwrap()
        .with_migration_timeout(std::time::Duration::from_millis(500));
    let db = Database::Postgres(Arc::new(db));
    db.prepare_host_tables().await.unwrap();
    // PostgreSQL's own statement timeout.
    let started = std::time::Instant::now();
    let err = db
        .apply_migration(&step(1, "CREATE TABLE x (v INT); SELECT pg_sleep(30)"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("statement timeout"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    // A migration that lifts the timeout first is stopped by the host.
    let started = std::time::Instant::now();
    let err = db
        .apply_migration(&step(
            1,
            "CREATE TABLE x (v INT); \
             SELECT set_config('statement_timeout', '0', true); SELECT pg_sleep(30)",
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ran longer"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let mut conn = admin(&url).await;
    assert_eq!(
        scalar_i64(
            &mut conn,
            &format!("SELECT COUNT(*) FROM pg_tables WHERE schemaname = '{ns}slow'")
        )
        .await,
        0
    );
    assert!(db.applied_migrations().await.unwrap().is_empty());
    PgDb::drop_schema(&url, &ns, "slow").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_call_budget_stops_slow_statements_and_large_results() {
    use mercato::storage::CallBudget;
    use std::time::{Duration, Instant};
    let (url, ns, db) = postgres_db("budget").await;
    let db = Database::Postgres(db);
    migrate::run("budget", &db, &migrations(), Mode::Forward)
        .await
        .unwrap();
    let slow =
        "SELECT COUNT(*) AS n FROM generate_series(1, 100000) a, generate_series(1, 100000) b";
    let budget = |ms| CallBudget {
        deadline: Instant::now() + Duration::from_millis(ms),
        max_query_bytes: 1_000,
    };

    // The database stops the statement at the deadline.
    let mut tx = db.begin_call(TxMode::ReadOnly, budget(300)).await.unwrap();
    let started = Instant::now();
    let err = tx.guest_query(slow, &[]).await.unwrap_err();
    assert!(
        matches!(err, GuestError::Internal(ref m) if m.contains("deadline")),
        "{err:?}"
    );
    assert!(tx.deadline_exceeded());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    tx.rollback().await.unwrap();

    // Bigger results than the budget are refused while streaming.
    let mut tx = db
        .begin_call(TxMode::ReadOnly, budget(5_000))
        .await
        .unwrap();
    let err = tx
        .guest_query(
            "SELECT repeat('x', 600) AS v FROM generate_series(1, 1000000)",
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, GuestError::Invalid(ref m) if m.contains("exceeds 1000 bytes")),
        "{err:?}"
    );
    assert!(!tx.deadline_exceeded());
    let started = Instant::now();
    tx.rollback().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    let mut tx = db
        .begin_call(TxMode::ReadOnly, budget(5_000))
        .await
        .unwrap();
    let rows = tx
        .guest_query("SELECT repeat('x', 600) AS v", &[])
        .await
        .unwrap();
    assert_eq!(rows.rows.len(), 1);
    tx.rollback().await.unwrap();

    // A call abandoned at its deadline mid-statement: the statement is
    // cancelled and the connection rolled back promptly, then reused (pool of 2).
    for _ in 0..4 {
        let mut tx = db
            .begin_call(TxMode::ReadWrite, budget(60_000))
            .await
            .unwrap();
        let abandoned =
            tokio::time::timeout(Duration::from_millis(200), tx.guest_query(slow, &[])).await;
        assert!(abandoned.is_err(), "the slow query cannot finish in 200 ms");
        let started = Instant::now();
        tx.rollback_after_timeout().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    // And dropped mid-statement (a client went away): same, in the background.
    let mut tx = db
        .begin_call(TxMode::ReadWrite, budget(60_000))
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_millis(200), tx.guest_query(slow, &[])).await;
    drop(tx);
    let started = Instant::now();
    assert_eq!(count(&db).await, 0);
    assert!(started.elapsed() < Duration::from_secs(2));
    let mut conn = admin(&url).await;
    assert_eq!(
        scalar_i64(
            &mut conn,
            &format!("SELECT COUNT(*) FROM pg_stat_activity WHERE usename = '{ns}budget' AND state <> 'idle'")
        )
        .await,
        0
    );
    PgDb::drop_schema(&url, &ns, "budget").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_session_state_does_not_outlive_a_call() {
    let url = postgres_url().await;
    let ns = format!("t{}_", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    // One connection, so the next transaction gets the same session.
    let db = Arc::new(PgDb::open(&url, &ns, "leaky", 1).await.unwrap());
    let database = Database::Postgres(db.clone());
    // A plugin's own functions can do what its SQL may not; the host cleans up after them.
    let files = vec![(
        "0001_leaky.sql".to_owned(),
        "CREATE FUNCTION leave_state() RETURNS TEXT LANGUAGE plpgsql AS $$ BEGIN \
             PERFORM pg_advisory_lock(42); \
             PERFORM set_config('application_name', 'leaked', false); \
             PERFORM set_config('search_path', 'pg_catalog', false); \
             RETURN 'done'; END $$;"
            .to_owned(),
    )];
    migrate::run("leaky", &database, &files, Mode::Forward)
        .await
        .unwrap();
    let mut tx = database.begin(TxMode::ReadWrite).await.unwrap();
    tx.guest_query("SELECT leave_state() AS x", &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut conn = admin(&url).await;
    let locks = format!(
        "SELECT COUNT(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND a.usename = '{ns}leaky'"
    );
    let started = std::time::Instant::now();
    while scalar_i64(&mut conn, &locks).await > 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "advisory lock kept"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut tx = database.begin(TxMode::ReadOnly).await.unwrap();
    let rows = tx
        .host_query(
            "SELECT pg_catalog.current_setting('application_name') AS app, \
                    pg_catalog.current_setting('search_path') AS path",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.rows[0][0], SqlValue::Text(String::new()));
    let path = match &rows.rows[0][1] {
        SqlValue::Text(path) => path.clone(),
        other => panic!("{other:?}"),
    };
    assert!(path.contains(&format!("{ns}leaky_host")), "{path}");
    tx.rollback().await.unwrap();
    PgDb::drop_schema(&url, &ns, "leaky").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_install_of_the_earlier_layout_is_converted_in_place() {
    use sha2::Digest;
    let url = postgres_url().await;
    let ns = format!("t{}_", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let s = format!("{ns}old");
    let base = "CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT NOT NULL);";
    // What earlier builds left: schema, plugin and host tables all the admin's,
    // in the plugin's schema; a role named like the schema with DML rights.
    let mut conn = admin(&url).await;
    let setup = format!(
        "CREATE ROLE \"{s}\" LOGIN; CREATE SCHEMA \"{s}\"; SET search_path = \"{s}\";
         {host_tables}
         CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
             installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL,
             checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL);
         {base}
         CREATE FUNCTION notes_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
         CREATE TRIGGER notes_guard BEFORE UPDATE ON notes FOR EACH ROW EXECUTE FUNCTION notes_guard();
         INSERT INTO notes VALUES ('n1', 'kept');
         INSERT INTO outbox_events (id, sequence, aggregate_id, event_type, payload, created_at)
             VALUES ('e1', 1, 'n1', 'NoteCreated', '{{}}', 'now');
         INSERT INTO mercato_cursors VALUES ('audit', 7);
         GRANT USAGE ON SCHEMA \"{s}\" TO \"{s}\";
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA \"{s}\" TO \"{s}\";
         RESET search_path;",
        host_tables = mercato::storage::schema::host_tables_ddl(mercato::storage::BackendKind::Postgres),
    );
    sqlx::raw_sql(&setup).execute(&mut conn).await.unwrap();
    sqlx::query(&format!(
        "INSERT INTO \"{s}\"._sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (1, 'notes', TRUE, $1, 0)"
    ))
    .bind(sha2::Sha384::digest(base.as_bytes()).to_vec())
    .execute(&mut conn)
    .await
    .unwrap();

    let db = Database::Postgres(Arc::new(PgDb::open(&url, &ns, "old", 2).await.unwrap()));
    let files = vec![
        ("0001_notes.sql".to_owned(), base.to_owned()),
        (
            "0002_more.sql".to_owned(),
            "ALTER TABLE notes ADD COLUMN extra TEXT; CREATE OR REPLACE FUNCTION notes_guard() \
             RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;"
                .to_owned(),
        ),
    ];
    migrate::run("old", &db, &files, Mode::Forward)
        .await
        .unwrap();
    // Run again: idempotent.
    migrate::run("old", &db, &files, Mode::Forward)
        .await
        .unwrap();

    for (what, sql, expected) in [
        (
            "host tables moved",
            format!(
                "SELECT COUNT(*) FROM pg_tables WHERE schemaname = '{s}_host' AND tableowner = current_user"
            ),
            HOST_SCHEMA_TABLES,
        ),
        (
            "plugin tables stay",
            format!("SELECT COUNT(*) FROM pg_tables WHERE schemaname = '{s}'"),
            1,
        ),
        (
            "owned by the owner role",
            format!(
                "SELECT COUNT(*) FROM pg_tables WHERE schemaname = '{s}' AND tableowner = '{s}_owner'"
            ),
            1,
        ),
        (
            "schema handed over",
            format!(
                "SELECT COUNT(*) FROM pg_namespace WHERE nspname = '{s}' AND pg_get_userbyid(nspowner) = '{s}_owner'"
            ),
            1,
        ),
        (
            "function handed over",
            format!(
                "SELECT COUNT(*) FROM pg_proc WHERE proname = 'notes_guard' AND pg_get_userbyid(proowner) = '{s}_owner'"
            ),
            1,
        ),
        (
            "rows kept",
            format!("SELECT COUNT(*) FROM \"{s}_host\".outbox_events"),
            1,
        ),
        (
            "cursor kept",
            format!("SELECT sequence FROM \"{s}_host\".mercato_cursors"),
            7,
        ),
        (
            "bookkeeping",
            format!("SELECT COUNT(*) FROM \"{s}_host\"._sqlx_migrations"),
            2,
        ),
    ] {
        assert_eq!(scalar_i64(&mut conn, &sql).await, expected, "{what}");
    }
    let mut tx = db.begin(TxMode::ReadWrite).await.unwrap();
    let rows = tx
        .guest_query("SELECT body FROM notes WHERE id = $1", &[text("n1")])
        .await
        .unwrap();
    assert_eq!(rows.rows, vec![vec![text("kept")]]);
    let err = tx
        .guest_execute("DELETE FROM mercato_cursors", &[])
        .await
        .unwrap_err();
    assert!(matches!(err, GuestError::Denied(_)), "{err:?}");
    drop(tx);
    PgDb::drop_schema(&url, &ns, "old").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hot_swap_applies_the_new_versions_migration() {
    use crate::common::{SHOP, component, place, put_component, seed, shop_config};
    let dir = tempfile::tempdir().unwrap();
    let mut config = shop_config(dir.path());
    config.storage = postgres_config(dir.path()).await.storage;
    let app = TestApp::start(config.clone(), &SHOP).await;
    seed(&app, "KEEP", 10).await;
    let id = place(&app, "KEEP", "r").await;
    let (status, body) = put_component(&app, "orders", component("orders-v2"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.get(&format!("/orders/{id}")).await.1["channel"], "web");
    app.stop().await;
    let app = TestApp::start(config.clone(), &SHOP).await;
    assert_eq!(app.get(&format!("/orders/{id}")).await.1["channel"], "web");
    app.stop().await;
    let mut conn = admin(config.storage.url.as_deref().unwrap()).await;
    // The v2 brings 0005 (a number the shop's orders leaves free), applied
    // after orders' own, whatever their number.
    assert_eq!(
        scalar_i64(
            &mut conn,
            &format!(
                "SELECT COUNT(*) FROM \"{}orders_host\"._sqlx_migrations WHERE version = 5",
                config.storage.namespace
            )
        )
        .await,
        1,
        "the v2's migration 0005 is applied"
    );
    drop_postgres(&config, &SHOP).await;
}

/// A database of a build before traces: its outbox, staging table and held
/// events gain their new columns in place, and events staged and numbered
/// afterwards carry their trace and are found by their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_outbox_of_an_earlier_build_gains_the_trace_columns_in_place() {
    let url = postgres_url().await;
    let ns = format!("t{}_", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let host = format!("{ns}pre_host");
    let db = Database::Postgres(Arc::new(PgDb::open(&url, &ns, "pre", 2).await.unwrap()));
    db.prepare_host_tables().await.unwrap();
    let mut conn = admin(&url).await;
    sqlx::raw_sql(&format!(
        "DROP INDEX \"{host}\".outbox_events_correlation;
         ALTER TABLE \"{host}\".outbox_events DROP COLUMN traceparent, DROP COLUMN correlation_id;
         ALTER TABLE \"{host}\".mercato_outbox_staged DROP COLUMN traceparent, DROP COLUMN correlation_id;
         ALTER TABLE \"{host}\".mercato_scheduled DROP COLUMN traceparent;
         ALTER TABLE \"{host}\".mercato_dead_letters DROP COLUMN traceparent;"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    for _ in 0..2 {
        db.prepare_host_tables().await.unwrap();
    }
    let trace = mercato::trace::TraceContext::root();
    let mut tx = db.begin(TxMode::ReadWrite).await.unwrap();
    let event = PendingEvent {
        event_type: "OrderPlaced".into(),
        aggregate_id: "o-1".into(),
        payload: r#"{"order_id":"o-1"}"#.into(),
        deliver_after_ms: None,
        correlation_id: Some("o-1".into()),
        trace: Some(trace),
    };
    assert_eq!(flush(&mut tx, &[event]).await.unwrap(), Flushed::Staged);
    tx.commit().await.unwrap();
    assert_eq!(db.number_staged(10).await.unwrap(), Some(1));
    let events = read_outbox(&db, "pre", 0).await.unwrap();
    assert_eq!(events[0].trace(), Some(trace));
    let found = scalar_i64(
        &mut conn,
        &format!("SELECT COUNT(*) FROM \"{host}\".outbox_events WHERE correlation_id = 'o-1'"),
    )
    .await;
    assert_eq!(found, 1);
    let indexed = scalar_i64(
        &mut conn,
        &format!(
            "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = '{host}' \
             AND indexname = 'outbox_events_correlation'"
        ),
    )
    .await;
    assert_eq!(indexed, 1);
    drop(conn);
    PgDb::drop_schema(&url, &ns, "pre").await.unwrap();
}
