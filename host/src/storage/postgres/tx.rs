//! One transaction on a plugin's pooled connection: the guest's statements
//! (checked, under the call's budget) and the host's (qualified, key-gated).
//!
//! The transaction is driven by hand rather than through `sqlx::Transaction`
//! so that BEGIN, the call's timeouts and the backend's pid travel in one round
//! trip, and so that an abandoned statement can be cancelled before the
//! connection is rolled back and reused.
use super::super::{CallBudget, StagedEvents, StorageError, TxMode};
use super::read::fetch_rows;
use super::session::{self, HostKey, ROLLBACK_GRACE, drain, finish};
use super::values::arguments;
use super::{PgDb, Shared};
use crate::bindings::{GuestError, Rows, SqlValue};
use sqlx::pool::PoolConnection;
use sqlx::{Executor, PgConnection, Postgres, Row};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long past its deadline an idle transaction may linger before
/// PostgreSQL ends the session (the host normally commits or rolls back at
/// once; this only reclaims a connection the host lost track of).
const IDLE_GRACE: Duration = Duration::from_secs(5);

/// The call's limits as applied to this transaction.
struct Budget {
    max_query_bytes: usize,
    /// statement_timeout / lock_timeout set at BEGIN, restored when the host
    /// takes the session back from the guest.
    timeout_ms: String,
}

/// An open transaction. Dropped without commit, it is rolled back (after
/// cancelling a statement left running) before its connection is reused.
pub struct PgTx {
    conn: Option<PoolConnection<Postgres>>,
    shared: Arc<Shared>,
    pid: i32,
    budget: Option<Budget>,
    /// The host key is set in this transaction.
    key_set: bool,
    /// Plugin SQL ran since the host last pinned the session's settings.
    guest_ran: bool,
    /// Plugin SQL ran at all in this transaction: the session is reset when it
    /// ends (`session::ending`).
    guest_touched: bool,
    /// A statement was sent and its result not fully read: if its future was
    /// dropped, it may still be running.
    in_flight: bool,
    /// A guest statement hit the call's statement or lock timeout.
    deadline_hit: bool,
}

impl PgDb {
    pub(super) async fn begin_tx(
        &self,
        mode: TxMode,
        budget: Option<CallBudget>,
    ) -> Result<PgTx, StorageError> {
        let begin = match mode {
            TxMode::ReadOnly => "BEGIN READ ONLY",
            TxMode::ReadWrite => "BEGIN",
        };
        let (sql, budget) = match budget {
            Some(b) => {
                let ms = millis(b.deadline.saturating_duration_since(Instant::now()));
                let idle = ms.saturating_add(millis(IDLE_GRACE));
                (
                    format!(
                        "{begin}; SELECT pg_catalog.set_config('statement_timeout', '{ms}', true), \
                         pg_catalog.set_config('lock_timeout', '{ms}', true), \
                         pg_catalog.set_config('idle_in_transaction_session_timeout', '{idle}', true), \
                         pg_catalog.pg_backend_pid() AS pid"
                    ),
                    Some((
                        b.deadline,
                        Budget {
                            max_query_bytes: b.max_query_bytes,
                            timeout_ms: ms.to_string(),
                        },
                    )),
                )
            }
            None => (
                format!("{begin}; SELECT pg_catalog.pg_backend_pid() AS pid"),
                None,
            ),
        };
        // The pool does not ping a connection before handing it out (a round
        // trip per call); a connection the server dropped meanwhile shows up
        // here as an I/O error, and the call takes another one.
        let mut attempts = 0;
        let (conn, pid) = loop {
            attempts += 1;
            let mut conn = match &budget {
                // A call waits for a connection no longer than its deadline.
                Some((deadline, _)) => {
                    tokio::time::timeout_at((*deadline).into(), self.pool.acquire())
                        .await
                        .map_err(|_| sqlx::Error::PoolTimedOut)??
                }
                None => self.pool.acquire().await?,
            };
            let pid = match conn.fetch_one(sqlx::raw_sql(&sql)).await {
                Ok(row) => row.try_get::<i32, _>("pid"),
                Err(e) => Err(e),
            };
            match pid {
                Ok(pid) => break (conn, pid),
                Err(e) => {
                    // The session may be left inside a failed BEGIN; do not reuse it.
                    conn.close_on_drop();
                    let broken = closed_by_server(&e);
                    // Each try closes one dead connection; a restarted server
                    // may have left every pooled one dead.
                    if !(broken && attempts <= self.pool.options().get_max_connections()) {
                        return Err(e.into());
                    }
                    tracing::debug!(error = %e, "a pooled plugin connection was closed by the server; taking another");
                }
            }
        };
        let budget = budget.map(|(_, budget)| budget);
        Ok(PgTx {
            conn: Some(conn),
            shared: self.shared.clone(),
            pid,
            budget,
            key_set: false,
            guest_ran: false,
            guest_touched: false,
            in_flight: false,
            deadline_hit: false,
        })
    }
}

