//! Embedded SQLite backend: one file per plugin, WAL, one writer connection and a
//! few readers.
//!
//! Statements run synchronously on the calling thread: a plugin call issues
//! several short statements and a hop to another thread per statement would
//! cost more than the statement itself. So that plugin SQL never stalls the
//! async runtime, a statement that runs past a millisecond hands the worker's
//! other tasks to another thread from inside the progress handler
//! (`leave_worker`) and finishes where it may block. Writers are serialised
//! by an async mutex (SQLite allows one writer anyway), so waiting for the
//! write lock never blocks a thread.
//!
//! Plugin SQL is contained on every connection:
//! - an authorizer: no ATTACH, no extensions, no PRAGMA, no transaction
//!   control, no writes to host tables, only the functions in [`FUNCTIONS`];
//!   guest calls get no DDL at all, migrations get DDL on the plugin's own tables;
//! - a progress handler that stops a statement once its call's deadline passed;
//! - `sqlite3_limit`s sized for a plugin (value length = the plugin's query
//!   budget, SQL length, expression depth, compound selects, trigger depth) and
//!   `SQLITE_DBCONFIG_DEFENSIVE`;
//! - one statement per storage call, and a cap on the bytes one query returns.
//!
//! Files: `conn.rs` (a contained connection: limits, deadline, leaving the
//! async worker), `policy.rs` (the authorizer: what plugin SQL may do),
//! `tx.rs` (a call's transaction and value conversion), this one (the
//! database: writer, readers, checkpoints, migrations).
mod checkpoint;
mod conn;
mod policy;
mod tx;

pub use checkpoint::RESTART_FRAMES;
pub use tx::SqliteTx;

use super::{AppliedMigration, CallBudget, MigrationStep, StorageError, TxMode};
use checkpoint::Checkpointer;
use conn::{DEFAULT_VALUE_BYTES, SqliteConn};
use policy::Actor;
use rusqlite::{Connection, ErrorCode};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedMutexGuard, Semaphore};
use tx::Handle;

const READERS: usize = 4;

/// A plugin's SQLite database.
pub struct SqliteDb {
    path: PathBuf,
    writer: Arc<tokio::sync::Mutex<SqliteConn>>,
    readers: Arc<Mutex<Vec<SqliteConn>>>,
    reader_slots: Arc<Semaphore>,
    checkpointer: Checkpointer,
}

