//! A call's SQLite transaction: guest and host statements, one statement per
//! storage call, result budgets, and conversion between SQLite and WIT values.
use super::conn::{INLINE_BUDGET, SqliteConn};
use super::policy::Actor;
use crate::bindings::{GuestError, Rows, SqlValue};
use crate::storage::{CallBudget, MAX_QUERY_ROWS, StorageError, TxMode};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, ErrorCode};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit};

pub(super) enum Handle {
    Writer(OwnedMutexGuard<SqliteConn>),
    Reader {
        conn: Option<SqliteConn>,
        pool: Arc<Mutex<Vec<SqliteConn>>>,
        _permit: OwnedSemaphorePermit,
    },
}

impl Handle {
    pub(super) fn conn(&self) -> &SqliteConn {
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
    pub(super) handle: Handle,
    pub(super) mode: TxMode,
    pub(super) budget: Option<CallBudget>,
    pub(super) deadline_hit: bool,
    pub(super) open: bool,
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

    pub(crate) fn guest_execute(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<u64, GuestError> {
        self.as_guest(sql, |conn| run_execute(conn, sql, params))
    }

    pub(crate) fn guest_query(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Rows, GuestError> {
        let max_bytes = self.budget.map_or(usize::MAX, |b| b.max_query_bytes);
        self.as_guest(sql, |conn| run_query(conn, sql, params, max_bytes))
    }

    pub(crate) fn host_execute(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<u64, StorageError> {
        Ok(run_execute(self.handle.conn(), &host_sql(sql), params)?)
    }

    pub(crate) fn host_query(
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

    pub(crate) fn deadline_exceeded(&self) -> bool {
        self.deadline_hit
    }

    pub(crate) fn start_deadline(&mut self, deadline: Instant) {
        if let Some(budget) = &mut self.budget {
            budget.deadline = deadline;
        }
    }

    pub(crate) fn commit(mut self) -> Result<(), StorageError> {
        self.open = false;
        self.handle.conn().control("COMMIT")?;
        Ok(())
    }

    pub(crate) fn rollback(mut self) -> Result<(), StorageError> {
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
pub(super) fn single_statement(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
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
pub(super) fn host_sql(sql: &str) -> String {
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

pub(super) fn prepare<'c>(
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
pub(super) fn bind(
    stmt: &mut rusqlite::Statement<'_>,
    params: &[SqlValue],
) -> rusqlite::Result<()> {
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

pub(super) fn run_execute(
    conn: &SqliteConn,
    sql: &str,
    params: &[SqlValue],
) -> rusqlite::Result<u64> {
    let mut stmt = prepare(conn, sql, params)?;
    let mut rows = stmt.raw_query();
    while rows.next()?.is_some() {}
    drop(rows);
    Ok(conn.conn.changes())
}

pub(super) fn too_big(msg: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_TOOBIG),
        Some(msg),
    )
}

pub(super) fn run_query(
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

pub(super) fn to_value(v: &SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::Integer(*i),
        SqlValue::Real(r) => Value::Real(*r),
        SqlValue::Text(t) => Value::Text(t.clone()),
        SqlValue::Blob(b) => Value::Blob(b.clone()),
    }
}

pub(super) fn from_value(v: ValueRef<'_>) -> SqlValue {
    match v {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) => SqlValue::Integer(i),
        ValueRef::Real(r) => SqlValue::Real(r),
        ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
    }
}

pub(super) fn guest_error(e: rusqlite::Error) -> GuestError {
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
