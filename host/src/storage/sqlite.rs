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
use super::schema::is_host_table;
use super::{AppliedMigration, CallBudget, MAX_QUERY_ROWS, MigrationStep, StorageError, TxMode};
use crate::bindings::{GuestError, Rows, SqlValue};
use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, limits::Limit};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

const READERS: usize = 4;

/// VM instructions between deadline checks: a check is one clock read, and a
/// thousand instructions take microseconds, so a runaway statement stops
/// within microseconds of its deadline at no measurable cost.
const PROGRESS_EVERY: i32 = 1_000;

/// How long a plugin statement may run on an async worker before the worker's
/// other tasks are handed to another thread (`leave_worker`).
const INLINE_BUDGET: Duration = Duration::from_millis(1);

/// How long `leave_worker` gives the thread that takes over the worker to
/// start. The statement's own thread sleeps meanwhile, so the newcomer has a
/// free core; starting one takes tens of microseconds.
const HANDOFF_WAIT: Duration = Duration::from_micros(500);

/// Called from the progress handler of a statement that has run past
/// [`INLINE_BUDGET`]: hands this async worker's other tasks (and its place in
/// the scheduler) to another thread, so that the statement, which goes on
/// here, can take as long as its deadline allows without stalling `/healthz`
/// or other plugins. `block_in_place` starts the other worker; once it has
/// taken over, this thread carries on without a worker of its own until the
/// call next awaits. Off a multi-threaded runtime (a blocking thread, a
/// single-threaded test runtime) there is nothing to hand over.
///
/// Doing this only for statements that run long matters: handing over before
/// every write cost the saga a quarter of its throughput (docs/benchmarks.md).
fn leave_worker() {
    if let Ok(handle) = tokio::runtime::Handle::try_current()
        && handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
    {
        tokio::task::block_in_place(|| std::thread::sleep(HANDOFF_WAIT));
    }
}

/// Default largest value (string or blob) a statement may build, when the
/// plugin's limits are not known (tests, tools).
const DEFAULT_VALUE_BYTES: usize = 8 << 20;

/// Functions plugin SQL may call: SQLite's core scalar, aggregate, window,
/// date/time, math and JSON functions, and FTS5's auxiliary functions. Not
/// `load_extension`, `fts3_tokenizer` (a pointer-taking backdoor), nor the
/// introspection helpers.
const FUNCTIONS: &[&str] = &[
    "abs",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "avg",
    "bm25",
    "ceil",
    "ceiling",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "cos",
    "cosh",
    "count",
    "cume_dist",
    "date",
    "datetime",
    "degrees",
    "dense_rank",
    "exp",
    "first_value",
    "floor",
    "format",
    "glob",
    "group_concat",
    "hex",
    "highlight",
    "ifnull",
    "iif",
    "instr",
    "json",
    "json_array",
    "json_array_length",
    "json_each",
    "json_error_position",
    "json_extract",
    "json_group_array",
    "json_group_object",
    "json_insert",
    "json_object",
    "json_patch",
    "json_quote",
    "json_remove",
    "json_replace",
    "json_set",
    "json_tree",
    "json_type",
    "json_valid",
    "jsonb",
    "jsonb_array",
    "jsonb_extract",
    "jsonb_group_array",
    "jsonb_group_object",
    "jsonb_insert",
    "jsonb_object",
    "jsonb_patch",
    "jsonb_remove",
    "jsonb_replace",
    "jsonb_set",
    "julianday",
    "lag",
    "last_insert_rowid",
    "last_value",
    "lead",
    "length",
    "like",
    "likelihood",
    "likely",
    "ln",
    "log",
    "log10",
    "log2",
    "lower",
    "ltrim",
    "max",
    "min",
    "mod",
    "nth_value",
    "ntile",
    "nullif",
    "octet_length",
    "percent_rank",
    "pi",
    "pow",
    "power",
    "printf",
    "quote",
    "radians",
    "random",
    "randomblob",
    "rank",
    "replace",
    "round",
    "row_number",
    "rtrim",
    "sign",
    "sin",
    "sinh",
    "snippet",
    "sqrt",
    "strftime",
    "string_agg",
    "substr",
    "substring",
    "sum",
    "tan",
    "tanh",
    "time",
    "timediff",
    "total",
    "trim",
    "trunc",
    "typeof",
    "unhex",
    "unicode",
    "unistr",
    "unistr_quote",
    "unixepoch",
    "unlikely",
    "upper",
    "zeroblob",
];

