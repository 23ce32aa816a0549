//! Embedded SQLite backend: one file per plugin, WAL, one writer connection and a
//! few readers.
//!
//! Statements run synchronously on the calling task: a plugin call issues several
//! short statements and a hop to a blocking thread per statement would cost more
//! than the statement itself. Writers are serialised by an async mutex (SQLite
//! allows one writer anyway), so waiting for the write lock never blocks a thread.
//!
//! Guest statements pass through an authorizer: no ATTACH, no extensions, no
//! PRAGMA, no DDL, no transaction control, and no writes to host tables.
use super::schema::is_host_table;
use super::{AppliedMigration, CallBudget, MAX_QUERY_ROWS, MigrationStep, StorageError, TxMode};
use crate::bindings::{GuestError, Rows, SqlValue};
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, limits::Limit};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

const READERS: usize = 4;

/// Who is running statements on a connection right now.
#[repr(u8)]
#[derive(Clone, Copy)]
enum Actor {
    Host = 0,
    Guest = 1,
    GuestReadOnly = 2,
}

struct SqliteConn {
    conn: Connection,
    actor: Arc<AtomicU8>,
}

impl SqliteConn {
    fn open(path: &Path) -> Result<Self, StorageError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Belt and braces beside the authorizer: this connection can attach nothing.
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0);
        conn.set_prepared_statement_cache_capacity(256);
        let actor = Arc::new(AtomicU8::new(Actor::Host as u8));
        let seen = actor.clone();
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            authorize(seen.load(Ordering::Relaxed), &ctx.action)
        }));
        Ok(SqliteConn { conn, actor })
    }

    fn set_actor(&self, actor: Actor) {
        self.actor.store(actor as u8, Ordering::Relaxed);
    }
}

