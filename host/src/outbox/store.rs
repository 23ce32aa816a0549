//! The host tables of event delivery, in the subscriber's or the source's own
//! database: cursors (`mercato_cursors`), delayed events (`mercato_scheduled`),
//! dead letters (`mercato_dead_letters`) and the outbox itself. All SQL of the
//! relay is here, read back through typed rows ([`HostRow`]).
use super::OutboxEvent;
use super::inbox::{ADVANCE_CURSOR, Delivery, cursor_in, record_consumed};
use crate::bindings::SqlValue;
use crate::storage::{Database, HostRow, StorageError, TxMode, first_row, host_rows};

/// Events read from an outbox or a schedule at a time.
const BATCH: i64 = 256;

/// Columns of an outbox row, as [`outbox_event`] reads them.
const OUTBOX_COLUMNS: &str =
    "id, sequence, event_type, aggregate_id, payload, created_at, deliver_after_ms, traceparent";

/// Columns of an event kept outside the outbox (`mercato_scheduled`,
/// `mercato_dead_letters`), as [`held_event`] reads them.
const HELD_COLUMNS: &str =
    "event_id, source, sequence, event_type, aggregate_id, payload, occurred_at, traceparent";

const UNPUBLISHED: &str = "SELECT COUNT(*) AS n FROM outbox_events WHERE published_at IS NULL";

fn outbox_event(row: HostRow<'_>, source: &str) -> Result<OutboxEvent, StorageError> {
    Ok(OutboxEvent {
        id: row.text("id")?,
        source: source.to_owned(),
        sequence: row.uint("sequence")?,
        event_type: row.text("event_type")?,
        aggregate_id: row.text("aggregate_id")?,
        payload: row.text("payload")?,
        created_at: row.text("created_at")?,
        deliver_after_ms: row
            .opt_int("deliver_after_ms")?
            .and_then(|ms| u64::try_from(ms).ok()),
        traceparent: row.opt_text("traceparent")?,
    })
}

fn held_event(row: HostRow<'_>) -> Result<OutboxEvent, StorageError> {
    Ok(OutboxEvent {
        id: row.text("event_id")?,
        source: row.text("source")?,
        sequence: row.uint("sequence")?,
        event_type: row.text("event_type")?,
        aggregate_id: row.text("aggregate_id")?,
        payload: row.text("payload")?,
        created_at: row.text("occurred_at")?,
        deliver_after_ms: None,
        traceparent: row.opt_text("traceparent")?,
    })
}

fn event_params(event: &OutboxEvent) -> Vec<SqlValue> {
    vec![
        SqlValue::Text(event.id.clone()),
        SqlValue::Text(event.source.clone()),
        SqlValue::Integer(event.sequence as i64),
        SqlValue::Text(event.event_type.clone()),
        SqlValue::Text(event.aggregate_id.clone()),
        SqlValue::Text(event.payload.clone()),
        SqlValue::Text(event.created_at.clone()),
        event
            .traceparent
            .clone()
            .map_or(SqlValue::Null, SqlValue::Text),
    ]
}

/// Runs one read-only query on a snapshot of its own.
async fn read(
    db: &Database,
    sql: &str,
    params: &[SqlValue],
) -> Result<crate::bindings::Rows, StorageError> {
    db.read_once(sql, params).await
}

/// The last sequence of `source` the plugin of `db` consumed.
pub async fn load_cursor(db: &Database, source: &str) -> Result<u64, StorageError> {
    let mut tx = db.begin(TxMode::ReadOnly).await?;
    let cursor = cursor_in(&mut tx, source).await?;
    tx.rollback().await?;
    Ok(cursor)
}

/// Moves the cursor past events the subscriber ignores.
pub async fn advance_cursor(
    db: &Database,
    source: &str,
    sequence: u64,
) -> Result<(), StorageError> {
    let mut tx = db.begin(TxMode::ReadWrite).await?;
    crate::cluster::fence::check(&mut tx).await?;
    tx.host_execute(
        ADVANCE_CURSOR,
        &[
            SqlValue::Text(source.to_owned()),
            SqlValue::Integer(sequence as i64),
        ],
    )
    .await?;
    tx.commit().await
}

