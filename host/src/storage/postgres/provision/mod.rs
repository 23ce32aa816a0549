//! Provisioning a plugin's PostgreSQL database, on the admin connection.
//!
//! Layout, for plugin schema `s`:
//!
//! - `s` holds the plugin's tables, owned by the role `s_owner`, which only
//!   migrations log in as.
//! - `s_host` holds the host's tables (outbox, cursors, scheduled events, dead
//!   letters, idempotency records, migration bookkeeping, the outbox lock) and
//!   the host key, all owned by the admin. No plugin role can create anything
//!   there.
//! - The runtime role `s` (the plugin's calls and the host's work for it) has
//!   DML on the owner's tables and on the host tables. Writes to host tables are
//!   refused by a statement trigger unless the session holds the host key,
//!   which only the host knows: the host writes through the plugin's own session
//!   (its records commit with the plugin's state), yet the plugin cannot.
//!
//! Every step is idempotent and runs under a lock only the admin can take, so
//! hosts starting together provision once. Installs of the earlier layout (host
//! tables in `s`, everything owned by the admin) are converted in place.
//! `roles.rs` holds the role steps, `host_tables.rs` the host tables and
//! their guard.
use super::super::StorageError;
use super::names::{Names, quote};
use super::session::HostKey;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection, Postgres, Transaction};
use std::time::Duration;

mod host_tables;
mod roles;

use host_tables::{create_host_tables, move_host_tables};
pub(super) use host_tables::{number_sql, stage_sql};
use roles::{
    ensure_role, grant_on_plugin_objects, hand_over_plugin_objects, password, refuse_foreign_owner,
    revoke_temp,
};

/// The one-row table keeping the outbox head; its row lock serialises the
/// numbering of staged events (never the calls that stage them).
pub(super) const OUTBOX_LOCK: &str = "mercato_outbox_lock";
/// Events committed by calls and not numbered yet (`PgTx::stage_events`).
pub(super) const OUTBOX_STAGED: &str = "mercato_outbox_staged";
/// The admin-only table holding the host key.
const KEY_TABLE: &str = "mercato_host_key";
/// The trigger function refusing writes without the host key.
const GUARD_FUNCTION: &str = "mercato_host_writes_only";
/// The trigger on each host table.
const GUARD_TRIGGER: &str = "mercato_host_writes_only";

/// Concurrent first provisioning of global objects (roles, the database's
/// privileges, a new schema) can fail with a unique violation or "tuple
/// concurrently updated"; the loser retries.
const ATTEMPTS: u32 = 5;

/// What provisioning hands back to the host.
pub(super) struct Provisioned {
    pub(super) key: HostKey,
    pub(super) runtime_password: String,
    pub(super) owner_password: String,
}

/// Provisions roles and schemas for `names` and returns the host key and the
/// roles' fresh passwords.
pub(super) async fn open(
    admin: &PgConnectOptions,
    names: &Names,
) -> Result<Provisioned, StorageError> {
    let mut conn = PgConnection::connect_with(admin).await?;
    let done = retrying(&mut conn, Work::Provision(names)).await?;
    conn.close().await?;
    match done {
        Done::Provisioned(provisioned) => Ok(provisioned),
        Done::Nothing => unreachable!("provisioning returns its result"),
    }
}

/// Creates (idempotently) the host tables, their guard triggers and grants.
pub(super) async fn host_tables(
    admin: &PgConnectOptions,
    names: &Names,
    key: &HostKey,
) -> Result<(), StorageError> {
    let mut conn = PgConnection::connect_with(admin).await?;
    retrying(&mut conn, Work::HostTables(names, key)).await?;
    conn.close().await?;
    Ok(())
}

/// Gives the runtime role its rights on the owner's tables and sequences
/// (default privileges cover objects created later; this covers those made
/// before, and those of the earlier layout).
pub(super) async fn grant_runtime(
    admin: &PgConnectOptions,
    names: &Names,
) -> Result<(), StorageError> {
    let mut conn = PgConnection::connect_with(admin).await?;
    retrying(&mut conn, Work::Grant(names)).await?;
    conn.close().await?;
    Ok(())
}

/// A unit of provisioning, run in one transaction.
enum Work<'a> {
    Provision(&'a Names),
    HostTables(&'a Names, &'a HostKey),
    Grant(&'a Names),
}

enum Done {
    Provisioned(Provisioned),
    Nothing,
}

impl Work<'_> {
    async fn run(&self, tx: &mut Transaction<'_, Postgres>) -> Result<Done, StorageError> {
        match self {
            Work::Provision(names) => provision(tx, names).await.map(Done::Provisioned),
            Work::HostTables(names, key) => create_host_tables(tx, names, key)
                .await
                .map(|()| Done::Nothing),
            Work::Grant(names) => grant_on_plugin_objects(tx, names)
                .await
                .map(|()| Done::Nothing),
        }
    }
}

