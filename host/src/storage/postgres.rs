//! PostgreSQL backend: one schema and one login role per plugin.
//!
//! An admin connection (the configured URL) provisions the schema, runs the
//! plugin's migrations and owns every table; the plugin's calls run on a pool
//! that logs in *as the plugin's role*, which has DML rights on its own schema
//! only. Because the session user is that role, a guest cannot `SET ROLE` its
//! way out: another plugin's schema is simply not visible to it.
use super::{AppliedMigration, CallBudget, MAX_QUERY_ROWS, MigrationStep, StorageError, TxMode};
use crate::bindings::{GuestError, Rows, SqlValue};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow, PgTypeInfo};
use sqlx::{
    Arguments, Column, Connection, Executor, PgConnection, Postgres, Row, TypeInfo, ValueRef,
};
use std::str::FromStr;

/// A plugin's PostgreSQL schema, reached through its own role.
pub struct PgDb {
    pool: PgPool,
    schema: String,
    admin: PgConnectOptions,
    lock_key: i64,
}

/// Names of the schema and role for `plugin` under `namespace`.
pub fn schema_name(namespace: &str, plugin: &str) -> String {
    format!("{namespace}{}", plugin.replace('-', "_"))
}

impl PgDb {
    /// Provisions (idempotently) the schema and role for `plugin` and connects as that role.
    pub async fn open(
        url: &str,
        namespace: &str,
        plugin: &str,
        max_connections: u32,
    ) -> Result<Self, StorageError> {
        let admin = PgConnectOptions::from_str(url)?;
        let schema = schema_name(namespace, plugin);
        let role = schema.clone();
        // A fresh password each start: the host is the only holder, and it works
        // under password auth as well as under trust.
        let password = uuid::Uuid::new_v4().simple().to_string();
        let mut conn = PgConnection::connect_with(&admin).await?;
        // Role creation races between hosts starting together; serialise it.
        let mut tx = conn.begin().await?;
        tx.execute("SELECT pg_advisory_xact_lock(7394021)").await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(&role)
                .fetch_one(&mut *tx)
                .await?;
        if !exists {
            tx.execute(
                format!("CREATE ROLE \"{role}\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
                    .as_str(),
            )
            .await?;
        }
        tx.execute(format!("ALTER ROLE \"{role}\" WITH LOGIN PASSWORD '{password}'").as_str())
            .await?;
        tx.execute(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"").as_str())
            .await?;
        tx.execute(format!("REVOKE ALL ON SCHEMA \"{schema}\" FROM PUBLIC").as_str())
            .await?;
        tx.execute(format!("GRANT USAGE ON SCHEMA \"{schema}\" TO \"{role}\"").as_str())
            .await?;
        tx.commit().await?;
        conn.close().await?;

        let plugin_opts = admin
            .clone()
            .username(&role)
            .password(&password)
            .options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .connect_with(plugin_opts)
            .await?;
        let lock_key = i64::from_le_bytes(
            sha2::Sha256::digest(schema.as_bytes())[..8]
                .try_into()
                .expect("8 bytes"),
        );
        Ok(PgDb {
            pool,
            schema,
            admin,
            lock_key,
        })
    }

    /// The plugin's schema (also its role name).
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Options for an admin connection whose search path is the plugin's schema.
    pub fn admin_options(&self) -> PgConnectOptions {
        self.admin
            .clone()
            .options([("search_path", self.schema.as_str())])
    }