/// The next events of `source`'s outbox after `after`, in sequence order.
pub async fn read_outbox(
    db: &Database,
    source: &str,
    after: u64,
) -> Result<Vec<OutboxEvent>, StorageError> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    // One statement: the next sequence after `after` (usually `after + 1`;
    // further on after events were pruned past a cursor that was behind
    // them), then a closed range of BATCH from there. A closed range, because
    // PostgreSQL's generic plan for an open `sequence > $1` guesses a third
    // of the table and, planned while the outbox was small, kept scanning all
    // of it at every read as it grew.
    let sql = format!(
        "SELECT {OUTBOX_COLUMNS} FROM outbox_events \
         WHERE sequence >= (SELECT MIN(sequence) FROM outbox_events WHERE sequence > $1) \
         AND sequence < (SELECT MIN(sequence) FROM outbox_events WHERE sequence > $1) + $2 \
         ORDER BY sequence"
    );
    let rows = read(
        db,
        &sql,
        &[SqlValue::Integer(after), SqlValue::Integer(BATCH)],
    )
    .await?;
    host_rows(&rows)
        .map(|row| outbox_event(row, source))
        .collect()
}

/// The lowest sequence still in the outbox of `db` (`None` when empty): a
/// replay needs it to be 1.
pub async fn first_sequence(db: &Database) -> Result<Option<u64>, StorageError> {
    let rows = read(db, "SELECT MIN(sequence) AS first FROM outbox_events", &[]).await?;
    match first_row(&rows) {
        Some(row) => Ok(row.opt_int("first")?.and_then(|n| u64::try_from(n).ok())),
        None => Ok(None),
    }
}

/// The highest sequence in the outbox of `db` (0 when empty).
pub async fn outbox_head(db: &Database) -> Result<u64, StorageError> {
    let rows = read(
        db,
        "SELECT COALESCE(MAX(sequence), 0) AS head FROM outbox_events",
        &[],
    )
    .await?;
    first_row(&rows).map_or(Ok(0), |row| row.uint("head"))
}

/// Takes a delayed event out of the stream into the subscriber's schedule,
/// consuming it from the stream in the same transaction.
pub async fn schedule(
    db: &Database,
    event: &OutboxEvent,
    due_at_ms: u64,
) -> Result<(), StorageError> {
    let mut tx = db.begin(TxMode::ReadWrite).await?;
    if cursor_in(&mut tx, &event.source).await? < event.sequence {
        let mut params = event_params(event);
        params.push(SqlValue::Integer(due_at_ms as i64));
        tx.host_execute(
            &format!(
                "INSERT INTO mercato_scheduled ({HELD_COLUMNS}, due_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id) DO NOTHING"
            ),
            &params,
        )
        .await?;
        record_consumed(&mut tx, event, Delivery::Stream).await?;
    }
    tx.commit().await
}

/// Delayed events due at `now_ms`, with the attempts made so far.
pub async fn read_due(db: &Database, now_ms: u64) -> Result<Vec<(OutboxEvent, u32)>, StorageError> {
    let rows = read(
        db,
        &format!(
            "SELECT {HELD_COLUMNS}, attempts FROM mercato_scheduled \
             WHERE due_at_ms <= $1 ORDER BY due_at_ms, source, sequence LIMIT $2"
        ),
        &[SqlValue::Integer(now_ms as i64), SqlValue::Integer(BATCH)],
    )
    .await?;
    host_rows(&rows)
        .map(|row| {
            let attempts = u32::try_from(row.uint("attempts")?).unwrap_or(u32::MAX);
            Ok((held_event(row)?, attempts))
        })
        .collect()
}

/// Counts an attempt of a delayed event and moves it to `due_at_ms`.
pub async fn reschedule(db: &Database, event_id: &str, due_at_ms: u64) -> Result<(), StorageError> {
    let mut tx = db.begin(TxMode::ReadWrite).await?;
    tx.host_execute(
        "UPDATE mercato_scheduled SET attempts = attempts + 1, due_at_ms = $2 WHERE event_id = $1",
        &[
            SqlValue::Text(event_id.to_owned()),
            SqlValue::Integer(due_at_ms as i64),
        ],
    )
    .await?;
    tx.commit().await
}

/// When the earliest delayed event is due, if any.
pub async fn next_due(db: &Database) -> Result<Option<u64>, StorageError> {
    let rows = read(
        db,
        "SELECT MIN(due_at_ms) AS next_due FROM mercato_scheduled",
        &[],
    )
    .await?;
    Ok(match first_row(&rows) {
        Some(row) => row
            .opt_int("next_due")?
            .and_then(|ms| u64::try_from(ms).ok()),
        None => None,
    })
}

