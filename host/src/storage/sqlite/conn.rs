//! One SQLite connection, contained for plugin SQL: limits, the authorizer
//! ([`super::policy`]), a progress handler that stops statements at the
//! call's deadline and moves long ones off the async worker.
use super::policy::{Actor, authorize};
use crate::storage::StorageError;
use rusqlite::config::DbConfig;
use rusqlite::hooks::AuthContext;
use rusqlite::{Connection, OpenFlags, limits::Limit};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// VM instructions between deadline checks: a check is one clock read, and a
/// thousand instructions take microseconds, so a runaway statement stops
/// within microseconds of its deadline at no measurable cost.
pub(super) const PROGRESS_EVERY: i32 = 1_000;

/// How long a plugin statement may run on an async worker before the worker's
/// other tasks are handed to another thread (`leave_worker`).
pub(super) const INLINE_BUDGET: Duration = Duration::from_millis(1);

/// How long `leave_worker` waits at most for a worker to run its marker task.
/// Normally a worker runs it within microseconds; the bound only matters when
/// every core is busy, and then the next attempt comes [`INLINE_BUDGET`] later.
pub(super) const HANDOFF_LIMIT: Duration = Duration::from_millis(20);

/// Called from the progress handler of a statement that has run past
/// [`INLINE_BUDGET`], and again every [`INLINE_BUDGET`] while it runs: hands
/// this async worker's other tasks (and its place in the scheduler) to another
/// thread, so that the statement, which goes on here, can take as long as its
/// deadline allows without stalling `/healthz` or other plugins.
///
/// `block_in_place` starts another thread to take over the worker, but takes
/// the worker back when its closure returns if that thread has not started
/// yet, which happens when the cores are busy (several runaway statements at
/// once). So the closure waits until a marker task, queued on this worker just
/// before, has been run by some worker; and the handler tries again a
/// millisecond later, because whether the worker was taken over cannot be
/// asked. Once this thread has no worker of its own, a retry only costs the
/// marker task. Off a multi-threaded runtime (a blocking thread, a
/// single-threaded test runtime) there is nothing to hand over.
///
/// Doing this only for statements that run long matters: handing over before
/// every write cost the saga a quarter of its throughput (docs/benchmarks.md).
pub(super) fn leave_worker() {
    if let Ok(handle) = tokio::runtime::Handle::try_current()
        && handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
    {
        let (ran, marker_ran) = std::sync::mpsc::sync_channel::<()>(1);
        drop(handle.spawn(async move {
            let _ = ran.try_send(());
        }));
        tokio::task::block_in_place(|| {
            let _ = marker_ran.recv_timeout(HANDOFF_LIMIT);
        });
    }
}

/// Default largest value (string or blob) a statement may build, when the
/// plugin's limits are not known (tests, tools).
pub(super) const DEFAULT_VALUE_BYTES: usize = 8 << 20;

/// What the connection's callbacks consult: who is acting, and until when.
pub(super) struct Guard {
    actor: AtomicU8,
    /// Nanoseconds after [`EPOCH`] at which running statements are stopped; 0: never.
    deadline_ns: AtomicU64,
    /// Set when the progress handler stopped a statement for the deadline.
    deadline_hit: AtomicBool,
    /// Nanoseconds after [`EPOCH`] at which a running statement leaves the
    /// async worker (`leave_worker`), pushed on by [`INLINE_BUDGET`] at each
    /// attempt; 0: never.
    offload_ns: AtomicU64,
}

/// A fixed origin for deadlines stored in atomics.
pub(super) static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

pub(super) fn since_epoch(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*EPOCH).as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

pub(super) struct SqliteConn {
    pub(super) conn: Connection,
    guard: Arc<Guard>,
}

/// How long a statement waits for a lock held by another connection.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl SqliteConn {
    pub(super) fn open(path: &Path, max_value_bytes: usize) -> Result<Self, StorageError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
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
                    let retry = since_epoch(Instant::now() + INLINE_BUDGET);
                    timed.offload_ns.store(retry, Ordering::Relaxed);
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
    pub(super) fn enter(&self, actor: Actor, deadline: Option<Instant>, offload: Option<Instant>) {
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
    pub(super) fn leave(&self) -> bool {
        self.guard.actor.store(Actor::Host as u8, Ordering::Relaxed);
        self.guard.deadline_ns.store(0, Ordering::Relaxed);
        self.guard.offload_ns.store(0, Ordering::Relaxed);
        self.guard.deadline_hit.swap(false, Ordering::Relaxed)
    }

    /// Rolls back whatever transaction is open (an interrupted write statement
    /// already rolled it back inside SQLite).
    pub(super) fn rollback(&self) -> rusqlite::Result<()> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.control("ROLLBACK")
    }

    /// Runs a transaction-control statement (`BEGIN IMMEDIATE`, `COMMIT`…)
    /// from the statement cache: parsing them anew was a measurable part of a
    /// call. Cached under the host's tag (`tx::host_sql`), so plugin SQL of the
    /// same text can never be handed the host's prepared statement.
    pub(super) fn control(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(&super::tx::host_sql(sql))?
            .execute([])?;
        Ok(())
    }
}