fn authorize(actor: u8, action: &AuthAction<'_>) -> Authorization {
    if actor == Actor::Host as u8 {
        return Authorization::Allow;
    }
    let read_only = actor == Actor::GuestReadOnly as u8;
    match action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => {
            Authorization::Allow
        }
        AuthAction::Function { function_name } => {
            if function_name.eq_ignore_ascii_case("load_extension") {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        AuthAction::Insert { table_name }
        | AuthAction::Delete { table_name }
        | AuthAction::Update { table_name, .. } => {
            if read_only || is_host_table(table_name) {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        // ATTACH/DETACH, PRAGMA, DDL, transaction control, ANALYZE, virtual tables…
        _ => Authorization::Deny,
    }
}

/// A plugin's SQLite database.
pub struct SqliteDb {
    path: PathBuf,
    writer: Arc<tokio::sync::Mutex<SqliteConn>>,
    readers: Arc<Mutex<Vec<SqliteConn>>>,
    reader_slots: Arc<Semaphore>,
    _checkpointer: Checkpointer,
}

/// How often the background checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Runs WAL checkpoints on a thread of its own. SQLite's automatic
/// checkpoint runs inside whichever commit crosses 1,000 WAL pages, while that
/// commit holds the plugin's only write lock: one commit in a few hundred took
/// milliseconds and stalled every writer behind it (the relay's p99 in
/// docs/benchmarks.md). Passive checkpoints beside the writer never block it.
struct Checkpointer {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Self, StorageError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let name = format!(
            "mercato-ckpt-{}",
            path.file_stem().and_then(|s| s.to_str()).unwrap_or("db")
        );
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(CHECKPOINT_EVERY);
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "background WAL checkpoint failed");
                    }
                }
            })
            .map_err(|e| StorageError::Setup(format!("starting the WAL checkpointer: {e}")))?;
        Ok(Checkpointer { stop })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl SqliteDb {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StorageError::Setup(format!("creating {}: {e}", dir.display())))?;
        }
        let writer = SqliteConn::open(path)?;
        // Checkpoints run beside the writer (`Checkpointer`), never in a commit.
        writer.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let readers = (0..READERS)
            .map(|_| SqliteConn::open(path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SqliteDb {
            path: path.to_owned(),
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
            readers: Arc::new(Mutex::new(readers)),
            reader_slots: Arc::new(Semaphore::new(READERS)),
            _checkpointer: Checkpointer::start(path)?,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A sqlx URL for the same file (the migrator runs through sqlx).
    pub fn sqlx_url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    pub(super) async fn prepare_host_tables(&self) -> Result<(), StorageError> {
        let writer = self.writer.lock().await;
        writer
            .conn
            .execute_batch(&super::schema::host_tables_ddl(super::BackendKind::Sqlite))?;
        writer.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, \
             description TEXT NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
             success BOOLEAN NOT NULL, checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
        )?;
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

    pub(super) async fn apply_migration(&self, step: &MigrationStep) -> Result<(), StorageError> {
        let writer = self.writer.lock().await;
        let started = std::time::Instant::now();
        writer.conn.execute_batch("BEGIN IMMEDIATE")?;
        let applied = writer.conn.execute_batch(&step.sql).and_then(|()| {
            writer.conn.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (?1, ?2, TRUE, ?3, ?4)",
                rusqlite::params![
                    step.version,
                    step.description,
                    step.checksum,
                    started.elapsed().as_nanos() as i64
                ],
            )
        });
        match applied {
            Ok(_) => writer.conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = writer.conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
        }
        Ok(())
    }

    pub(super) async fn begin(
        &self,
        mode: TxMode,
        _budget: Option<CallBudget>,
    ) -> Result<SqliteTx, StorageError> {
        let handle = match mode {
            TxMode::ReadWrite => Handle::Writer(self.writer.clone().lock_owned().await),
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
        handle.conn().conn.execute_batch(begin)?;
        Ok(SqliteTx {
            handle,
            mode,
            open: true,
        })
    }
}

enum Handle {
    Writer(OwnedMutexGuard<SqliteConn>),
    Reader {
        conn: Option<SqliteConn>,
        pool: Arc<Mutex<Vec<SqliteConn>>>,
        _permit: OwnedSemaphorePermit,
    },
}

impl Handle {
    fn conn(&self) -> &SqliteConn {
        match self {
            Handle::Writer(guard) => guard,
            Handle::Reader { conn, .. } => conn.as_ref().expect("reader present until drop"),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Handle::Reader { conn, pool, .. } = self
            && let Some(conn) = conn.take()
        {
            pool.lock().expect("reader pool poisoned").push(conn);
        }
    }
}

/// An open SQLite transaction; rolls back on drop unless committed.
pub struct SqliteTx {
    handle: Handle,
    mode: TxMode,
    open: bool,
}

impl SqliteTx {
    fn guest_actor(&self) -> Actor {
        match self.mode {
            TxMode::ReadWrite => Actor::Guest,
            TxMode::ReadOnly => Actor::GuestReadOnly,
        }
    }

    pub(super) fn guest_execute(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<u64, GuestError> {
        let conn = self.handle.conn();
        conn.set_actor(self.guest_actor());
        // Guest and host statements share the statement cache, keyed by SQL text;
        // host SQL carries a secret tag (`host_sql`), so a guest can never name
        // a statement that was authorised for the host.
        let result = run_execute(conn, sql, params);
        conn.set_actor(Actor::Host);
        result.map_err(guest_error)
    }

    pub(super) fn guest_query(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Rows, GuestError> {
        let conn = self.handle.conn();
        conn.set_actor(self.guest_actor());
        let result = run_query(conn, sql, params);
        conn.set_actor(Actor::Host);
        result.map_err(guest_error)
    }

    pub(super) fn host_execute(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<u64, StorageError> {
        Ok(run_execute(self.handle.conn(), &host_sql(sql), params)?)
    }

    pub(super) fn host_query(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Rows, StorageError> {
        Ok(run_query(self.handle.conn(), &host_sql(sql), params)?)
    }

    pub(super) fn deadline_exceeded(&self) -> bool {
        false
    }

    pub(super) fn commit(mut self) -> Result<(), StorageError> {
        self.open = false;
        self.handle.conn().conn.execute_batch("COMMIT")?;
        Ok(())
    }

    pub(super) fn rollback(mut self) -> Result<(), StorageError> {
        self.open = false;
        self.handle.conn().conn.execute_batch("ROLLBACK")?;
        Ok(())
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.open {
            let conn = self.handle.conn();
            conn.set_actor(Actor::Host);
            if let Err(e) = conn.conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rollback of abandoned sqlite transaction failed");
            }
        }
    }
}

/// Host SQL as cached: prefixed with a comment holding a random per-process
/// token. The authorizer judges a statement once, when it is prepared, so a
/// cached statement must never be reachable from guest SQL; a guest cannot
/// know the token, so its text can never equal a host statement's cache key.
/// (Compiling host statements anew for each call was ≈ 5 % of the host's CPU
/// in write-heavy benchmarks.)
fn host_sql(sql: &str) -> String {
    static TAG: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut token = [0u8; 16];
        getrandom::fill(&mut token).expect("the OS random source is available");
        format!("/* mercato host {} */ ", hex::encode(token))
    });
    let mut tagged = String::with_capacity(TAG.len() + sql.len());
    tagged.push_str(&TAG);
    tagged.push_str(sql);
    tagged
}

fn prepare<'c>(
    conn: &'c SqliteConn,
    sql: &str,
    params: &[SqlValue],
) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
    let mut stmt = conn.conn.prepare_cached(sql)?;
    bind(&mut stmt, params)?;
    Ok(stmt)
}

/// Binds `$1..$n` by name: SQLite numbers `$N` parameters by first appearance,
/// which would misplace values when a statement uses `$2` before `$1`.
fn bind(stmt: &mut rusqlite::Statement<'_>, params: &[SqlValue]) -> rusqlite::Result<()> {
    let expected = stmt.parameter_count();
    let mut bound = 0;
    for (i, value) in params.iter().enumerate() {
        if let Some(index) = stmt.parameter_index(&format!("${}", i + 1))? {
            stmt.raw_bind_parameter(index, to_value(value))?;
            bound += 1;
        }
    }
    if bound != expected || bound != params.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            params.len(),
            expected,
        ));
    }
    Ok(())
}

