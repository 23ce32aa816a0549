//! The host tables in the host schema: created (or moved there from the
//! earlier layout), guarded by a statement trigger that refuses writes from a
//! session without the host key, and granted to the plugin's roles.
use super::{GUARD_FUNCTION, GUARD_TRIGGER, KEY_TABLE, OUTBOX_LOCK, OUTBOX_STAGED, exec, exec_all};
use crate::storage::StorageError;
use crate::storage::postgres::names::{Names, quote};
use crate::storage::postgres::session::HostKey;
use crate::storage::schema::{ADDED_COLUMNS, AFTER_ADDED_COLUMNS, HOST_TABLES, host_tables_ddl};
use sqlx::{Executor, Postgres, Transaction};

/// The earlier layout kept the host tables in the plugin's schema; they move
/// to the host schema (with their indexes, constraints and rows). A table of
/// the plugin's own that happens to share a name (owned by the owner role) is
/// left alone.
pub(super) async fn move_host_tables(
    tx: &mut Transaction<'_, Postgres>,
    names: &Names,
) -> Result<(), StorageError> {
    let (schema, host) = (quote(&names.schema), quote(&names.host_schema));
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
                &format!("ALTER TABLE {schema}.{table} SET SCHEMA {host}"),
            )
            .await?;
        }
    }
    Ok(())
}

/// Adds the nullable `TEXT` columns a host table of an earlier build lacks.
/// Looked up first: `ADD COLUMN IF NOT EXISTS` would lock the table even
/// when the column is there, and this runs on every deploy, beside calls.
async fn add_columns(
    tx: &mut Transaction<'_, Postgres>,
    names: &Names,
    columns: &[(&str, &str)],
) -> Result<(), StorageError> {
    let host = quote(&names.host_schema);
    for (table, column) in columns {
        let present: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute \
             WHERE attrelid = pg_catalog.to_regclass($1) AND attname = $2 AND NOT attisdropped)",
        )
        .bind(format!("{host}.{table}"))
        .bind(column)
        .fetch_one(&mut **tx)
        .await?;
        if !present {
            tracing::info!(schema = %names.host_schema, table, column, "adding a host table's column");
            exec(
                tx,
                &format!("ALTER TABLE {host}.{table} ADD COLUMN {column} TEXT"),
            )
            .await?;
        }
    }
    Ok(())
}

pub(super) async fn create_host_tables(
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
        crate::storage::BackendKind::Postgres,
    )))
    .await?;
    add_columns(tx, names, ADDED_COLUMNS).await?;
    exec(tx, AFTER_ADDED_COLUMNS).await?;
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
        exec_all(
            tx,
            [
                format!(
                    "CREATE TABLE IF NOT EXISTS {OUTBOX_LOCK} (id INTEGER PRIMARY KEY CHECK (id = 1), \
                     head BIGINT NOT NULL DEFAULT 0)"
                ),
                format!(
                    "ALTER TABLE {OUTBOX_LOCK} ADD COLUMN IF NOT EXISTS head BIGINT NOT NULL DEFAULT 0"
                ),
                format!("INSERT INTO {OUTBOX_LOCK} (id) VALUES (1) ON CONFLICT DO NOTHING"),
                // Databases of earlier builds, and outboxes moved from the
                // earlier layout, start the head at their last event.
                format!(
                    "UPDATE {OUTBOX_LOCK} SET head = GREATEST(head, \
                     (SELECT COALESCE(MAX(sequence), 0) FROM outbox_events)) WHERE id = 1"
                ),
            ],
        )
        .await?;
    }
    // Staged events wait here for their sequence numbers. Created only where
    // missing, for the same reason as the head above.
    let has_staged: bool = sqlx::query_scalar("SELECT pg_catalog.to_regclass($1) IS NOT NULL")
        .bind(format!("{host}.{OUTBOX_STAGED}"))
        .fetch_one(&mut **tx)
        .await?;
    if !has_staged {
        exec(
            tx,
            &format!(
                "CREATE TABLE {OUTBOX_STAGED} (\
                 staged BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                 id TEXT NOT NULL, aggregate_id TEXT NOT NULL, event_type TEXT NOT NULL, \
                 payload TEXT NOT NULL, created_at TEXT NOT NULL, deliver_after_ms BIGINT, \
                 traceparent TEXT, correlation_id TEXT)"
            ),
        )
        .await?;
    }
    add_columns(
        tx,
        names,
        &[
            (OUTBOX_STAGED, "traceparent"),
            (OUTBOX_STAGED, "correlation_id"),
        ],
    )
    .await?;
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
    let guarded: Vec<&str> = HOST_TABLES
        .iter()
        .copied()
        .chain([OUTBOX_LOCK, OUTBOX_STAGED])
        .collect();
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
    let tables = guarded
        .iter()
        .map(|t| format!("{host}.{t}"))
        .collect::<Vec<_>>()
        .join(", ");
    exec_all(
        tx,
        [
            format!("REVOKE ALL ON ALL TABLES IN SCHEMA {host} FROM PUBLIC, {runtime}, {owner}"),
            format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {runtime}"),
            // The staging table's identity sequence.
            format!("GRANT USAGE ON ALL SEQUENCES IN SCHEMA {host} TO {runtime}"),
            // Migrations record themselves from the owner's session, with the key.
            format!("GRANT INSERT ON {host}._sqlx_migrations TO {owner}"),
        ],
    )
    .await
}

