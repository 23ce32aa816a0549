//! The host table `mercato_outbound` in the plugin's own database: requests
//! queued by committed calls, their attempts, and the report of the latest
//! attempt until the plugin has taken it. All of its SQL is here.
use super::QueuedRequest;
use crate::bindings::SqlValue;
use crate::storage::{Database, HostRow, StorageError, Tx, TxMode, first_row, host_rows};

/// A queued request and where its delivery stands.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The request.
    pub request: QueuedRequest,
    /// Attempts made.
    pub attempts: u32,
    /// The report of attempt `attempts` the plugin has not taken yet.
    pub report: Option<Report>,
}

/// An attempt's report as stored until the plugin takes it.
#[derive(Debug, Clone)]
pub struct Report {
    /// The event id it is delivered under (the same on every redelivery).
    pub id: String,
    /// JSON payload.
    pub payload: String,
    /// When the attempt ended.
    pub at: String,
    /// Deliveries of the report that failed.
    pub failures: u32,
}

/// Where a request goes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for its next attempt.
    Pending,
    /// Answered 2xx.
    Delivered,
    /// Failed its last attempt.
    Dead,
}

impl State {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Delivered => "delivered",
            State::Dead => "dead",
        }
    }
}

const COLUMNS: &str =
    "key, method, url, headers, body, attempts, report_id, report, report_at, report_failures";

/// Writes the requests a call queued, in its transaction. A key queued
/// before is left as it is.
pub async fn queue(tx: &mut Tx, requests: &[QueuedRequest]) -> Result<(), StorageError> {
    if requests.is_empty() {
        return Ok(());
    }
    let now = crate::clock::now_rfc3339();
    let now_ms = crate::clock::now_millis() as i64;
    for r in requests {
        let headers = serde_json::to_string(&r.headers).expect("strings serialize");
        tx.host_execute(
            "INSERT INTO mercato_outbound (key, method, url, headers, body, created_at, state, attempts, due_at_ms, report_failures, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, 0, $6) ON CONFLICT (key) DO NOTHING",
            &[
                SqlValue::Text(r.key.clone()),
                SqlValue::Text(r.method.clone()),
                SqlValue::Text(r.url.clone()),
                SqlValue::Text(headers),
                SqlValue::Blob(r.body.clone()),
                SqlValue::Text(now.clone()),
                SqlValue::Integer(now_ms),
            ],
        )
        .await?;
    }
    Ok(())
}

fn pending(row: HostRow<'_>) -> Result<Pending, StorageError> {
    let headers: Vec<(String, String)> = serde_json::from_str(&row.text("headers")?)
        .map_err(|e| StorageError::Setup(format!("mercato_outbound.headers: {e}")))?;
    let report = match row.opt_text("report")? {
        Some(payload) => Some(Report {
            id: row.text("report_id")?,
            payload,
            at: row.text("report_at")?,
            failures: u32::try_from(row.uint("report_failures")?).unwrap_or(u32::MAX),
        }),
        None => None,
    };
    Ok(Pending {
        request: QueuedRequest {
            key: row.text("key")?,
            method: row.text("method")?,
            url: row.text("url")?,
            headers,
            body: row.bytes("body")?,
        },
        attempts: u32::try_from(row.uint("attempts")?).unwrap_or(u32::MAX),
        report,
    })
}

/// Requests due by `now_ms` that wait for an attempt or for their report to
/// be taken, earliest first.
pub async fn due(db: &Database, now_ms: u64, limit: usize) -> Result<Vec<Pending>, StorageError> {
    let mut tx = db.begin(TxMode::ReadOnly).await?;
    let rows = tx
        .host_query(
            &format!(
                "SELECT {COLUMNS} FROM mercato_outbound \
                 WHERE (state = 'pending' OR report IS NOT NULL) AND due_at_ms <= $1 \
                 ORDER BY due_at_ms, key LIMIT $2"
            ),
            &[
                SqlValue::Integer(now_ms as i64),
                SqlValue::Integer(limit as i64),
            ],
        )
        .await?;
    tx.rollback().await?;
    host_rows(&rows).map(pending).collect()
}

/// How many requests still wait for an attempt or a report, and when the
/// earliest is due.
pub async fn outstanding(db: &Database) -> Result<(u64, Option<u64>), StorageError> {
    let mut tx = db.begin(TxMode::ReadOnly).await?;
    let rows = tx
        .host_query(
            "SELECT COUNT(*) AS n, MIN(due_at_ms) AS next FROM mercato_outbound \
             WHERE state = 'pending' OR report IS NOT NULL",
            &[],
        )
        .await?;
    tx.rollback().await?;
    let row = first_row(&rows).ok_or_else(|| StorageError::Setup("no count".into()))?;
    Ok((
        row.uint("n")?,
        row.opt_int("next")?.and_then(|n| u64::try_from(n).ok()),
    ))
}

