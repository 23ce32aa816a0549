//! Storage: one database per plugin, reached only inside a call's transaction.
//!
//! Two backends sit side by side: embedded SQLite (`sqlite/`, the default; one
//! file per plugin, driven by rusqlite on the calling task so a call's statements
//! pay no thread hop) and PostgreSQL (`postgres/`, sqlx; a schema and a login
//! role per plugin). `guest.rs` implements the guest-facing `storage` interface
//! and holds a call's transaction; `open.rs` picks the backend from the
//! configuration; `schema.rs` owns the host tables every plugin database carries.
mod guest;
mod open;
pub mod postgres;
mod rows;
pub mod schema;
pub mod sqlite;

pub use guest::StorageCall;
pub use open::StorageConfig;
pub use rows::{HostRow, first_row, host_rows};

use crate::bindings::{GuestError, Rows, SqlValue};
use std::sync::Arc;
use std::time::Instant;

/// Largest result a guest query may return; bigger results are refused rather
/// than buffered into host memory.
pub const MAX_QUERY_ROWS: usize = 10_000;

/// Which backend a plugin's database uses (`backend = "sqlite"` or
/// `"postgres"` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Embedded SQLite file.
    #[default]
    Sqlite,
    /// PostgreSQL schema + role.
    Postgres,
}

impl BackendKind {
    /// The suffix selecting backend-specific migrations (`0001_x.sqlite.sql`).
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Postgres => "postgres",
        }
    }
}

/// Storage failures seen by the host (guests see [`GuestError`]).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// SQLite refused or failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused or failed.
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    /// The database could not be opened or prepared.
    #[error("{0}")]
    Setup(String),
    /// A guest statement failed earlier in the transaction, so it was rolled back.
    #[error("transaction aborted by a failed statement: {0}")]
    Aborted(String),
    /// The sandbox refused a statement of plugin code (a migration).
    #[error("{0}")]
    Refused(String),
    /// In a cluster: another host took over the leased work this
    /// transaction belonged to, so it must not commit (`cluster::fence`).
    #[error("lease `{0}` was taken over by another host: this host's commit is refused")]
    Fenced(String),
}

/// What one guest call may make the database spend: enforced by the backend on
/// every guest statement, so the SQL a plugin runs obeys the same limits as its
/// code.
#[derive(Debug, Clone, Copy)]
pub struct CallBudget {
    /// The call's deadline: a statement still running then is stopped.
    pub deadline: Instant,
    /// Largest result, in bytes, one query may return to the guest.
    pub max_query_bytes: usize,
}

/// A migration about to be applied (the bookkeeping is sqlx-compatible:
/// `_sqlx_migrations` with a SHA-384 checksum of the SQL text).
#[derive(Debug, Clone)]
pub struct MigrationStep {
    /// Version from the file name.
    pub version: i64,
    /// Description from the file name.
    pub description: String,
    /// The file name, for messages.
    pub file: String,
    /// The SQL text: plugin code, run statement by statement in the sandbox.
    pub sql: String,
    /// SHA-384 of `sql`.
    pub checksum: Vec<u8>,
    /// How long the migration may run before it is stopped (and rolled back).
    pub deadline: std::time::Duration,
}

/// A migration recorded as applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Its version.
    pub version: i64,
    /// SHA-384 of the SQL that was applied.
    pub checksum: Vec<u8>,
}

/// How a transaction may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxMode {
    /// Guest may read and write its own tables.
    ReadWrite,
    /// Guest may only read (GET requests).
    ReadOnly,
}

/// A plugin's database.
#[derive(Clone)]
pub enum Database {
    /// Embedded SQLite.
    Sqlite(Arc<sqlite::SqliteDb>),
    /// PostgreSQL.
    Postgres(Arc<postgres::PgDb>),
}