/// Stages a call's events: one row per element of the eight arrays (the
/// qualified multi-argument `unnest` is spelled `ROWS FROM`), identity
/// values in array order (so the call's order is kept).
pub(in crate::storage::postgres) fn stage_sql(names: &Names) -> String {
    let host = quote(&names.host_schema);
    format!(
        "INSERT INTO {host}.{OUTBOX_STAGED} \
         (id, aggregate_id, event_type, payload, created_at, deliver_after_ms, traceparent, correlation_id) \
         SELECT id, aggregate_id, event_type, payload, created_at, deliver_after_ms, traceparent, correlation_id \
         FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]), \
             pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[]), \
             pg_catalog.unnest($5::text[]), pg_catalog.unnest($6::int8[]), \
             pg_catalog.unnest($7::text[]), pg_catalog.unnest($8::text[])) \
         WITH ORDINALITY AS e(id, aggregate_id, event_type, payload, created_at, deliver_after_ms, \
             traceparent, correlation_id, n) \
         ORDER BY n"
    )
}

/// Moves up to $1 staged events (only committed ones are visible) into the
/// outbox, numbered after the head in staging order, and advances the head:
/// one statement, returning how many moved and the head after, or no row when
/// nothing was waiting (then it writes nothing: an idle numberer's poll costs
/// no WAL and no flush). A writer that
/// commits after another always stages after it (its identity value is drawn
/// later), so causally ordered calls keep their order; calls that ran
/// concurrently are ordered by when their events were staged.
pub(in crate::storage::postgres) fn number_sql(names: &Names) -> String {
    let host = quote(&names.host_schema);
    format!(
        "WITH base AS (SELECT head FROM {host}.{OUTBOX_LOCK} WHERE id = 1 FOR UPDATE), \
         moved AS (DELETE FROM {host}.{OUTBOX_STAGED} WHERE staged IN \
             (SELECT staged FROM {host}.{OUTBOX_STAGED} ORDER BY staged LIMIT $1) \
             RETURNING staged, id, aggregate_id, event_type, payload, created_at, deliver_after_ms, \
                 traceparent, correlation_id), \
         numbered AS (INSERT INTO {host}.outbox_events \
             (id, sequence, aggregate_id, event_type, payload, created_at, deliver_after_ms, \
              traceparent, correlation_id) \
             SELECT id, (SELECT head FROM base) + pg_catalog.row_number() OVER (ORDER BY staged), \
                    aggregate_id, event_type, payload, created_at, deliver_after_ms, \
                    traceparent, correlation_id FROM moved \
             RETURNING sequence) \
         UPDATE {host}.{OUTBOX_LOCK} SET head = head + (SELECT pg_catalog.count(*) FROM numbered) \
         WHERE id = 1 AND EXISTS (SELECT 1 FROM numbered) \
         RETURNING (SELECT pg_catalog.count(*) FROM numbered), head"
    )
}