    /// Gives the plugin's role DML rights on its tables after migrations ran as
    /// admin; host tables get only what the host needs through that role.
    pub async fn grant(&self, conn: &mut PgConnection) -> Result<(), StorageError> {
        let s = &self.schema;
        let statements = [
            format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA \"{s}\" TO \"{s}\""
            ),
            format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA \"{s}\" TO \"{s}\""),
            format!("REVOKE ALL ON \"{s}\"._sqlx_migrations FROM \"{s}\""),
            format!("REVOKE UPDATE, DELETE ON \"{s}\".outbox_events FROM \"{s}\""),
            format!("GRANT UPDATE (published_at) ON \"{s}\".outbox_events TO \"{s}\""),
        ];
        for statement in statements {
            conn.execute(statement.as_str()).await?;
        }
        Ok(())
    }

    /// Drops the schema and role (tests and tear-down).
    pub async fn drop_schema(url: &str, namespace: &str, plugin: &str) -> Result<(), StorageError> {
        let schema = schema_name(namespace, plugin);
        let mut conn = PgConnection::connect_with(&PgConnectOptions::from_str(url)?).await?;
        conn.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str())
            .await?;
        conn.execute(format!("DROP ROLE IF EXISTS \"{schema}\"").as_str())
            .await?;
        Ok(())
    }

    /// The pool connected as the plugin's role.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(super) async fn prepare_host_tables(&self) -> Result<(), StorageError> {
        let mut conn = PgConnection::connect_with(&self.admin_options()).await?;
        conn.execute(sqlx::raw_sql(&super::schema::host_tables_ddl(
            super::BackendKind::Postgres,
        )))
        .await?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, \
             description TEXT NOT NULL, installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), \
             success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)",
        )
        .await?;
        self.grant(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }

    pub(super) async fn applied_migrations(&self) -> Result<Vec<AppliedMigration>, StorageError> {
        let mut conn = PgConnection::connect_with(&self.admin_options()).await?;
        let rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&mut conn)
                .await?;
        conn.close().await?;
        Ok(rows
            .into_iter()
            .map(|(version, checksum)| AppliedMigration { version, checksum })
            .collect())
    }

    pub(super) async fn apply_migration(&self, step: &MigrationStep) -> Result<(), StorageError> {
        let mut conn = PgConnection::connect_with(&self.admin_options()).await?;
        let mut tx = conn.begin().await?;
        let started = std::time::Instant::now();
        tx.execute(sqlx::raw_sql(&step.sql)).await?;
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, $2, TRUE, $3, $4)",
        )
        .bind(step.version)
        .bind(&step.description)
        .bind(&step.checksum)
        .bind(started.elapsed().as_nanos() as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.grant(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }

    pub(super) async fn begin(
        &self,
        mode: TxMode,
        _budget: Option<CallBudget>,
    ) -> Result<PgTx, StorageError> {
        let mut tx = self.pool.begin().await?;
        if mode == TxMode::ReadOnly {
            tx.execute("SET TRANSACTION READ ONLY").await?;
        }
        Ok(PgTx {
            tx,
            lock_key: self.lock_key,
        })
    }
}

use sha2::Digest;

/// An open PostgreSQL transaction (sqlx rolls it back on drop).
pub struct PgTx {
    tx: sqlx::Transaction<'static, Postgres>,
    lock_key: i64,
}