/// SQLite's own helpers that `ALTER TABLE … RENAME`/`DROP COLUMN` run; SQLite
/// itself refuses them when called from SQL text, so only DDL reaches them.
const ALTER_FUNCTIONS: &[&str] = &[
    "sqlite_drop_column",
    "sqlite_rename_column",
    "sqlite_rename_quotefix",
    "sqlite_rename_table",
    "sqlite_rename_test",
];

/// Virtual-table modules a migration may create (full-text search).
const VTAB_MODULES: &[&str] = &["fts5"];

/// Who is running statements on a connection right now.
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq)]
enum Actor {
    Host = 0,
    Guest = 1,
    GuestReadOnly = 2,
    Migration = 3,
}

/// What the connection's callbacks consult: who is acting, and until when.
struct Guard {
    actor: AtomicU8,
    /// Nanoseconds after [`EPOCH`] at which running statements are stopped; 0: never.
    deadline_ns: AtomicU64,
    /// Set when the progress handler stopped a statement for the deadline.
    deadline_hit: AtomicBool,
    /// Nanoseconds after [`EPOCH`] at which a running statement leaves the
    /// async worker (`leave_worker`); 0: never, or done already.
    offload_ns: AtomicU64,
}

/// A fixed origin for deadlines stored in atomics.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn since_epoch(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*EPOCH).as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

struct SqliteConn {
    conn: Connection,
    guard: Arc<Guard>,
}

impl SqliteConn {
    fn open(path: &Path, max_value_bytes: usize) -> Result<Self, StorageError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // What one statement may build, sized so that no statement can make
        // the host allocate more than the plugin's query budget for one value.
        let value_bytes = i32::try_from(max_value_bytes)
            .unwrap_or(i32::MAX)
            .max(1 << 20);
        for (limit, value) in [
            (Limit::SQLITE_LIMIT_LENGTH, value_bytes),
            (Limit::SQLITE_LIMIT_SQL_LENGTH, 1 << 20),
            (Limit::SQLITE_LIMIT_EXPR_DEPTH, 256),
            (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 64),
            (Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1_000),
            (Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 32),
            (Limit::SQLITE_LIMIT_WORKER_THREADS, 0),
            // Belt and braces beside the authorizer: this connection can attach nothing.
            (Limit::SQLITE_LIMIT_ATTACHED, 0),
        ] {
            conn.set_limit(limit, value);
        }
        // No SQL may corrupt the file (writable_schema, sqlite_dbpage…), and
        // functions reached through the schema (views, triggers) must be safe ones.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
        conn.set_prepared_statement_cache_capacity(256);
        let guard = Arc::new(Guard {
            actor: AtomicU8::new(Actor::Host as u8),
            deadline_ns: AtomicU64::new(0),
            deadline_hit: AtomicBool::new(false),
            offload_ns: AtomicU64::new(0),
        });
        let seen = guard.clone();
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            authorize(seen.actor.load(Ordering::Relaxed), &ctx)
        }));
        let timed = guard.clone();
        conn.progress_handler(
            PROGRESS_EVERY,
            Some(move || {
                let now = since_epoch(Instant::now());
                let deadline = timed.deadline_ns.load(Ordering::Relaxed);
                if deadline != 0 && now >= deadline {
                    timed.deadline_hit.store(true, Ordering::Relaxed);
                    return true;
                }
                let offload = timed.offload_ns.load(Ordering::Relaxed);
                if offload != 0 && now >= offload {
                    timed.offload_ns.store(0, Ordering::Relaxed);
                    leave_worker();
                }
                false
            }),
        );
        Ok(SqliteConn { conn, guard })
    }

    /// Hands the connection to plugin code until [`SqliteConn::leave`]: its
    /// statements stop at `deadline`, and leave the async worker if they are
    /// still running at `offload`.
    fn enter(&self, actor: Actor, deadline: Option<Instant>, offload: Option<Instant>) {
        self.guard.deadline_hit.store(false, Ordering::Relaxed);
        self.guard
            .deadline_ns
            .store(deadline.map_or(0, since_epoch), Ordering::Relaxed);
        self.guard
            .offload_ns
            .store(offload.map_or(0, since_epoch), Ordering::Relaxed);
        self.guard.actor.store(actor as u8, Ordering::Relaxed);
    }

    /// Back to the host; true when a statement was stopped at the deadline.
    fn leave(&self) -> bool {
        self.guard.actor.store(Actor::Host as u8, Ordering::Relaxed);
        self.guard.deadline_ns.store(0, Ordering::Relaxed);
        self.guard.offload_ns.store(0, Ordering::Relaxed);
        self.guard.deadline_hit.swap(false, Ordering::Relaxed)
    }

    /// Rolls back whatever transaction is open (an interrupted write statement
    /// already rolled it back inside SQLite).
    fn rollback(&self) -> rusqlite::Result<()> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn.execute_batch("ROLLBACK")
    }
}