/// True when `e` says the session is gone: the socket closed, or the server
/// ended it (`57P01` admin shutdown, `57P02` crash shutdown, class `08`
/// connection exceptions), as a restart or `pg_terminate_backend` does.
pub(super) fn closed_by_server(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("57P") || code.starts_with("08")),
        _ => false,
    }
}

/// Milliseconds for a timeout setting: at least 1 (0 would mean "none").
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, i32::MAX as u64)
}

impl PgTx {
    fn conn(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("the connection is held until commit or rollback")
    }

    pub(in crate::storage) async fn guest_execute(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<u64, GuestError> {
        self.before_guest(sql).await?;
        let args = arguments(params).map_err(invalid)?;
        self.in_flight = true;
        let done = sqlx::query_with(sql, args).execute(self.conn()).await;
        self.in_flight = false;
        match done {
            Ok(done) => Ok(done.rows_affected()),
            Err(e) => Err(self.guest_failure(e)),
        }
    }

    pub(in crate::storage) async fn guest_query(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Rows, GuestError> {
        self.before_guest(sql).await?;
        let max_bytes = self.budget.as_ref().map(|b| b.max_query_bytes);
        match self.query(sql, params, max_bytes).await {
            Ok(rows) => Ok(rows),
            Err(StorageError::Postgres(e)) => Err(self.guest_failure(e)),
            Err(other) => Err(invalid(other)),
        }
    }

    pub(in crate::storage) async fn host_execute(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<u64, StorageError> {
        let sql = self.shared.host_sql.qualify(sql);
        self.before_host(true).await?;
        let args = arguments(params)?;
        self.in_flight = true;
        let done = sqlx::query_with(&sql, args).execute(self.conn()).await?;
        self.in_flight = false;
        Ok(done.rows_affected())
    }

    pub(in crate::storage) async fn host_query(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Rows, StorageError> {
        let sql = self.shared.host_sql.qualify(sql);
        self.before_host(false).await?;
        self.query(&sql, params, None).await
    }

    /// Stages a call's events in one statement, numbered after commit
    /// ([`PgTx::number_staged`]): writers of an outbox never wait for each other.
    pub(in crate::storage) async fn stage_events(
        &mut self,
        events: &StagedEvents,
    ) -> Result<(), StorageError> {
        self.before_host(true).await?;
        let sql = self.shared.stage_sql.clone();
        self.in_flight = true;
        sqlx::query(&sql)
            .bind(&events.ids)
            .bind(&events.aggregate_ids)
            .bind(&events.event_types)
            .bind(&events.payloads)
            .bind(&events.created_at)
            .bind(&events.delays_ms)
            .bind(&events.traceparents)
            .bind(&events.correlation_ids)
            .execute(self.conn())
            .await?;
        self.in_flight = false;
        Ok(())
    }

    /// Numbers up to `limit` staged events (`provision::number_sql`); the new head if any.
    pub(in crate::storage) async fn number_staged(
        &mut self,
        limit: i64,
    ) -> Result<Option<u64>, StorageError> {
        self.before_host(true).await?;
        let sql = self.shared.number_sql.clone();
        self.in_flight = true;
        let numbered: Option<(i64, i64)> = sqlx::query_as(&sql)
            .bind(limit)
            .fetch_optional(self.conn())
            .await?;
        self.in_flight = false;
        Ok(numbered.map(|(_, head)| u64::try_from(head).unwrap_or(0)))
    }

    pub(in crate::storage) fn deadline_exceeded(&self) -> bool {
        self.deadline_hit
    }

    pub(in crate::storage) async fn rollback_after_timeout(self) -> Result<(), StorageError> {
        self.rollback().await
    }

    pub(in crate::storage) async fn commit(mut self) -> Result<(), StorageError> {
        if self.in_flight {
            // A statement's result was never read: its outcome is unknown.
            self.rollback().await?;
            return Err(StorageError::Aborted(
                "a statement was abandoned before commit".into(),
            ));
        }
        let commit = if self.key_set {
            HostKey::CLEAR_AND_COMMIT
        } else {
            "COMMIT"
        };
        let reset = self.guest_touched;
        let mut conn = self
            .conn
            .take()
            .expect("the connection is held until commit");
        match session::end(&mut conn, &session::ending(commit, reset), reset).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                conn.close_on_drop();
                Ok(())
            }
            Err(e) => {
                finish(conn, self.shared.clone(), self.pid, false, reset).await;
                Err(e.into())
            }
        }
    }

    pub(in crate::storage) async fn rollback(mut self) -> Result<(), StorageError> {
        let conn = self
            .conn
            .take()
            .expect("the connection is held until rollback");
        finish(
            conn,
            self.shared.clone(),
            self.pid,
            self.in_flight,
            self.guest_touched,
        )
        .await;
        Ok(())
    }

    /// Checks plugin SQL and makes the session safe for it.
    async fn before_guest(&mut self, sql: &str) -> Result<(), GuestError> {
        self.shared.guest_sql.check(sql)?;
        self.settle().await.map_err(invalid)?;
        if self.key_set {
            self.conn()
                .execute(HostKey::CLEAR)
                .await
                .map_err(|e| invalid(e.into()))?;
            self.key_set = false;
        }
        // Even a failing statement may have run plugin code (a trigger).
        self.guest_ran = true;
        self.guest_touched = true;
        Ok(())
    }

    /// Makes the session the host's again before a host statement: after
    /// plugin SQL, the search path and timeouts are pinned (plugin code may
    /// have changed them, e.g. to resolve the host's functions into its own
    /// schema), and before the first write the host key is set. One round
    /// trip, with every value bound.
    async fn before_host(&mut self, write: bool) -> Result<(), StorageError> {
        self.settle().await?;
        let mut settings: Vec<(&'static str, String)> = Vec::new();
        if self.guest_ran {
            settings.push(("search_path", self.shared.search_path.clone()));
            if let Some(budget) = &self.budget {
                settings.push(("statement_timeout", budget.timeout_ms.clone()));
                settings.push(("lock_timeout", budget.timeout_ms.clone()));
            }
        }
        let set_key = write && !self.key_set;
        if set_key {
            settings.push(("mercato.host_key", self.shared.key.expose().to_owned()));
        }
        if settings.is_empty() {
            return Ok(());
        }
        let calls = (0..settings.len())
            .map(|i| {
                format!(
                    "pg_catalog.set_config(${}, ${}, true)",
                    2 * i + 1,
                    2 * i + 2
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {calls}");
        let mut query = sqlx::query(&sql);
        for (name, value) in settings {
            query = query.bind(name).bind(value);
        }
        self.in_flight = true;
        query.execute(self.conn()).await?;
        self.in_flight = false;
        self.guest_ran = false;
        self.key_set |= set_key;
        Ok(())
    }

    /// Stops a statement whose caller gave up on it, and reads what is left of
    /// its answer, so the connection can take the next statement.
    async fn settle(&mut self) -> Result<(), StorageError> {
        if !self.in_flight {
            return Ok(());
        }
        session::cancel(&self.shared.admin_pool, self.pid).await;
        let pid = self.pid;
        tokio::time::timeout(ROLLBACK_GRACE, drain(self.conn()))
            .await
            .map_err(|_| {
                StorageError::Setup(format!(
                    "backend {pid} did not stop its abandoned statement within {ROLLBACK_GRACE:?}"
                ))
            })??;
        self.in_flight = false;
        Ok(())
    }

    /// Runs a query ([`fetch_rows`]). On an error the statement is left in
    /// flight (past a limit it may still be producing rows); the next
    /// statement or the rollback cancels it.
    async fn query(
        &mut self,
        sql: &str,
        params: &[SqlValue],
        max_bytes: Option<usize>,
    ) -> Result<Rows, StorageError> {
        self.in_flight = true;
        let rows = fetch_rows(self.conn(), sql, params, max_bytes).await;
        self.in_flight = rows.is_err();
        rows
    }

    fn guest_failure(&mut self, e: sqlx::Error) -> GuestError {
        if let sqlx::Error::Database(db) = &e {
            let code = db.code();
            // query_canceled (statement_timeout) and lock_not_available (lock_timeout)
            if self.budget.is_some() && matches!(code.as_deref(), Some("57014" | "55P03")) {
                self.deadline_hit = true;
                return GuestError::Internal(format!(
                    "{} (the call's deadline passed)",
                    db.message()
                ));
            }
        }
        guest_error(StorageError::Postgres(e))
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(finish(
                    conn,
                    self.shared.clone(),
                    self.pid,
                    self.in_flight,
                    self.guest_touched,
                ));
            }
            // No runtime to roll back on: close rather than reuse.
            Err(_) => conn.close_on_drop(),
        }
    }
}

fn invalid(e: StorageError) -> GuestError {
    match e {
        StorageError::Setup(message) => GuestError::Invalid(message),
        other => GuestError::Invalid(other.to_string()),
    }
}

fn guest_error(e: StorageError) -> GuestError {
    match e {
        StorageError::Postgres(sqlx::Error::Database(db)) => {
            let message = db.message().to_owned();
            match db.code().as_deref() {
                Some(code) if code.starts_with("23") => GuestError::Conflict(message),
                // insufficient_privilege, read_only_sql_transaction
                Some("42501") | Some("25006") => GuestError::Denied(format!(
                    "{message} (plugins may only change their own schema's tables)"
                )),
                _ => GuestError::Invalid(message),
            }
        }
        other => invalid(other),
    }
}