impl PgTx {
    pub(super) async fn guest_execute(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<u64, GuestError> {
        self.host_execute(sql, params).await.map_err(guest_error)
    }

    pub(super) async fn guest_query(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Rows, GuestError> {
        self.host_query(sql, params).await.map_err(guest_error)
    }

    pub(super) async fn host_execute(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<u64, StorageError> {
        let result = sqlx::query_with(sql, arguments(params)?)
            .execute(&mut *self.tx)
            .await?;
        Ok(result.rows_affected())
    }

    pub(super) async fn host_query(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Rows, StorageError> {
        use futures_util::TryStreamExt;
        let mut stream = sqlx::query_with(sql, arguments(params)?).fetch(&mut *self.tx);
        let mut columns = Vec::new();
        let mut rows = Vec::new();
        while let Some(row) = stream.try_next().await? {
            if rows.len() == MAX_QUERY_ROWS {
                return Err(StorageError::Setup(format!(
                    "query returned more than {MAX_QUERY_ROWS} rows; add a LIMIT"
                )));
            }
            if columns.is_empty() {
                columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
            }
            rows.push(decode_row(&row)?);
        }
        drop(stream);
        if columns.is_empty() {
            // No rows: describe the statement so callers still see column names.
            let described = (&mut *self.tx).describe(sql).await?;
            columns = described
                .columns()
                .iter()
                .map(|c| c.name().to_owned())
                .collect();
        }
        Ok(Rows { columns, rows })
    }

    pub(super) async fn lock_outbox(&mut self) -> Result<(), StorageError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(self.lock_key)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub(super) fn deadline_exceeded(&self) -> bool {
        false
    }

    pub(super) async fn rollback_after_timeout(self) -> Result<(), StorageError> {
        self.rollback().await
    }

    pub(super) async fn commit(self) -> Result<(), StorageError> {
        Ok(self.tx.commit().await?)
    }

    pub(super) async fn rollback(self) -> Result<(), StorageError> {
        Ok(self.tx.rollback().await?)
    }
}

/// SQL NULL whose type the server infers from context (OID 0), so a NULL can be
/// bound to a column of any type.
struct UntypedNull;

impl sqlx::Type<Postgres> for UntypedNull {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(0))
    }
}

impl sqlx::Encode<'_, Postgres> for UntypedNull {
    fn encode_by_ref(
        &self,
        _buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        Ok(sqlx::encode::IsNull::Yes)
    }
}

fn arguments(params: &[SqlValue]) -> Result<PgArguments, StorageError> {
    let mut args = PgArguments::default();
    for p in params {
        let added = match p {
            SqlValue::Null => args.add(UntypedNull),
            SqlValue::Integer(i) => args.add(*i),
            SqlValue::Real(r) => args.add(*r),
            SqlValue::Text(t) => args.add(t.clone()),
            SqlValue::Blob(b) => args.add(b.clone()),
        };
        added.map_err(|e| StorageError::Setup(format!("binding parameter: {e}")))?;
    }
    Ok(args)
}

fn decode_row(row: &PgRow) -> Result<Vec<SqlValue>, StorageError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        if row.try_get_raw(i)?.is_null() {
            values.push(SqlValue::Null);
            continue;
        }
        let value = match column.type_info().name() {
            "INT2" => SqlValue::Integer(row.try_get::<i16, _>(i)?.into()),
            "INT4" => SqlValue::Integer(row.try_get::<i32, _>(i)?.into()),
            "INT8" => SqlValue::Integer(row.try_get::<i64, _>(i)?),
            "FLOAT4" => SqlValue::Real(row.try_get::<f32, _>(i)?.into()),
            "FLOAT8" => SqlValue::Real(row.try_get::<f64, _>(i)?),
            "BOOL" => SqlValue::Integer(row.try_get::<bool, _>(i)?.into()),
            "BYTEA" => SqlValue::Blob(row.try_get::<Vec<u8>, _>(i)?),
            "NUMERIC" => SqlValue::Text(row.try_get::<rust_decimal::Decimal, _>(i)?.to_string()),
            "UUID" => SqlValue::Text(row.try_get::<uuid::Uuid, _>(i)?.to_string()),
            "JSON" | "JSONB" => SqlValue::Text(row.try_get::<serde_json::Value, _>(i)?.to_string()),
            "TIMESTAMPTZ" => SqlValue::Text(
                row.try_get::<time::OffsetDateTime, _>(i)?
                    .format(&time::format_description::well_known::Rfc3339)
                    .map_err(|e| StorageError::Setup(e.to_string()))?,
            ),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" => {
                SqlValue::Text(row.try_get::<String, _>(i)?)
            }
            other => {
                return Err(StorageError::Setup(format!(
                    "column `{}` has type {other}, which plugins cannot read; cast it in the query (e.g. `{}::text`)",
                    column.name(),
                    column.name()
                )));
            }
        };
        values.push(value);
    }
    Ok(values)
}

fn guest_error(e: StorageError) -> GuestError {
    match e {
        StorageError::Postgres(sqlx::Error::Database(db)) => {
            let message = db.message().to_owned();
            match db.code().as_deref() {
                Some(code) if code.starts_with("23") => GuestError::Conflict(message),
                // insufficient_privilege, read_only_sql_transaction
                Some("42501") | Some("25006") => {
                    GuestError::Denied(format!("{message} (plugins may only use their own schema)"))
                }
                _ => GuestError::Invalid(message),
            }
        }
        other => GuestError::Invalid(other.to_string()),
    }
}