async fn retrying(conn: &mut PgConnection, work: Work<'_>) -> Result<Done, StorageError> {
    let mut attempt = 1;
    loop {
        let mut tx = conn.begin().await?;
        // Nothing a plugin created can be resolved by the admin's statements.
        tx.execute("SET LOCAL search_path = pg_catalog").await?;
        let done = match work.run(&mut tx).await {
            Ok(value) => tx.commit().await.map(|()| value).map_err(Into::into),
            Err(e) => Err(e),
        };
        match done {
            Err(e) if attempt < ATTEMPTS && lost_a_race(&e) => {
                tracing::debug!(error = %e, attempt, "provisioning raced another host; retrying");
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn lost_a_race(e: &StorageError) -> bool {
    let StorageError::Postgres(sqlx::Error::Database(db)) = e else {
        return false;
    };
    match db.code().as_deref() {
        // unique_violation, duplicate_object / _schema / _table, deadlock,
        // serialization_failure
        Some("23505" | "42710" | "42P06" | "42P07" | "40P01" | "40001") => true,
        Some("XX000") => db.message().contains("tuple concurrently"),
        _ => false,
    }
}

async fn exec(tx: &mut Transaction<'_, Postgres>, sql: &str) -> Result<(), StorageError> {
    tx.execute(sql).await?;
    Ok(())
}

/// Runs `statements` in order, stopping at the first that fails.
async fn exec_all(
    tx: &mut Transaction<'_, Postgres>,
    statements: impl IntoIterator<Item = String>,
) -> Result<(), StorageError> {
    for sql in statements {
        exec(tx, &sql).await?;
    }
    Ok(())
}

async fn provision(
    tx: &mut Transaction<'_, Postgres>,
    names: &Names,
) -> Result<Provisioned, StorageError> {
    let host = quote(&names.host_schema);
    let schema = quote(&names.schema);
    let (owner, runtime) = (quote(&names.owner), quote(&names.runtime));

    let superuser: bool = sqlx::query_scalar(
        "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = pg_catalog.current_user()",
    )
    .fetch_one(&mut **tx)
    .await?;
    refuse_foreign_owner(tx, &names.host_schema, names).await?;
    exec_all(
        tx,
        [
            format!("CREATE SCHEMA IF NOT EXISTS {host} AUTHORIZATION CURRENT_USER"),
            format!("REVOKE ALL ON SCHEMA {host} FROM PUBLIC"),
            format!("CREATE TABLE IF NOT EXISTS {host}.{KEY_TABLE} (key pg_catalog.text NOT NULL)"),
            format!("REVOKE ALL ON {host}.{KEY_TABLE} FROM PUBLIC"),
            // Plugin roles hold no privilege on this table, so they can never
            // take (or wait out) this lock.
            format!("LOCK TABLE {host}.{KEY_TABLE} IN EXCLUSIVE MODE"),
        ],
    )
    .await?;

    let runtime_password = password();
    let owner_password = password();
    ensure_role(tx, &names.runtime, &runtime_password, false, superuser).await?;
    ensure_role(tx, &names.owner, &owner_password, true, superuser).await?;
    if !superuser {
        // A non-superuser admin acts on the owner's objects (grants, default
        // privileges, handing objects over) and signals the plugin's backends
        // (cancelling abandoned statements) through membership.
        exec(tx, &format!("GRANT {owner}, {runtime} TO CURRENT_USER")).await?;
    }
    revoke_temp(tx, names, superuser).await?;

    let schema_owner: Option<String> = sqlx::query_scalar(
        "SELECT pg_catalog.pg_get_userbyid(nspowner)::text FROM pg_catalog.pg_namespace WHERE nspname = $1",
    )
    .bind(&names.schema)
    .fetch_optional(&mut **tx)
    .await?;
    match schema_owner {
        None => exec(tx, &format!("CREATE SCHEMA {schema} AUTHORIZATION {owner}")).await?,
        Some(current) => {
            move_host_tables(tx, names).await?;
            if current != names.owner {
                exec(tx, &format!("ALTER SCHEMA {schema} OWNER TO {owner}")).await?;
            }
            hand_over_plugin_objects(tx, names).await?;
        }
    }
    exec_all(
        tx,
        [
            format!("REVOKE ALL ON SCHEMA {schema} FROM PUBLIC"),
            format!("REVOKE CREATE ON SCHEMA {schema} FROM {runtime}"),
            format!("GRANT USAGE ON SCHEMA {schema} TO {runtime}"),
            format!("GRANT USAGE ON SCHEMA {host} TO {runtime}, {owner}"),
        ],
    )
    .await?;
    exec_all(
        tx,
        [
            "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES",
            "GRANT USAGE, SELECT ON SEQUENCES",
        ]
        .map(|grant| {
            format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} {grant} TO {runtime}"
            )
        }),
    )
    .await?;
    grant_on_plugin_objects(tx, names).await?;

    let stored: Option<String> = sqlx::query_scalar(&format!("SELECT key FROM {host}.{KEY_TABLE}"))
        .fetch_optional(&mut **tx)
        .await?;
    let key = match stored {
        Some(key) => HostKey::new(key),
        None => {
            let key = HostKey::generate();
            sqlx::query(&format!("INSERT INTO {host}.{KEY_TABLE} (key) VALUES ($1)"))
                .bind(key.expose())
                .execute(&mut **tx)
                .await?;
            key
        }
    };
    Ok(Provisioned {
        key,
        runtime_password,
        owner_password,
    })
}

/// Drops everything of `names` (tests and tear-down).
pub(super) async fn drop_all(admin: &PgConnectOptions, names: &Names) -> Result<(), StorageError> {
    let mut conn = PgConnection::connect_with(admin).await?;
    for schema in [&names.schema, &names.host_schema] {
        conn.execute(format!("DROP SCHEMA IF EXISTS {} CASCADE", quote(schema)).as_str())
            .await?;
    }
    for role in [&names.owner, &names.runtime] {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)",
        )
        .bind(role)
        .fetch_one(&mut conn)
        .await?;
        if !exists {
            continue;
        }
        // Its schemas are gone, and with them its objects and default
        // privileges; DROP OWNED (which needs membership or a superuser)
        // removes what may be left elsewhere in this database.
        let drop_role = format!("DROP ROLE {}", quote(role));
        if conn.execute(drop_role.as_str()).await.is_err() {
            conn.execute(format!("DROP OWNED BY {}", quote(role)).as_str())
                .await?;
            conn.execute(drop_role.as_str()).await?;
        }
    }
    conn.close().await?;
    Ok(())
}