fn run_execute(conn: &SqliteConn, sql: &str, params: &[SqlValue]) -> rusqlite::Result<u64> {
    let mut stmt = prepare(conn, sql, params)?;
    let mut rows = stmt.raw_query();
    while rows.next()?.is_some() {}
    drop(rows);
    Ok(conn.conn.changes())
}

fn run_query(conn: &SqliteConn, sql: &str, params: &[SqlValue]) -> rusqlite::Result<Rows> {
    let mut stmt = prepare(conn, sql, params)?;
    let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let width = columns.len();
    let mut out = Vec::new();
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next()? {
        if out.len() == MAX_QUERY_ROWS {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_TOOBIG),
                Some(format!(
                    "query returned more than {MAX_QUERY_ROWS} rows; add a LIMIT"
                )),
            ));
        }
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(from_value(row.get_ref(i)?));
        }
        out.push(values);
    }
    Ok(Rows { columns, rows: out })
}

fn to_value(v: &SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::Integer(*i),
        SqlValue::Real(r) => Value::Real(*r),
        SqlValue::Text(t) => Value::Text(t.clone()),
        SqlValue::Blob(b) => Value::Blob(b.clone()),
    }
}

fn from_value(v: ValueRef<'_>) -> SqlValue {
    match v {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) => SqlValue::Integer(i),
        ValueRef::Real(r) => SqlValue::Real(r),
        ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
    }
}

fn guest_error(e: rusqlite::Error) -> GuestError {
    match &e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let msg = msg.clone().unwrap_or_else(|| f.to_string());
            match f.code {
                ErrorCode::ConstraintViolation => GuestError::Conflict(msg),
                ErrorCode::AuthorizationForStatementDenied => GuestError::Denied(format!(
                    "{msg} (plugins may only read and write their own tables)"
                )),
                ErrorCode::TooBig => GuestError::Invalid(msg),
                _ => GuestError::Invalid(msg),
            }
        }
        _ => GuestError::Invalid(e.to_string()),
    }
}
