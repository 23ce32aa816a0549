//! The host's side of a unit of work, on a real SQLite database and without
//! any guest: idempotency keys, stored responses and their typed reads.
use super::RequestFailure;
use super::idempotency::{KeyGuard, request_hash, store_response, stored_response};
use crate::bindings::{Request, Response, SqlValue};
use crate::plugin::Slot;
use crate::storage::sqlite::SqliteDb;
use crate::storage::{Database, Tx, TxMode};
use std::sync::Arc;

async fn database(dir: &tempfile::TempDir) -> Database {
    let db = SqliteDb::open_limited(&dir.path().join("p.db"), 1 << 20).unwrap();
    let db = Database::Sqlite(Arc::new(db));
    db.prepare_host_tables().await.unwrap();
    db
}

fn request(path: &str, query: &str, body: &[u8]) -> Request {
    Request {
        method: "POST".into(),
        path: path.into(),
        query: query.into(),
        headers: Vec::new(),
        body: body.to_vec(),
    }
}

fn created() -> Response {
    Response {
        status: 201,
        headers: vec![("content-type".into(), "application/json".into())],
        body: br#"{"id":"o-1"}"#.to_vec(),
        commit: false,
    }
}

async fn store(db: &Database, key: &str, hash: &str, response: &Response) {
    let mut tx = db.begin(TxMode::ReadWrite).await.unwrap();
    store_response(&mut tx, key, hash, response).await.unwrap();
    tx.commit().await.unwrap();
}

async fn lookup(
    db: &Database,
    key: &str,
    hash: &str,
    cutoff: &str,
) -> Option<Result<Response, String>> {
    let mut tx: Tx = db.begin(TxMode::ReadOnly).await.unwrap();
    let found = stored_response(&mut tx, key, hash, cutoff).await.unwrap();
    tx.rollback().await.unwrap();
    found.map(|r| {
        r.map(|answer| {
            assert!(answer.replayed, "a stored answer is a replay");
            answer.response
        })
        .map_err(|e| e.to_string())
    })
}

/// A database holding the response `created()` under key `k-1`, and the
/// hash of its request.
async fn created_under_k1() -> (tempfile::TempDir, Database, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir).await;
    let hash = request_hash(&request("/orders", "", b"{}"));
    store(&db, "k-1", &hash, &created()).await;
    (dir, db, hash)
}

#[tokio::test]
async fn a_stored_response_answers_the_same_request_and_refuses_another() {
    let (_dir, db, hash) = created_under_k1().await;

    assert_eq!(lookup(&db, "k-1", &hash, "").await, Some(Ok(created())));
    let other = request_hash(&request("/orders", "", b"{\"x\":1}"));
    assert_eq!(
        lookup(&db, "k-1", &other, "").await,
        Some(Err(RequestFailure::KeyReused.to_string()))
    );
    assert_eq!(lookup(&db, "k-2", &hash, "").await, None);
}

#[tokio::test]
async fn an_expired_response_is_ignored_and_replaced() {
    let (_dir, db, hash) = created_under_k1().await;
    // Every record is older than a cutoff in the far future.
    assert_eq!(
        lookup(&db, "k-1", &hash, "9999-01-01T00:00:00.000Z").await,
        None
    );

    let accepted = Response {
        status: 202,
        ..created()
    };
    store(&db, "k-1", &hash, &accepted).await;
    assert_eq!(lookup(&db, "k-1", &hash, "").await, Some(Ok(accepted)));
}

#[tokio::test]
async fn a_damaged_record_is_an_error_not_a_panic_or_a_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir).await;
    let hash = request_hash(&request("/orders", "", b"{}"));
    let mut tx = db.begin(TxMode::ReadWrite).await.unwrap();
    // The table lives in the plugin's own database: plugin code could write this.
    tx.host_execute(
        "INSERT INTO mercato_idempotency (key, request_hash, status, headers, body, created_at) \
         VALUES ($1, $2, 'teapot', '[]', x'', '2026-01-01T00:00:00.000Z')",
        &[SqlValue::Text("k-1".into()), SqlValue::Text(hash.clone())],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut tx = db.begin(TxMode::ReadOnly).await.unwrap();
    let error = stored_response(&mut tx, "k-1", &hash, "").await.err();
    tx.rollback().await.unwrap();
    let error = error
        .expect("a status that is not a number is refused")
        .to_string();
    assert!(error.contains("status"), "{error}");
}

#[test]
fn the_request_hash_keeps_its_parts_apart() {
    let a = request_hash(&request("/ab", "", b""));
    let b = request_hash(&request("/a", "b", b""));
    let c = request_hash(&request("/a", "", b"b"));
    assert_ne!(a, b);
    assert_ne!(b, c);
    assert_ne!(a, c);
    assert_eq!(a, request_hash(&request("/ab", "", b"")));
}

#[tokio::test]
async fn a_key_is_held_while_its_request_runs_and_freed_however_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let slot = Slot::new(database(&dir).await, 0);
    let held = KeyGuard::claim(&slot, "k-1").unwrap();
    assert!(matches!(
        KeyGuard::claim(&slot, "k-1"),
        Err(RequestFailure::KeyInProgress)
    ));
    // Another key is independent.
    drop(KeyGuard::claim(&slot, "k-2").unwrap());
    drop(held);
    assert!(KeyGuard::claim(&slot, "k-1").is_ok());
}
