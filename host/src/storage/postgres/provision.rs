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
use super::super::StorageError;
use super::super::schema::{HOST_TABLES, host_tables_ddl};
use super::names::{Names, quote};
use super::session::HostKey;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection, Postgres, Row, Transaction};
use std::time::Duration;

/// The one-row table whose row lock serialises writers of the outbox.
pub(super) const OUTBOX_LOCK: &str = "mercato_outbox_lock";
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
    exec(
        tx,
        &format!("CREATE SCHEMA IF NOT EXISTS {host} AUTHORIZATION CURRENT_USER"),
    )
    .await?;
    exec(tx, &format!("REVOKE ALL ON SCHEMA {host} FROM PUBLIC")).await?;
    exec(
        tx,
        &format!("CREATE TABLE IF NOT EXISTS {host}.{KEY_TABLE} (key pg_catalog.text NOT NULL)"),
    )
    .await?;
    exec(tx, &format!("REVOKE ALL ON {host}.{KEY_TABLE} FROM PUBLIC")).await?;
    // Plugin roles hold no privilege on this table, so they can never take
    // (or wait out) this lock.
    exec(
        tx,
        &format!("LOCK TABLE {host}.{KEY_TABLE} IN EXCLUSIVE MODE"),
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
    exec(tx, &format!("REVOKE ALL ON SCHEMA {schema} FROM PUBLIC")).await?;
    exec(
        tx,
        &format!("REVOKE CREATE ON SCHEMA {schema} FROM {runtime}"),
    )
    .await?;
    exec(tx, &format!("GRANT USAGE ON SCHEMA {schema} TO {runtime}")).await?;
    exec(
        tx,
        &format!("GRANT USAGE ON SCHEMA {host} TO {runtime}, {owner}"),
    )
    .await?;
    for grant in [
        "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES",
        "GRANT USAGE, SELECT ON SEQUENCES",
    ] {
        exec(
            tx,
            &format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} {grant} TO {runtime}"
            ),
        )
        .await?;
    }
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

fn password() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The host schema must be the admin's: a plugin role owning it could change
/// the guard.
async fn refuse_foreign_owner(
    tx: &mut Transaction<'_, Postgres>,
    host_schema: &str,
    names: &Names,
) -> Result<(), StorageError> {
    let owner: Option<String> = sqlx::query_scalar(
        "SELECT pg_catalog.pg_get_userbyid(nspowner)::text FROM pg_catalog.pg_namespace WHERE nspname = $1",
    )
    .bind(host_schema)
    .fetch_optional(&mut **tx)
    .await?;
    match owner {
        Some(owner) if owner == names.owner || owner == names.runtime => {
            Err(StorageError::Setup(format!(
                "schema `{host_schema}` is owned by the plugin role `{owner}`; the host schema must \
                 belong to the admin (drop it, or run as a superuser to repair it)"
            )))
        }
        _ => Ok(()),
    }
}

/// Creates `role` or gives it a fresh password, refusing a role of that name
/// that holds powers a plugin must never have (it is not ours).
async fn ensure_role(
    tx: &mut Transaction<'_, Postgres>,
    role: &str,
    password: &str,
    owner: bool,
    superuser: bool,
) -> Result<(), StorageError> {
    let existing = sqlx::query(
        "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls AS powerful, \
                rolname = pg_catalog.current_user() AS is_admin \
         FROM pg_catalog.pg_roles WHERE rolname = $1",
    )
    .bind(role)
    .fetch_optional(&mut **tx)
    .await?;
    let inherit = if owner { "NOINHERIT" } else { "INHERIT" };
    let quoted = quote(role);
    match existing {
        None => {
            exec(
                tx,
                &format!(
                    "CREATE ROLE {quoted} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION \
                     NOBYPASSRLS {inherit} PASSWORD '{password}'"
                ),
            )
            .await
        }
        Some(row)
            if row.try_get::<bool, _>("powerful")? || row.try_get::<bool, _>("is_admin")? =>
        {
            Err(StorageError::Setup(format!(
                "role `{role}` already exists with powers a plugin role must not have (superuser, \
                 CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS, or it is the admin itself); it is \
                 not a Mercato plugin role: choose another storage.namespace"
            )))
        }
        Some(_) => {
            // Attributes other than the password need a superuser to change.
            let attributes = if superuser {
                format!("NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS {inherit} ")
            } else {
                String::new()
            };
            exec(
                tx,
                &format!("ALTER ROLE {quoted} WITH LOGIN {attributes}PASSWORD '{password}'"),
            )
            .await
        }
    }
}