fn authorize(actor: u8, ctx: &AuthContext<'_>) -> Authorization {
    if actor == Actor::Host as u8 {
        return Authorization::Allow;
    }
    let verdict = judge(actor, ctx);
    if verdict == Authorization::Deny {
        tracing::debug!(action = ?ctx.action, database = ?ctx.database_name, "plugin SQL refused by the authorizer");
    }
    verdict
}

fn judge(actor: u8, ctx: &AuthContext<'_>) -> Authorization {
    let allow = |yes: bool| {
        if yes {
            Authorization::Allow
        } else {
            Authorization::Deny
        }
    };
    let read_only = actor == Actor::GuestReadOnly as u8;
    let migration = actor == Actor::Migration as u8;
    // Only the plugin's own database, never `temp` (a temp table or trigger
    // would outlive the call on this pooled connection).
    let own = ctx.database_name.is_none_or(|db| db == "main");
    match ctx.action {
        AuthAction::Select | AuthAction::Recursive => Authorization::Allow,
        AuthAction::Read { .. } => Authorization::Allow,
        AuthAction::Function { function_name } => allow(
            FUNCTIONS
                .binary_search_by(|f| cmp_ignore_case(f, function_name))
                .is_ok()
                || (migration && ALTER_FUNCTIONS.contains(&function_name)),
        ),
        // DDL also writes the schema tables (ALTER TABLE … RENAME fixes up
        // `temp`'s too); DEFENSIVE keeps direct writes out.
        AuthAction::Insert { table_name }
        | AuthAction::Delete { table_name }
        | AuthAction::Update { table_name, .. }
            if migration && is_schema_table(table_name) =>
        {
            Authorization::Allow
        }
        AuthAction::Insert { table_name }
        | AuthAction::Delete { table_name }
        | AuthAction::Update { table_name, .. } => {
            allow(own && !read_only && !is_host_table(table_name))
        }
        AuthAction::CreateTable { table_name }
        | AuthAction::DropTable { table_name }
        | AuthAction::CreateIndex { table_name, .. }
        | AuthAction::DropIndex { table_name, .. }
        | AuthAction::CreateTrigger { table_name, .. }
        | AuthAction::DropTrigger { table_name, .. }
        | AuthAction::AlterTable { table_name, .. }
        | AuthAction::Analyze { table_name } => {
            allow(migration && own && !is_host_table(table_name))
        }
        AuthAction::CreateView { view_name } | AuthAction::DropView { view_name } => {
            allow(migration && own && !is_host_table(view_name))
        }
        AuthAction::Reindex { .. } => allow(migration && own),
        AuthAction::CreateVtable {
            table_name,
            module_name,
        }
        | AuthAction::DropVtable {
            table_name,
            module_name,
        } => allow(
            migration && own && !is_host_table(table_name) && VTAB_MODULES.contains(&module_name),
        ),
        // ATTACH/DETACH, PRAGMA, transaction control and savepoints, temp
        // objects, anything SQLite adds later.
        _ => Authorization::Deny,
    }
}

fn cmp_ignore_case(a: &str, b: &str) -> std::cmp::Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

