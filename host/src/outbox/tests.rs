//! The delivery bookkeeping the relay relies on, on a real SQLite database and
//! without any guest: an outbox written at commit and read in order, cursors
//! that never move back, delayed events, dead letters and the published mark.
use super::inbox::{Delivery, already_consumed, record_consumed};
use super::store::{
    advance_cursor, dead_letter, dead_letter_events, list_dead_letters, load_cursor,
    mark_published, next_due, outbox_head, read_due, read_outbox, schedule, unpublished,
};
use super::{Flushed, OutboxEvent, PendingEvent, flush};
use crate::storage::sqlite::SqliteDb;
use crate::storage::{Database, TxMode};
use std::sync::Arc;

async fn database(dir: &tempfile::TempDir, name: &str) -> Database {
    let db = SqliteDb::open_limited(&dir.path().join(format!("{name}.db")), 1 << 20).unwrap();
    let db = Database::Sqlite(Arc::new(db));
    db.prepare_host_tables().await.unwrap();
    db
}

fn event(n: u32, delay: Option<u64>) -> PendingEvent {
    PendingEvent {
        event_type: "OrderPlaced".into(),
        aggregate_id: format!("o-{n}"),
        payload: format!(r#"{{"n":{n}}}"#),
        deliver_after_ms: delay,
        correlation_id: None,
        trace: None,
    }
}

/// A source whose outbox holds three events, the second one delayed.
async fn source(dir: &tempfile::TempDir) -> Database {
    let db = database(dir, "orders").await;
    let mut tx = db.begin(TxMode::ReadWrite).await.unwrap();
    let events = [event(1, None), event(2, Some(60_000)), event(3, None)];
    assert_eq!(flush(&mut tx, &events).await.unwrap(), Flushed::Numbered(3));
    tx.commit().await.unwrap();
    db
}

/// The source `orders` (see [`source`]) and an empty subscriber `inventory`.
async fn source_and_subscriber() -> (tempfile::TempDir, Database, Database) {
    let dir = tempfile::tempdir().unwrap();
    let orders = source(&dir).await;
    let inventory = database(&dir, "inventory").await;
    (dir, orders, inventory)
}

/// Records `event` as consumed in a transaction of its own; true if it was not yet.
async fn consume(db: &Database, event: &OutboxEvent, delivery: Delivery) -> bool {
    let mut tx = db.begin(TxMode::ReadWrite).await.unwrap();
    let recorded = record_consumed(&mut tx, event, delivery).await.unwrap();
    tx.commit().await.unwrap();
    recorded
}

#[tokio::test]
async fn committed_events_are_read_in_order_past_a_cursor_that_never_moves_back() {
    let (_dir, orders, inventory) = source_and_subscriber().await;
    assert_eq!(outbox_head(&orders).await.unwrap(), 3);

    let all = read_outbox(&orders, "orders", 0).await.unwrap();
    let sequences: Vec<u64> = all.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, [1, 2, 3]);
    assert_eq!(all[1].deliver_after_ms, Some(60_000));
    assert!(all.iter().all(|e| e.source == "orders"));
    assert_eq!(read_outbox(&orders, "orders", 2).await.unwrap().len(), 1);

    advance_cursor(&inventory, "orders", 3).await.unwrap();
    advance_cursor(&inventory, "orders", 1).await.unwrap();
    assert_eq!(load_cursor(&inventory, "orders").await.unwrap(), 3);
    assert_eq!(load_cursor(&inventory, "payments").await.unwrap(), 0);
}

#[tokio::test]
async fn an_event_is_consumed_once_in_the_subscribers_transaction() {
    let (_dir, orders, inventory) = source_and_subscriber().await;
    let first = &read_outbox(&orders, "orders", 0).await.unwrap()[0];

    let mut tx = inventory.begin(TxMode::ReadWrite).await.unwrap();
    assert!(
        !already_consumed(&mut tx, first, Delivery::Stream)
            .await
            .unwrap()
    );
    assert!(
        record_consumed(&mut tx, first, Delivery::Stream)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    // A second delivery of the same event finds it consumed and records nothing.
    let mut tx = inventory.begin(TxMode::ReadWrite).await.unwrap();
    assert!(
        already_consumed(&mut tx, first, Delivery::Stream)
            .await
            .unwrap()
    );
    assert!(
        !record_consumed(&mut tx, first, Delivery::Stream)
            .await
            .unwrap()
    );
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn a_delayed_event_waits_in_the_schedule_until_due() {
    let (_dir, orders, inventory) = source_and_subscriber().await;
    let delayed = read_outbox(&orders, "orders", 0).await.unwrap().remove(1);

    schedule(&inventory, &delayed, 5_000).await.unwrap();
    // Scheduling consumed it from the stream: the cursor moved past it.
    assert_eq!(load_cursor(&inventory, "orders").await.unwrap(), 2);
    assert_eq!(next_due(&inventory).await.unwrap(), Some(5_000));
    assert!(read_due(&inventory, 4_999).await.unwrap().is_empty());
    let due = read_due(&inventory, 5_000).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].0.id.as_str(), due[0].1), (delayed.id.as_str(), 0));
    assert_eq!(due[0].0.payload, delayed.payload);

    assert!(consume(&inventory, &delayed, Delivery::Scheduled).await);
    assert_eq!(next_due(&inventory).await.unwrap(), None);
}