/// What an attempt changed.
pub struct Recorded<'a> {
    /// The request's key.
    pub key: &'a str,
    /// The attempt's number.
    pub attempt: u32,
    /// Where the request goes now.
    pub state: State,
    /// When the next attempt is due, once the report is taken.
    pub next_attempt_ms: u64,
    /// The answer's status.
    pub status: Option<u16>,
    /// Why it failed.
    pub error: Option<&'a str>,
    /// The report to deliver.
    pub report: &'a Report,
}

/// Records attempt `attempt` and its report, due at once; the next attempt
/// becomes due when the plugin has taken the report. False if another
/// attempt was recorded meanwhile (nothing changes then).
pub async fn record_attempt(db: &Database, r: &Recorded<'_>) -> Result<bool, StorageError> {
    let mut tx = db.begin(TxMode::ReadWrite).await?;
    let changed = tx
        .host_execute(
            "UPDATE mercato_outbound SET attempts = $1, state = $2, next_attempt_ms = $3, last_status = $4, \
             last_error = $5, report_id = $6, report = $7, report_at = $8, report_failures = 0, updated_at = $8, \
             due_at_ms = $11 WHERE key = $9 AND attempts = $10",
            &[
                SqlValue::Integer(r.attempt.into()),
                SqlValue::Text(r.state.as_str().into()),
                SqlValue::Integer(r.next_attempt_ms as i64),
                r.status
                    .map_or(SqlValue::Null, |s| SqlValue::Integer(s.into())),
                r.error
                    .map_or(SqlValue::Null, |e| SqlValue::Text(e.to_owned())),
                SqlValue::Text(r.report.id.clone()),
                SqlValue::Text(r.report.payload.clone()),
                SqlValue::Text(r.report.at.clone()),
                SqlValue::Text(r.key.to_owned()),
                SqlValue::Integer(i64::from(r.attempt) - 1),
                SqlValue::Integer(crate::clock::now_millis() as i64),
            ],
        )
        .await?;
    tx.commit().await?;
    Ok(changed > 0)
}

/// Puts off a report the plugin failed to take until `due_at_ms`.
pub async fn report_failed(db: &Database, key: &str, due_at_ms: u64) -> Result<(), StorageError> {
    let mut tx = db.begin(TxMode::ReadWrite).await?;
    tx.host_execute(
        "UPDATE mercato_outbound SET report_failures = report_failures + 1, due_at_ms = $1 WHERE key = $2",
        &[
            SqlValue::Integer(due_at_ms as i64),
            SqlValue::Text(key.to_owned()),
        ],
    )
    .await?;
    tx.commit().await
}

/// Whether the report of attempt `attempt` of `key` is still to be taken, in `tx`.
pub async fn report_waiting(tx: &mut Tx, key: &str, attempt: u64) -> Result<bool, StorageError> {
    let rows = tx
        .host_query(
            "SELECT key FROM mercato_outbound WHERE key = $1 AND attempts = $2 AND report IS NOT NULL",
            &[
                SqlValue::Text(key.to_owned()),
                SqlValue::Integer(attempt as i64),
            ],
        )
        .await?;
    Ok(!rows.rows.is_empty())
}

/// Marks the report of attempt `attempt` of `key` taken, in the plugin's
/// transaction; false if it had been taken already.
pub async fn take_report(tx: &mut Tx, key: &str, attempt: u64) -> Result<bool, StorageError> {
    let changed = tx
        .host_execute(
            "UPDATE mercato_outbound SET report = NULL, due_at_ms = next_attempt_ms \
             WHERE key = $1 AND attempts = $2 AND report IS NOT NULL",
            &[
                SqlValue::Text(key.to_owned()),
                SqlValue::Integer(attempt as i64),
            ],
        )
        .await?;
    Ok(changed > 0)
}

/// One request as the admin API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    /// Key.
    pub key: String,
    /// Method.
    pub method: String,
    /// URL.
    pub url: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    /// Attempts made.
    pub attempts: u64,
    /// The last answer's status.
    pub last_status: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Queued at.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// The newest `limit` requests, optionally in one state.
pub async fn list(
    db: &Database,
    state: Option<&str>,
    limit: usize,
) -> Result<Vec<Listed>, StorageError> {
    let mut tx = db.begin(TxMode::ReadOnly).await?;
    let rows = tx
        .host_query(
            "SELECT key, method, url, state, attempts, last_status, last_error, created_at, updated_at \
             FROM mercato_outbound WHERE ($1 IS NULL OR state = $1) ORDER BY created_at DESC, key LIMIT $2",
            &[
                state.map_or(SqlValue::Null, |s| SqlValue::Text(s.to_owned())),
                SqlValue::Integer(limit as i64),
            ],
        )
        .await?;
    tx.rollback().await?;
    host_rows(&rows)
        .map(|row| {
            Ok(Listed {
                key: row.text("key")?,
                method: row.text("method")?,
                url: row.text("url")?,
                state: row.text("state")?,
                attempts: row.uint("attempts")?,
                last_status: row.opt_int("last_status")?,
                last_error: row.opt_text("last_error")?,
                created_at: row.text("created_at")?,
                updated_at: row.text("updated_at")?,
            })
        })
        .collect()
}