fn is_schema_table(name: &str) -> bool {
    [
        "sqlite_master",
        "sqlite_schema",
        "sqlite_temp_master",
        "sqlite_temp_schema",
    ]
    .iter()
    .any(|t| t.eq_ignore_ascii_case(name))
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

    pub(super) async fn prepare_host_tables(&self) -> Result<(), StorageError> {
        let writer = self.writer.lock().await;
        writer
            .conn
            .execute_batch(&super::schema::host_tables_ddl(super::BackendKind::Sqlite))?;
        writer.conn.execute_batch(MIGRATIONS_TABLE)?;
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

    pub(super) async fn begin(
        &self,
        mode: TxMode,
        budget: Option<CallBudget>,
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
    budget: Option<CallBudget>,
    deadline_hit: bool,
    open: bool,
}

impl SqliteTx {
    fn guest_actor(&self) -> Actor {
        match self.mode {
            TxMode::ReadWrite => Actor::Guest,
            TxMode::ReadOnly => Actor::GuestReadOnly,
        }
    }

    /// Runs `f` on the connection as the guest, under the call's deadline.
    ///
    /// A statement that runs long must never hold an async worker (every
    /// other plugin and `/healthz` need them), yet handing each statement to
    /// another thread costs more than the statement. So it starts here, and
    /// if it is still running after [`INLINE_BUDGET`] the progress handler
    /// moves the worker's other tasks away (`leave_worker`) and the statement
    /// carries on, undisturbed, until it ends or its deadline stops it.
    fn as_guest<T>(
        &mut self,
        sql: &str,
        f: impl FnOnce(&SqliteConn) -> rusqlite::Result<T>,
    ) -> Result<T, GuestError> {
        let conn = self.handle.conn();
        let deadline = self.budget.map(|b| b.deadline);
        conn.enter(
            self.guest_actor(),
            deadline,
            Some(Instant::now() + INLINE_BUDGET),
        );
        // Guest and host statements share the statement cache, keyed by SQL text;
        // host SQL carries a secret tag (`host_sql`), so a guest can never name
        // a statement that was authorised for the host.
        let result = single_statement(&conn.conn, sql).and_then(|()| f(conn));
        if conn.leave() {
            self.deadline_hit = true;
            return Err(GuestError::Internal(
                "statement stopped: the call's deadline passed".into(),
            ));
        }
        result.map_err(guest_error)
    }

    pub(super) fn guest_execute(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<u64, GuestError> {
        self.as_guest(sql, |conn| run_execute(conn, sql, params))
    }

    pub(super) fn guest_query(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Rows, GuestError> {
        let max_bytes = self.budget.map_or(usize::MAX, |b| b.max_query_bytes);
        self.as_guest(sql, |conn| run_query(conn, sql, params, max_bytes))
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
        Ok(run_query(
            self.handle.conn(),
            &host_sql(sql),
            params,
            usize::MAX,
        )?)
    }

    pub(super) fn deadline_exceeded(&self) -> bool {
        self.deadline_hit
    }

    pub(super) fn start_deadline(&mut self, deadline: Instant) {
        if let Some(budget) = &mut self.budget {
            budget.deadline = deadline;
        }
    }

    pub(super) fn commit(mut self) -> Result<(), StorageError> {
        self.open = false;
        self.handle.conn().conn.execute_batch("COMMIT")?;
        Ok(())
    }

    pub(super) fn rollback(mut self) -> Result<(), StorageError> {
        self.open = false;
        self.handle.conn().rollback()?;
        Ok(())
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.open {
            let conn = self.handle.conn();
            conn.leave();
            if let Err(e) = conn.rollback() {
                tracing::warn!(error = %e, "rollback of abandoned sqlite transaction failed");
            }
        }
    }
}

/// One statement per storage call: SQLite would silently ignore the rest, so
/// `SELECT 1; DELETE FROM t` is refused rather than half-run. Only SQL with a
/// `;` needs a look.
fn single_statement(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    if !sql.contains(';') {
        return Ok(());
    }
    let mut batch = rusqlite::Batch::new(conn, sql);
    if batch.next()?.is_some() && batch.next()?.is_some() {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISUSE),
            Some("one statement per storage call: the SQL holds more than one".into()),
        ));
    }
    Ok(())
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

fn too_big(msg: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_TOOBIG),
        Some(msg),
    )
}

fn run_query(
    conn: &SqliteConn,
    sql: &str,
    params: &[SqlValue],
    max_bytes: usize,
) -> rusqlite::Result<Rows> {
    let mut stmt = prepare(conn, sql, params)?;
    let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let width = columns.len();
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next()? {
        if out.len() == MAX_QUERY_ROWS {
            return Err(too_big(format!(
                "query returned more than {MAX_QUERY_ROWS} rows; add a LIMIT"
            )));
        }
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            // Measured before copying, so an oversized value is never copied.
            let size = match row.get_ref(i)? {
                ValueRef::Text(t) | ValueRef::Blob(t) => t.len() + 16,
                _ => 16,
            };
            bytes = bytes.saturating_add(size);
            if bytes > max_bytes {
                return Err(too_big(format!(
                    "query result exceeds {max_bytes} bytes; select fewer rows or columns"
                )));
            }
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
                    "{msg} (plugin SQL may read and write only the plugin's own tables, one statement at a time, with SQLite's core functions)"
                )),
                ErrorCode::TooBig => GuestError::Invalid(msg),
                _ => GuestError::Invalid(msg),
            }
        }
        _ => GuestError::Invalid(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_function_allow_list_is_sorted_for_binary_search() {
        assert!(FUNCTIONS.windows(2).all(|w| w[0] < w[1]));
        assert!(
            FUNCTIONS
                .binary_search_by(|f| cmp_ignore_case(f, "JSON_EXTRACT"))
                .is_ok()
        );
        assert!(
            FUNCTIONS
                .binary_search_by(|f| cmp_ignore_case(f, "fts3_tokenizer"))
                .is_err()
        );
    }
}