/// Plugin roles get no temporary tables: a temporary table is created in a
/// schema of its own, outside the plugin's, and one named like a host table
/// would come first on the search path.
async fn revoke_temp(
    tx: &mut Transaction<'_, Postgres>,
    names: &Names,
    superuser: bool,
) -> Result<(), StorageError> {
    let database: String =
        sqlx::query_scalar("SELECT pg_catalog.quote_ident(pg_catalog.current_database())")
            .fetch_one(&mut **tx)
            .await?;
    let holders = temp_holders(tx, names).await?;
    if holders.is_empty() {
        return Ok(());
    }
    if !superuser {
        exec(
            tx,
            &format!("GRANT TEMPORARY ON DATABASE {database} TO CURRENT_USER"),
        )
        .await?;
    }
    exec(
        tx,
        &format!(
            "REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC, {}, {}",
            quote(&names.runtime),
            quote(&names.owner)
        ),
    )
    .await?;
    let still = temp_holders(tx, names).await?;
    if !still.is_empty() {
        return Err(StorageError::Setup(format!(
            "could not revoke TEMPORARY on database {database} from {}: run Mercato's admin \
             connection as the database owner or a superuser, or revoke it yourself",
            still.join(", ")
        )));
    }
    Ok(())
}

/// Which of PUBLIC and the plugin's roles may create temporary tables.
async fn temp_holders(
    tx: &mut Transaction<'_, Postgres>,
    names: &Names,
) -> Result<Vec<String>, StorageError> {
    let mut holders = Vec::new();
    for role in ["public", &names.runtime, &names.owner] {
        let may: bool = sqlx::query_scalar(
            "SELECT pg_catalog.has_database_privilege($1, pg_catalog.current_database(), 'TEMPORARY')",
        )
        .bind(role)
        .fetch_one(&mut **tx)
        .await?;
        if may {
            holders.push(role.to_owned());
        }
    }
    Ok(holders)
}

/// The earlier layout kept the host tables in the plugin's schema; they move
/// to the host schema (with their indexes, constraints and rows). A table of
/// the plugin's own that happens to share a name (owned by the owner role) is
/// left alone.
async fn move_host_tables(
    tx: &mut Transaction<'_, Postgres>,
    names: &Names,
) -> Result<(), StorageError> {
    for table in HOST_TABLES {
        let movable: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $3 AND c.relkind = 'r' \
                   AND c.relowner <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $4)) \
             AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $2 AND c.relname = $3)",
        )
        .bind(&names.schema)
        .bind(&names.host_schema)
        .bind(table)
        .bind(&names.owner)
        .fetch_one(&mut **tx)
        .await?;
        if movable {
            tracing::info!(schema = %names.schema, table, "moving host table to the host schema");
            exec(
                tx,
                &format!(
                    "ALTER TABLE {}.{table} SET SCHEMA {}",
                    quote(&names.schema),
                    quote(&names.host_schema)
                ),
            )
            .await?;
        }
    }
    Ok(())
}

/// Objects of the earlier layout were created by the admin; the owner role
/// takes them over so that later migrations can alter them.
async fn hand_over_plugin_objects(
    tx: &mut Transaction<'_, Postgres>,
    names: &Names,
) -> Result<(), StorageError> {
    let owner = quote(&names.owner);
    // Relations (sequences owned by a column follow their table), routines,
    // and standalone types. `::regclass` etc. print schema-qualified names
    // under the admin's search path (pg_catalog only).
    let objects: Vec<(String, String)> = sqlx::query_as(
        "SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' \
                    WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, \
                c.oid::pg_catalog.regclass::pg_catalog.text \
         FROM pg_catalog.pg_class c \
         WHERE c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1) \
           AND c.relowner <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $2) \
           AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
           AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                   AND d.objid = c.oid AND d.deptype IN ('a', 'i'))) \
         UNION ALL \
         SELECT CASE p.prokind WHEN 'a' THEN 'AGGREGATE' ELSE 'ROUTINE' END, \
                p.oid::pg_catalog.regprocedure::pg_catalog.text \
         FROM pg_catalog.pg_proc p \
         WHERE p.pronamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1) \
           AND p.proowner <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $2) \
         UNION ALL \
         SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, \
                t.oid::pg_catalog.regtype::pg_catalog.text \
         FROM pg_catalog.pg_type t \
         WHERE t.typnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1) \
           AND t.typowner <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $2) \
           AND t.typtype IN ('d', 'e', 'r', 'c') \
           AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_catalog.pg_class WHERE oid = t.typrelid) = 'c')",
    )
    .bind(&names.schema)
    .bind(&names.owner)
    .fetch_all(&mut **tx)
    .await?;
    for (kind, object) in objects {
        exec(tx, &format!("ALTER {kind} {object} OWNER TO {owner}")).await?;
    }
    Ok(())
}

async fn grant_on_plugin_objects(
    tx: &mut Transaction<'_, Postgres>,
    names: &Names,
) -> Result<(), StorageError> {
    let (schema, runtime) = (quote(&names.schema), quote(&names.runtime));
    exec(
        tx,
        &format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {runtime}"
        ),
    )
    .await?;
    exec(
        tx,
        &format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {runtime}"),
    )
    .await
}