#[tokio::test]
async fn a_dead_letter_keeps_the_event_and_its_error_and_consumes_it() {
    let (_dir, orders, inventory) = source_and_subscriber().await;
    let first = read_outbox(&orders, "orders", 0).await.unwrap().remove(0);

    dead_letter(&inventory, &first, "conflict: stock", 5, Delivery::Stream)
        .await
        .unwrap();
    assert_eq!(load_cursor(&inventory, "orders").await.unwrap(), 1);
    let kept = dead_letter_events(&inventory).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].id.as_str(), kept[0].sequence),
        (first.id.as_str(), 1)
    );
    let listed = list_dead_letters(&inventory, "inventory").await.unwrap();
    assert_eq!(listed[0].error, "conflict: stock");
    assert_eq!(listed[0].attempts, 5);

    // Redriven and handled: its row goes in the handler's transaction.
    assert!(consume(&inventory, &first, Delivery::DeadLetter).await);
    assert!(dead_letter_events(&inventory).await.unwrap().is_empty());
}

#[tokio::test]
async fn events_every_subscriber_consumed_are_marked_published() {
    let dir = tempfile::tempdir().unwrap();
    let orders = source(&dir).await;
    assert_eq!(unpublished(&orders).await.unwrap(), 3);
    assert_eq!(mark_published(&orders, 2).await.unwrap(), 1);
    assert_eq!(unpublished(&orders).await.unwrap(), 1);
    // The outbox is retained for replay: marking deletes nothing.
    assert_eq!(read_outbox(&orders, "orders", 0).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_cursor_behind_pruned_events_reads_on_from_the_first_kept_one() {
    let (_dir, orders, _inventory) = source_and_subscriber().await;
    let mut tx = orders.begin(TxMode::ReadWrite).await.unwrap();
    tx.host_execute("DELETE FROM outbox_events WHERE sequence <= 2", &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let rest = read_outbox(&orders, "orders", 0).await.unwrap();
    assert_eq!(rest.iter().map(|e| e.sequence).collect::<Vec<_>>(), [3]);
    assert!(read_outbox(&orders, "orders", 3).await.unwrap().is_empty());
}

#[test]
fn an_event_belongs_to_the_order_its_payload_names() {
    use super::correlation_id;
    let id = |payload: &str| correlation_id(payload).unwrap();
    assert_eq!(id(r#"{"order_id":"o-1","n":2}"#), Some("o-1".into()));
    assert_eq!(
        id(r#" {"n":{"order_id":"nested"},"order_id":"o-2"}"#),
        Some("o-2".into())
    );
    // Not an order's: no id, a non-string, an empty or oversized one, not
    // an object, or a duplicate key (which one would it be?).
    for payload in [
        r#"{"sku":"TEE"}"#,
        r#"{"order_id":7}"#,
        r#"{"order_id":null}"#,
        r#"{"order_id":""}"#,
        &format!(r#"{{"order_id":"{}"}}"#, "x".repeat(129)),
        r#"["o-3"]"#,
        r#"[{"order_id":"o-4"}, 1]"#,
        r#""o-5""#,
        r#"{"order_id":"o-6","order_id":"o-7"}"#,
    ] {
        assert_eq!(id(payload), None, "{payload}");
    }
    assert!(correlation_id("{not json").is_err());
    assert!(correlation_id(r#"{"order_id":"o-8""#).is_err());
}

/// A database of a build before traces: its outbox and held events gain
/// their new columns in place, its events are read as they were, and new
/// ones carry their trace.
#[tokio::test]
async fn an_outbox_of_an_earlier_build_gains_the_trace_columns_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let old = rusqlite::Connection::open(&path).unwrap();
    old.execute_batch(
        "CREATE TABLE outbox_events (id TEXT PRIMARY KEY, sequence BIGINT NOT NULL UNIQUE,
             aggregate_id TEXT NOT NULL, event_type TEXT NOT NULL, payload TEXT NOT NULL,
             created_at TEXT NOT NULL, deliver_after_ms BIGINT, published_at TEXT);
         CREATE TABLE mercato_dead_letters (event_id TEXT PRIMARY KEY, source TEXT NOT NULL,
             sequence BIGINT NOT NULL, event_type TEXT NOT NULL, aggregate_id TEXT NOT NULL,
             payload TEXT NOT NULL, occurred_at TEXT NOT NULL, error TEXT NOT NULL,
             attempts BIGINT NOT NULL, failed_at TEXT NOT NULL);
         INSERT INTO outbox_events VALUES ('e1', 1, 'o-1', 'OrderPlaced', '{\"order_id\":\"o-1\"}', 'then', NULL, NULL);",
    )
    .unwrap();
    drop(old);
    let db = database(&dir, "old").await;
    // Twice: the second finds every column there.
    db.prepare_host_tables().await.unwrap();
    let trace = crate::trace::TraceContext::root();
    let mut tx = db.begin(TxMode::ReadWrite).await.unwrap();
    let mut new = event(2, None);
    new.trace = Some(trace);
    new.correlation_id = Some("o-2".into());
    flush(&mut tx, &[new]).await.unwrap();
    tx.commit().await.unwrap();
    let events = read_outbox(&db, "old", 0).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[0].id.as_str(), events[0].traceparent.as_deref()),
        ("e1", None)
    );
    assert_eq!(events[1].trace(), Some(trace));
    dead_letter(&db, &events[1], "boom", 3, Delivery::Stream)
        .await
        .unwrap();
    assert_eq!(
        dead_letter_events(&db).await.unwrap()[0].trace(),
        Some(trace)
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    // EXPLAIN QUERY PLAN's rows: id, parent, notused, detail.
    let indexed: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id FROM outbox_events WHERE correlation_id = 'o-2'",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(indexed.contains("outbox_events_correlation"), "{indexed}");
}