impl SqliteDb {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Self::open_limited(path, DEFAULT_VALUE_BYTES)
    }

    /// Opens the database of a plugin whose statements may build values of at
    /// most `max_value_bytes` (its query budget).
    pub fn open_limited(path: &Path, max_value_bytes: usize) -> Result<Self, StorageError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StorageError::Setup(format!("creating {}: {e}", dir.display())))?;
        }
        let writer = SqliteConn::open(path, max_value_bytes)?;
        // Checkpoints run beside the writer (`Checkpointer`), never in a commit.
        writer.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let readers = (0..READERS)
            .map(|_| SqliteConn::open(path, max_value_bytes))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SqliteDb {
            path: path.to_owned(),
            checkpointer: Checkpointer::start(path)?,
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
            readers: Arc::new(Mutex::new(readers)),
            reader_slots: Arc::new(Semaphore::new(READERS)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) async fn prepare_host_tables(&self) -> Result<(), StorageError> {
        let writer = self.writer.lock().await;
        writer
            .conn
            .execute_batch(&super::schema::host_tables_ddl(super::BackendKind::Sqlite))?;
        // Columns the tables of an earlier build lack (SQLite has no
        // `ADD COLUMN IF NOT EXISTS`).
        for (table, column) in super::schema::ADDED_COLUMNS {
            let present: bool = writer.conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
                [table, column],
                |row| row.get(0),
            )?;
            if !present {
                writer
                    .conn
                    .execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} TEXT"))?;
            }
        }
        writer
            .conn
            .execute_batch(super::schema::AFTER_ADDED_COLUMNS)?;
        writer.conn.execute_batch(MIGRATIONS_TABLE)?;
        Ok(())
    }

    pub(super) async fn wipe(&self) -> Result<(), StorageError> {
        let mut writer = self.writer.lock().await;
        let tx = writer.conn.transaction()?;
        // Tables go in name order, parents perhaps before children: their
        // foreign keys are checked at commit, when all of them are gone.
        tx.execute_batch("PRAGMA defer_foreign_keys = ON")?;
        let objects: Vec<(String, String)> = tx
            .prepare(
                // Virtual tables first: dropping one drops its shadow tables.
                "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view') \
                 AND name NOT LIKE 'sqlite_%' \
                 ORDER BY CASE WHEN sql LIKE 'CREATE VIRTUAL%' THEN 0 ELSE 1 END, name",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (kind, name) in objects {
            if super::schema::is_host_table(&name) {
                continue;
            }
            let kind = if kind == "view" { "VIEW" } else { "TABLE" };
            tx.execute_batch(&format!(
                "DROP {kind} IF EXISTS \"{}\"",
                name.replace('"', "\"\"")
            ))?;
        }
        for table in super::schema::WIPED_WITH_PLUGIN_DATA {
            tx.execute_batch(&format!("DELETE FROM {table}"))?;
        }
        tx.commit()?;
        Ok(())
    }

    pub(super) async fn applied_migrations(&self) -> Result<Vec<AppliedMigration>, StorageError> {
        let writer = self.writer.lock().await;
        let mut stmt = writer
            .conn
            .prepare("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AppliedMigration {
                    version: r.get(0)?,
                    checksum: r.get(1)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Runs one migration statement by statement as plugin code (the
    /// migration actor of the authorizer, its own deadline), then records it,
    /// all in one transaction. On a blocking thread: a migration may run for
    /// seconds and must not stall the async runtime.
    pub(super) async fn apply_migration(&self, step: &MigrationStep) -> Result<(), StorageError> {
        let writer = self.writer.clone().lock_owned().await;
        let step = step.clone();
        tokio::task::spawn_blocking(move || apply_migration(&writer, &step))
            .await
            .map_err(|e| StorageError::Setup(format!("migration thread: {e}")))?
    }

    /// Restarts the WAL (`checkpoint`): holds off this database's readers,
    /// then checkpoints on a blocking thread with the writer in hand.
    async fn restart_wal(
        &self,
        writer: OwnedMutexGuard<SqliteConn>,
    ) -> OwnedMutexGuard<SqliteConn> {
        let all = READERS as u32;
        let readers = tokio::time::timeout(
            checkpoint::RESTART_WAIT,
            self.reader_slots.clone().acquire_many_owned(all),
        )
        .await;
        let Ok(Ok(_readers)) = readers else {
            tracing::debug!("WAL restart put off: a read is still running");
            return writer;
        };
        let restarted = tokio::task::spawn_blocking(move || {
            let done = checkpoint::restart(&writer.conn);
            (writer, done)
        })
        .await;
        match restarted {
            Ok((writer, done)) => {
                match done {
                    Ok(true) => {}
                    Ok(false) => tracing::debug!("WAL restart put off: another process reads"),
                    Err(e) => tracing::warn!(error = %e, "WAL restart failed"),
                }
                writer
            }
            // The checkpoint panicked, dropping the writer lock with it.
            Err(e) => {
                tracing::warn!(error = %e, "WAL restart failed");
                self.writer.clone().lock_owned().await
            }
        }
    }

    pub(super) async fn begin(
        &self,
        mode: TxMode,
        budget: Option<CallBudget>,
    ) -> Result<SqliteTx, StorageError> {
        let handle = match mode {
            TxMode::ReadWrite => {
                let writer = self.writer.clone().lock_owned().await;
                Handle::Writer(if self.checkpointer.take_restart() {
                    self.restart_wal(writer).await
                } else {
                    writer
                })
            }
            TxMode::ReadOnly => {
                let permit = self
                    .reader_slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| StorageError::Setup(e.to_string()))?;
                let conn = self
                    .readers
                    .lock()
                    .expect("reader pool poisoned")
                    .pop()
                    .expect("a permit guarantees a free reader");
                Handle::Reader {
                    conn: Some(conn),
                    pool: self.readers.clone(),
                    _permit: permit,
                }
            }
        };
        let begin = match mode {
            // IMMEDIATE takes the write lock now; a deferred upgrade could hit SQLITE_BUSY.
            TxMode::ReadWrite => "BEGIN IMMEDIATE",
            TxMode::ReadOnly => "BEGIN",
        };
        handle.conn().control(begin)?;
        Ok(SqliteTx {
            handle,
            mode,
            budget,
            deadline_hit: false,
            open: true,
        })
    }
}

/// sqlx's bookkeeping table, so databases migrated by earlier builds carry on.
const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (\
    version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
    checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)";

fn apply_migration(writer: &SqliteConn, step: &MigrationStep) -> Result<(), StorageError> {
    let started = Instant::now();
    writer.conn.execute_batch("BEGIN IMMEDIATE")?;
    // On a blocking thread already: no worker to leave.
    writer.enter(Actor::Migration, Some(started + step.deadline), None);
    let ran = run_statements(&writer.conn, &step.sql);
    let hit = writer.leave();
    let recorded = ran.map_err(|e| migration_error(e, hit, step.deadline)).and_then(|()| {
        writer
            .conn
            .execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (?1, ?2, TRUE, ?3, ?4)",
                rusqlite::params![
                    step.version,
                    step.description,
                    step.checksum,
                    i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX)
                ],
            )
            .map_err(StorageError::from)
    });
    match recorded {
        Ok(_) => {
            writer.conn.execute_batch("COMMIT")?;
            Ok(())
        }
        Err(e) => {
            if let Err(rollback) = writer.rollback() {
                tracing::warn!(error = %rollback, "rolling back a failed migration");
            }
            Err(e)
        }
    }
}

/// Prepares and runs each statement of `sql` in turn; each is judged by the
/// authorizer as it is prepared, before it runs.
fn run_statements(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    let mut batch = rusqlite::Batch::new(conn, sql);
    while let Some(mut stmt) = batch.next()? {
        let mut rows = stmt.raw_query();
        while rows.next()?.is_some() {}
    }
    Ok(())
}

fn migration_error(e: rusqlite::Error, deadline_hit: bool, deadline: Duration) -> StorageError {
    if deadline_hit {
        return StorageError::Refused(format!(
            "the migration ran longer than its {deadline:?} deadline and was stopped"
        ));
    }
    match &e {
        rusqlite::Error::SqliteFailure(f, msg)
            if f.code == ErrorCode::AuthorizationForStatementDenied =>
        {
            StorageError::Refused(format!(
                "{} (a migration may create and change only the plugin's own tables: no ATTACH, \
                 PRAGMA, transaction control, temp objects, host tables or functions outside the allow-list)",
                msg.clone().unwrap_or_else(|| f.to_string())
            ))
        }
        _ => StorageError::Sqlite(e),
    }
}