impl Database {
    /// The backend in use.
    pub fn kind(&self) -> BackendKind {
        match self {
            Database::Sqlite(_) => BackendKind::Sqlite,
            Database::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// Starts a transaction for host work. Write transactions on SQLite wait
    /// for the single writer.
    pub async fn begin(&self, mode: TxMode) -> Result<Tx, StorageError> {
        self.open_tx(mode, None).await
    }

    /// Starts the transaction of a guest call: its statements obey `budget`.
    pub async fn begin_call(&self, mode: TxMode, budget: CallBudget) -> Result<Tx, StorageError> {
        self.open_tx(mode, Some(budget)).await
    }

    /// Runs one read-only host statement on its own snapshot: on PostgreSQL
    /// a lone statement (one round trip), on SQLite a read transaction.
    pub async fn read_once(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StorageError> {
        match self {
            Database::Sqlite(db) => {
                let mut tx = db.begin(TxMode::ReadOnly, None).await?;
                let rows = tx.host_query(sql, params);
                tx.rollback()?;
                rows
            }
            Database::Postgres(db) => db.read_once(sql, params).await,
        }
    }

    /// Numbers up to `limit` staged events into the outbox in a transaction of
    /// its own and returns the new head, or `None` when none was waiting
    /// (always on SQLite, which numbers events as they are written).
    pub async fn number_staged(&self, limit: i64) -> Result<Option<u64>, StorageError> {
        let Database::Postgres(db) = self else {
            return Ok(None);
        };
        let mut tx = db.begin(TxMode::ReadWrite, None).await?;
        let head = tx.number_staged(limit).await?;
        tx.commit().await?;
        Ok(head)
    }

    async fn open_tx(&self, mode: TxMode, budget: Option<CallBudget>) -> Result<Tx, StorageError> {
        match self {
            Database::Sqlite(db) => Ok(Tx::new(TxInner::Sqlite(db.begin(mode, budget).await?))),
            Database::Postgres(db) => Ok(Tx::new(TxInner::Postgres(db.begin(mode, budget).await?))),
        }
    }

    /// Creates the host tables (idempotent).
    pub async fn prepare_host_tables(&self) -> Result<(), StorageError> {
        match self {
            Database::Sqlite(db) => db.prepare_host_tables().await,
            Database::Postgres(db) => db.prepare_host_tables().await,
        }
    }

    /// The migrations recorded as applied, by version.
    pub async fn applied_migrations(&self) -> Result<Vec<AppliedMigration>, StorageError> {
        match self {
            Database::Sqlite(db) => db.applied_migrations().await,
            Database::Postgres(db) => db.applied_migrations().await,
        }
    }

    /// Applies one migration and records it, in one transaction, under the
    /// sandbox's rules for plugin code (a refused statement changes nothing).
    pub async fn apply_migration(&self, step: &MigrationStep) -> Result<(), StorageError> {
        match self {
            Database::Sqlite(db) => db.apply_migration(step).await,
            Database::Postgres(db) => db.apply_migration(step).await,
        }
    }

    /// Empties the plugin's own part of the database, in one transaction:
    /// every object its migrations made is dropped, and with them the record
    /// of those migrations, stored responses, delayed and dead events. The
    /// outbox, the cursors and queued outbound requests stay: events already
    /// emitted still reach subscribers, and the plugin goes on consuming
    /// where it was. Migrations must run again afterwards.
    pub async fn wipe(&self) -> Result<(), StorageError> {
        match self {
            Database::Sqlite(db) => db.wipe().await,
            Database::Postgres(db) => db.wipe().await,
        }
    }
}

/// One open transaction. Dropping it without [`Tx::commit`] rolls back.
///
/// A failed guest statement aborts the transaction on every backend (PostgreSQL
/// does so natively; SQLite is made to match), so a plugin tested on one backend
/// behaves the same on the other: later statements fail and commit is refused.
pub struct Tx {
    inner: TxInner,
    failed: Option<String>,
}

/// A call's events as the columns of the staging table, in the call's order.
#[derive(Debug, Default)]
pub struct StagedEvents {
    /// Event ids.
    pub ids: Vec<String>,
    /// Aggregate ids.
    pub aggregate_ids: Vec<String>,
    /// Types without source prefix.
    pub event_types: Vec<String>,
    /// JSON payloads.
    pub payloads: Vec<String>,
    /// Commit times, RFC 3339.
    pub created_at: Vec<String>,
    /// Requested delays.
    pub delays_ms: Vec<Option<i64>>,
    /// The emitting call's `traceparent`.
    pub traceparents: Vec<Option<String>>,
    /// Correlation ids (`outbox::correlation_id`).
    pub correlation_ids: Vec<Option<String>>,
}

enum TxInner {
    Sqlite(sqlite::SqliteTx),
    Postgres(postgres::PgTx),
}

impl Tx {
    fn new(inner: TxInner) -> Self {
        Tx {
            inner,
            failed: None,
        }
    }

    fn check_open(&self) -> Result<(), GuestError> {
        match &self.failed {
            Some(first) => Err(GuestError::Internal(format!(
                "transaction aborted by an earlier failed statement: {first}"
            ))),
            None => Ok(()),
        }
    }

    fn record<T>(&mut self, result: Result<T, GuestError>) -> Result<T, GuestError> {
        if let Err(e) = &result {
            self.failed = Some(guest_error_message(e));
        }
        result
    }

    /// Runs a guest statement under the guest's restrictions.
    pub async fn guest_execute(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<u64, GuestError> {
        self.check_open()?;
        let result = match &mut self.inner {
            TxInner::Sqlite(tx) => tx.guest_execute(sql, params),
            TxInner::Postgres(tx) => tx.guest_execute(sql, params).await,
        };
        self.record(result)
    }

    /// Runs a guest query under the guest's restrictions.
    pub async fn guest_query(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Rows, GuestError> {
        self.check_open()?;
        let result = match &mut self.inner {
            TxInner::Sqlite(tx) => tx.guest_query(sql, params),
            TxInner::Postgres(tx) => tx.guest_query(sql, params).await,
        };
        self.record(result)
    }

    /// Runs a host statement (host tables, no guest restrictions).
    pub async fn host_execute(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<u64, StorageError> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => tx.host_execute(sql, params),
            TxInner::Postgres(tx) => tx.host_execute(sql, params).await,
        }
    }

    /// Runs a host query.
    pub async fn host_query(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Rows, StorageError> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => tx.host_query(sql, params),
            TxInner::Postgres(tx) => tx.host_query(sql, params).await,
        }
    }

    /// The last outbox sequence used, for numbering events in the writing
    /// transaction: SQLite only, where the single writer makes sequence
    /// numbers visible in order anyway. PostgreSQL stages events instead
    /// ([`Tx::stage_events`]).
    pub async fn last_sequence(&mut self) -> Result<i64, StorageError> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => {
                let rows = tx.host_query(
                    "SELECT COALESCE(MAX(sequence), 0) AS head FROM outbox_events",
                    &[],
                )?;
                Ok(cell(&rows, 0, "head").as_i64())
            }
            TxInner::Postgres(_) => Err(StorageError::Setup(
                "PostgreSQL outboxes are numbered after commit; stage the events".into(),
            )),
        }
    }

    /// True when this backend numbers outbox events after commit: the call
    /// stages them ([`Tx::stage_events`]) and [`Database::number_staged`]
    /// moves them into the outbox. Concurrent writers of one outbox then never
    /// wait for each other's commit.
    pub fn stages_outbox(&self) -> bool {
        matches!(self.inner, TxInner::Postgres(_))
    }

    /// Stages a call's events for numbering after commit (PostgreSQL).
    pub async fn stage_events(&mut self, events: &StagedEvents) -> Result<(), StorageError> {
        match &mut self.inner {
            TxInner::Postgres(tx) => tx.stage_events(events).await,
            TxInner::Sqlite(_) => Err(StorageError::Setup(
                "SQLite outboxes are numbered in the writing transaction".into(),
            )),
        }
    }

    /// Moves the call's deadline to when the sandbox actually started it (a call
    /// may wait for an instance slot after its transaction began).
    pub fn start_deadline(&mut self, deadline: Instant) {
        if let TxInner::Sqlite(tx) = &mut self.inner {
            tx.start_deadline(deadline);
        }
    }

    /// True when a guest statement was stopped because the call's deadline
    /// passed: the call is a timeout, whatever the guest did next.
    pub fn deadline_exceeded(&self) -> bool {
        match &self.inner {
            TxInner::Sqlite(tx) => tx.deadline_exceeded(),
            TxInner::Postgres(tx) => tx.deadline_exceeded(),
        }
    }

    /// Rolls back a transaction whose call timed out, stopping a statement that
    /// may still be running in the database.
    pub async fn rollback_after_timeout(self) -> Result<(), StorageError> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.rollback(),
            TxInner::Postgres(tx) => tx.rollback_after_timeout().await,
        }
    }

    /// Commits, unless a guest statement failed: then rolls back and says why.
    pub async fn commit(self) -> Result<(), StorageError> {
        if let Some(first) = self.failed.clone() {
            self.rollback().await?;
            return Err(StorageError::Aborted(first));
        }
        match self.inner {
            TxInner::Sqlite(tx) => tx.commit(),
            TxInner::Postgres(tx) => tx.commit().await,
        }
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<(), StorageError> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.rollback(),
            TxInner::Postgres(tx) => tx.rollback().await,
        }
    }
}

