//! Session hygiene for the plugin's pooled connections, and the host key.
use super::Shared;
use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use std::sync::Arc;
use std::time::Duration;

/// How long cancelling an abandoned statement and rolling back may take
/// before the backend is terminated and the connection thrown away.
pub(super) const ROLLBACK_GRACE: Duration = Duration::from_secs(2);

/// The secret that lets a session write the host's tables (see
/// `provision::GUARD_FUNCTION`). Sent only as a bound parameter, so it never
/// appears in statement text (`pg_stat_activity`, logs of statements).
#[derive(Clone)]
pub(super) struct HostKey(String);

impl HostKey {
    /// Clears the key, then commits: the plugin's deferred triggers run at
    /// COMMIT and must not find the key set. One round trip.
    pub(super) const CLEAR_AND_COMMIT: &'static str =
        "SELECT pg_catalog.set_config('mercato.host_key', '', true); COMMIT";

    /// Clears the key before plugin SQL runs in the same transaction.
    pub(super) const CLEAR: &'static str =
        "SELECT pg_catalog.set_config('mercato.host_key', '', true)";

    pub(super) fn new(key: String) -> Self {
        HostKey(key)
    }

    /// A fresh random key.
    pub(super) fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random source is available");
        HostKey(hex::encode(bytes))
    }

    pub(super) fn expose(&self) -> &str {
        &self.0
    }

    /// What the guard function compares against: sha256 of the key, hex.
    pub(super) fn digest(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.0.as_bytes()))
    }
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostKey(…)")
    }
}

/// Resets what a plugin's SQL may have left in the session, sent in the same
/// round trip as the COMMIT or ROLLBACK that ends a call whose plugin ran SQL
/// (a call without plugin SQL leaves nothing to reset). Not `DISCARD ALL`: it
/// would also deallocate the prepared statements sqlx keeps cached for this
/// connection. `RESET ALL` restores the connection's start-up options (its
/// search path). The first statement tells whether the transaction really
/// ended: in the fresh implicit transaction `now()` is this message's time;
/// inside a transaction left open it would be earlier.
const RESET: &str = "SELECT pg_catalog.now() = pg_catalog.statement_timestamp() AS idle; \
                     CLOSE ALL; UNLISTEN *; SELECT pg_catalog.pg_advisory_unlock_all(); \
                     DISCARD TEMP; DISCARD SEQUENCES; RESET ALL";

/// `end` (a COMMIT or ROLLBACK, in the simple protocol), followed by the
/// session reset when plugin SQL ran.
pub(super) fn ending(end: &str, reset: bool) -> std::borrow::Cow<'_, str> {
    if reset {
        format!("{end}; {RESET}").into()
    } else {
        end.into()
    }
}

/// Runs `sql` from [`ending`]; false when the reset found the session still
/// inside a transaction (the connection must then be closed, not reused).
pub(super) async fn end(
    conn: &mut PgConnection,
    sql: &str,
    reset: bool,
) -> Result<bool, sqlx::Error> {
    use sqlx::{Executor, Row};
    if !reset {
        conn.execute(sqlx::raw_sql(sql)).await?;
        return Ok(true);
    }
    let rows = conn.fetch_all(sqlx::raw_sql(sql)).await?;
    let idle = rows
        .iter()
        .find_map(|row| row.try_get::<bool, _>("idle").ok())
        .unwrap_or(false);
    if !idle {
        tracing::warn!(
            "a plugin connection was still inside a transaction after its call; closing it"
        );
    }
    Ok(idle)
}

/// Cancels the statement running on backend `pid`, from another connection
/// (the abandoned call's connection is busy, and still held, so the signal
/// cannot reach a later call).
pub(super) async fn cancel(admin: &PgPool, pid: i32) {
    signal(admin, "pg_cancel_backend", pid).await;
}

/// Ends backend `pid` (its open transaction rolls back).
pub(super) async fn terminate(admin: &PgPool, pid: i32) {
    signal(admin, "pg_terminate_backend", pid).await;
}

async fn signal(admin: &PgPool, function: &str, pid: i32) {
    let sent = sqlx::query(&format!("SELECT pg_catalog.{function}($1)"))
        .bind(pid)
        .execute(admin)
        .await;
    if let Err(e) = sent {
        tracing::warn!(pid, error = %e, "{function} failed");
    }
}

/// Rolls back (and resets the session if plugin SQL ran), first cancelling a
/// statement still running; if that fails or takes too long, terminates the
/// backend and closes the connection instead of returning it to the pool.
pub(super) async fn finish(
    mut conn: PoolConnection<Postgres>,
    shared: Arc<Shared>,
    pid: i32,
    in_flight: bool,
    reset: bool,
) {
    let rolled_back = tokio::time::timeout(ROLLBACK_GRACE, async {
        if in_flight {
            cancel(&shared.admin_pool, pid).await;
            drain(&mut conn).await?;
        }
        end(&mut conn, &ending("ROLLBACK", reset), reset).await
    })
    .await;
    match rolled_back {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => conn.close_on_drop(),
        Ok(Err(e)) => discard(conn, &shared, pid, &e.to_string()).await,
        Err(_) => discard(conn, &shared, pid, "rollback timed out").await,
    }
}

async fn discard(conn: PoolConnection<Postgres>, shared: &Shared, pid: i32, why: &str) {
    tracing::warn!(
        pid,
        why,
        "discarding a plugin connection that could not be rolled back"
    );
    terminate(&shared.admin_pool, pid).await;
    let _ = conn.detach().close_hard().await;
}

/// Reads up to the server's next ReadyForQuery, discarding the error of a
/// cancelled statement (sqlx surfaces it on the next use of the connection).
pub(super) async fn drain(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    for _ in 0..3 {
        match conn.ping().await {
            Ok(()) => return Ok(()),
            Err(sqlx::Error::Database(e)) => {
                tracing::debug!(error = %e, "discarded the answer of an abandoned statement");
            }
            Err(e) => return Err(e),
        }
    }
    conn.ping().await
}