async fn create_host_tables(
    tx: &mut Transaction<'_, Postgres>,
    names: &Names,
    key: &HostKey,
) -> Result<(), StorageError> {
    let host = quote(&names.host_schema);
    let (owner, runtime) = (quote(&names.owner), quote(&names.runtime));
    exec(
        tx,
        &format!("LOCK TABLE {host}.{KEY_TABLE} IN EXCLUSIVE MODE"),
    )
    .await?;
    // The admin writes host tables (the outbox lock's row) past their guard too.
    sqlx::query("SELECT pg_catalog.set_config('mercato.host_key', $1, true)")
        .bind(key.expose())
        .execute(&mut **tx)
        .await?;
    // The shared DDL names tables plainly: create them in the host schema.
    exec(tx, &format!("SET LOCAL search_path = {host}, pg_catalog")).await?;
    tx.execute(sqlx::raw_sql(&host_tables_ddl(
        super::super::BackendKind::Postgres,
    )))
    .await?;
    exec(
        tx,
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, \
         description TEXT NOT NULL, installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), \
         success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)",
    )
    .await?;
    // The outbox head lives in the lock's row (`PgTx::reserve_sequences`).
    // Only a database without it takes locks here: this runs on every deploy,
    // beside calls that hold the lock's row, and DDL on it would deadlock them.
    let has_head: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute \
         WHERE attrelid = pg_catalog.to_regclass($1) AND attname = 'head' AND NOT attisdropped)",
    )
    .bind(format!("{host}.{OUTBOX_LOCK}"))
    .fetch_one(&mut **tx)
    .await?;
    if !has_head {
        exec(
            tx,
            &format!(
                "CREATE TABLE IF NOT EXISTS {OUTBOX_LOCK} (id INTEGER PRIMARY KEY CHECK (id = 1), \
                 head BIGINT NOT NULL DEFAULT 0)"
            ),
        )
        .await?;
        exec(
            tx,
            &format!(
                "ALTER TABLE {OUTBOX_LOCK} ADD COLUMN IF NOT EXISTS head BIGINT NOT NULL DEFAULT 0"
            ),
        )
        .await?;
        exec(
            tx,
            &format!("INSERT INTO {OUTBOX_LOCK} (id) VALUES (1) ON CONFLICT DO NOTHING"),
        )
        .await?;
        // Databases of earlier builds, and outboxes moved from the earlier
        // layout, start the head at their last event.
        exec(
            tx,
            &format!(
                "UPDATE {OUTBOX_LOCK} SET head = GREATEST(head, \
                 (SELECT COALESCE(MAX(sequence), 0) FROM outbox_events)) WHERE id = 1"
            ),
        )
        .await?;
    }
    exec(tx, "SET LOCAL search_path = pg_catalog").await?;

    // The digest is written into the body: the function needs no table of its
    // own, and knowing the digest does not reveal the key.
    exec(
        tx,
        &format!(
            "CREATE OR REPLACE FUNCTION {host}.{GUARD_FUNCTION}() RETURNS trigger \
             LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog AS $guard$ \
             BEGIN \
                 IF pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to( \
                        COALESCE(pg_catalog.current_setting('mercato.host_key', true), ''), 'UTF8')), 'hex') \
                    IS DISTINCT FROM '{digest}' THEN \
                     RAISE EXCEPTION 'permission denied: only the Mercato host writes to %', TG_TABLE_NAME \
                         USING ERRCODE = 'insufficient_privilege', \
                               HINT = 'plugins may read the host''s tables but never change them'; \
                 END IF; \
                 RETURN NULL; \
             END $guard$",
            digest = key.digest()
        ),
    )
    .await?;
    exec(
        tx,
        &format!("REVOKE ALL ON FUNCTION {host}.{GUARD_FUNCTION}() FROM PUBLIC"),
    )
    .await?;
    let guarded: Vec<&str> = HOST_TABLES.iter().copied().chain([OUTBOX_LOCK]).collect();
    for table in &guarded {
        let present: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger \
             WHERE tgname = $1 AND tgrelid = pg_catalog.to_regclass($2))",
        )
        .bind(GUARD_TRIGGER)
        .bind(format!("{host}.{table}"))
        .fetch_one(&mut **tx)
        .await?;
        if !present {
            exec(
                tx,
                &format!(
                    "CREATE TRIGGER {GUARD_TRIGGER} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE \
                     ON {host}.{table} FOR EACH STATEMENT EXECUTE FUNCTION {host}.{GUARD_FUNCTION}()"
                ),
            )
            .await?;
        }
    }
    exec(
        tx,
        &format!("REVOKE ALL ON ALL TABLES IN SCHEMA {host} FROM PUBLIC, {runtime}, {owner}"),
    )
    .await?;
    let tables = guarded
        .iter()
        .map(|t| format!("{host}.{t}"))
        .collect::<Vec<_>>()
        .join(", ");
    exec(
        tx,
        &format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {runtime}"),
    )
    .await?;
    // Migrations record themselves from the owner's session, with the key.
    exec(
        tx,
        &format!("GRANT INSERT ON {host}._sqlx_migrations TO {owner}"),
    )
    .await
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