fn guest_error_message(e: &GuestError) -> String {
    match e {
        GuestError::Invalid(m)
        | GuestError::NotFound(m)
        | GuestError::Conflict(m)
        | GuestError::Denied(m)
        | GuestError::Internal(m) => m.clone(),
    }
}

/// Reads column `name` of row `i` (host queries, known shapes).
pub fn cell<'a>(rows: &'a Rows, i: usize, name: &str) -> &'a SqlValue {
    let col = rows
        .columns
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("host query has no column {name}"));
    &rows.rows[i][col]
}

/// `SqlValue` accessors for host code.
pub trait SqlValueExt {
    /// Integer or 0 (NULL).
    fn as_i64(&self) -> i64;
    /// Text or empty (NULL).
    fn as_text(&self) -> String;
    /// Text, or `None` for NULL.
    fn as_opt_text(&self) -> Option<String>;
}

impl SqlValueExt for SqlValue {
    fn as_i64(&self) -> i64 {
        match self {
            SqlValue::Integer(i) => *i,
            SqlValue::Text(t) => t.parse().unwrap_or(0),
            _ => 0,
        }
    }
    fn as_text(&self) -> String {
        self.as_opt_text().unwrap_or_default()
    }
    fn as_opt_text(&self) -> Option<String> {
        match self {
            SqlValue::Text(t) => Some(t.clone()),
            SqlValue::Integer(i) => Some(i.to_string()),
            SqlValue::Blob(b) => Some(String::from_utf8_lossy(b).into_owned()),
            SqlValue::Real(r) => Some(r.to_string()),
            SqlValue::Null => None,
        }
    }
}