/// Keeps an event that failed its last attempt, consuming it from wherever it
/// was delivered from, in one transaction.
pub async fn dead_letter(
    db: &Database,
    event: &OutboxEvent,
    error: &str,
    attempts: u32,
    delivery: Delivery,
) -> Result<(), StorageError> {
    let mut tx = db.begin(TxMode::ReadWrite).await?;
    let mut params = event_params(event);
    params.extend([
        SqlValue::Text(error.to_owned()),
        SqlValue::Integer(attempts.into()),
        SqlValue::Text(crate::clock::now_rfc3339()),
    ]);
    tx.host_execute(
        &format!(
            "INSERT INTO mercato_dead_letters ({HELD_COLUMNS}, error, attempts, failed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (event_id) DO NOTHING"
        ),
        &params,
    )
    .await?;
    record_consumed(&mut tx, event, delivery).await?;
    tx.commit().await
}

/// The dead letters of `db`, oldest first, as events to deliver again.
pub async fn dead_letter_events(db: &Database) -> Result<Vec<OutboxEvent>, StorageError> {
    let rows = read(
        db,
        &format!(
            "SELECT {HELD_COLUMNS} FROM mercato_dead_letters ORDER BY failed_at, source, sequence"
        ),
        &[],
    )
    .await?;
    host_rows(&rows).map(held_event).collect()
}

/// Records another failed attempt of a redriven dead letter.
pub async fn note_failure(db: &Database, event_id: &str, error: &str) -> Result<(), StorageError> {
    let mut tx = db.begin(TxMode::ReadWrite).await?;
    tx.host_execute(
        "UPDATE mercato_dead_letters SET error = $1, attempts = attempts + 1, failed_at = $2 \
         WHERE event_id = $3",
        &[
            SqlValue::Text(error.to_owned()),
            SqlValue::Text(crate::clock::now_rfc3339()),
            SqlValue::Text(event_id.to_owned()),
        ],
    )
    .await?;
    tx.commit().await
}

/// Stamps `published_at` on events up to `up_to`; returns how many remain unpublished.
pub async fn mark_published(db: &Database, up_to: u64) -> Result<u64, StorageError> {
    let mut tx = db.begin(TxMode::ReadWrite).await?;
    tx.host_execute(
        "UPDATE outbox_events SET published_at = $1 WHERE published_at IS NULL AND sequence <= $2",
        &[
            SqlValue::Text(crate::clock::now_rfc3339()),
            SqlValue::Integer(up_to as i64),
        ],
    )
    .await?;
    let rows = tx.host_query(UNPUBLISHED, &[]).await?;
    tx.commit().await?;
    first_row(&rows).map_or(Ok(0), |row| row.uint("n"))
}

/// When the event at `sequence` was committed (RFC 3339), if the outbox
/// still holds it.
pub async fn committed_at(db: &Database, sequence: u64) -> Result<Option<String>, StorageError> {
    let rows = read(
        db,
        "SELECT created_at FROM outbox_events WHERE sequence = $1",
        &[SqlValue::Integer(
            i64::try_from(sequence).unwrap_or(i64::MAX),
        )],
    )
    .await?;
    first_row(&rows)
        .map(|row| row.text("created_at"))
        .transpose()
}

/// Unpublished events in the outbox of `db`.
pub async fn unpublished(db: &Database) -> Result<u64, StorageError> {
    let rows = read(db, UNPUBLISHED, &[]).await?;
    first_row(&rows).map_or(Ok(0), |row| row.uint("n"))
}

/// A dead letter as listed by the admin API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    /// The plugin that failed to handle it.
    pub subscriber: String,
    /// Event id.
    pub event_id: String,
    /// Source plugin.
    pub source: String,
    /// Source sequence.
    pub sequence: u64,
    /// Event type.
    pub event_type: String,
    /// Last error.
    pub error: String,
    /// Attempts made.
    pub attempts: u64,
    /// When it was dead-lettered.
    pub failed_at: String,
}

/// The dead letters kept in `db` of plugin `subscriber`, oldest first, for the admin API.
pub async fn list_dead_letters(
    db: &Database,
    subscriber: &str,
) -> Result<Vec<DeadLetter>, StorageError> {
    let rows = read(
        db,
        "SELECT event_id, source, sequence, event_type, error, attempts, failed_at \
         FROM mercato_dead_letters ORDER BY failed_at, source, sequence LIMIT 1000",
        &[],
    )
    .await?;
    host_rows(&rows)
        .map(|row| {
            Ok(DeadLetter {
                subscriber: subscriber.to_owned(),
                event_id: row.text("event_id")?,
                source: row.text("source")?,
                sequence: row.uint("sequence")?,
                event_type: row.text("event_type")?,
                error: row.text("error")?,
                attempts: row.uint("attempts")?,
                failed_at: row.text("failed_at")?,
            })
        })
        .collect()
}
