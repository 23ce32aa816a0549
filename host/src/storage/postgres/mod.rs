//! PostgreSQL backend: per plugin, a data schema owned by an owner role, a host
//! schema owned by the admin, and a runtime role the calls log in as.
//!
//! - `provision.rs`: roles, schemas, grants, the host tables and their guard
//!   (writes need the host key), the upgrade of earlier installs.
//! - `tx.rs`: a call's transaction: deadlines, cancelling abandoned statements,
//!   the host key set only for the host's writes.
//! - `guest_sql.rs`: what plugin SQL may be sent at all.
//! - `host_sql.rs`: host SQL qualified with the host schema.
//! - `migrations.rs`: migrations run as the owner role, statement by statement.
//! - `session.rs`: the host key, and resetting pooled sessions.
mod guest_sql;
mod host_sql;
mod migrations;
mod names;
mod provision;
mod read;
mod session;
mod tx;
mod values;

pub use migrations::MIGRATION_STATEMENT_TIMEOUT;
pub use names::schema_name;
pub use tx::PgTx;

use super::{AppliedMigration, CallBudget, MigrationStep, StorageError, TxMode};
use guest_sql::GuestSql;
use host_sql::HostSql;
use names::{Names, quote};
use session::HostKey;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Connections of the small admin pool that cancels abandoned statements (and
/// terminates stuck migrations); it connects only when needed.
const ADMIN_POOL_SIZE: u32 = 2;

/// A plugin's PostgreSQL database, reached through its runtime role.
pub struct PgDb {
    pool: PgPool,
    shared: Arc<Shared>,
    owner_password: String,
    migration_timeout: Duration,
}

/// What every transaction of the plugin needs.
struct Shared {
    names: Names,
    /// The admin connection options (the configured URL).
    admin: PgConnectOptions,
    admin_pool: PgPool,
    key: HostKey,
    search_path: String,
    /// Stages a call's events (arrays of their columns).
    stage_sql: String,
    /// Numbers up to $1 staged events; returns how many and the new head.
    number_sql: String,
    host_sql: HostSql,
    guest_sql: GuestSql,
}

impl PgDb {
    /// Provisions (idempotently) the roles and schemas for `plugin` and
    /// connects as its runtime role.
    pub async fn open(
        url: &str,
        namespace: &str,
        plugin: &str,
        max_connections: u32,
    ) -> Result<Self, StorageError> {
        let names = Names::new(namespace, plugin)?;
        let admin = PgConnectOptions::from_str(url)?;
        let provisioned = provision::open(&admin, &names).await?;
        let search_path = names.search_path();
        let runtime = admin
            .clone()
            .username(&names.runtime)
            .password(&provisioned.runtime_password)
            .options([("search_path", search_path.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            // No ping per acquire (a round trip per call): `begin_tx` takes
            // another connection if the BEGIN finds this one closed.
            .test_before_acquire(false)
            .connect_with(runtime)
            .await?;
        let admin_pool = PgPoolOptions::new()
            .max_connections(ADMIN_POOL_SIZE)
            .min_connections(0)
            .idle_timeout(Duration::from_secs(30))
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(admin.clone());
        let shared = Shared {
            stage_sql: provision::stage_sql(&names),
            number_sql: provision::number_sql(&names),
            host_sql: HostSql::new(&names.host_schema),
            guest_sql: GuestSql::default(),
            key: provisioned.key,
            search_path,
            names,
            admin,
            admin_pool,
        };
        Ok(PgDb {
            pool,
            shared: Arc::new(shared),
            owner_password: provisioned.owner_password,
            migration_timeout: MIGRATION_STATEMENT_TIMEOUT,
        })
    }

    /// The same database with another limit for each migration statement.
    pub fn with_migration_timeout(mut self, timeout: Duration) -> Self {
        self.migration_timeout = timeout;
        self
    }

    /// Drops the schemas and roles of `plugin` (tests and tear-down).
    pub async fn drop_schema(url: &str, namespace: &str, plugin: &str) -> Result<(), StorageError> {
        let names = Names::new(namespace, plugin)?;
        provision::drop_all(&PgConnectOptions::from_str(url)?, &names).await
    }

    pub(super) async fn prepare_host_tables(&self) -> Result<(), StorageError> {
        provision::host_tables(&self.shared.admin, &self.shared.names, &self.shared.key).await
    }

    /// Drops every object in the plugin's schema (on the admin connection:
    /// the runtime role owns none of them) and clears the host records of the
    /// plugin's data (with the host key), in one transaction.
    pub(super) async fn wipe(&self) -> Result<(), StorageError> {
        use sqlx::{Connection, Executor};
        let names = &self.shared.names;
        let mut conn = sqlx::PgConnection::connect_with(&self.shared.admin).await?;
        let mut tx = conn.begin().await?;
        // Relations first (CASCADE takes their indexes, triggers, constraints
        // and owned sequences), then routines and free-standing types.
        let drops: Vec<String> = sqlx::query_scalar(
            "SELECT statement FROM ( \
               SELECT 1 AS step, format('DROP %s IF EXISTS %I.%I CASCADE', \
                 CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' \
                   WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'c' THEN 'TYPE' \
                   ELSE 'TABLE' END, n.nspname, c.relname) AS statement \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
               WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c') \
               UNION ALL \
               SELECT 2, format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure) \
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 \
               UNION ALL \
               SELECT 3, format('DROP TYPE IF EXISTS %I.%I CASCADE', n.nspname, t.typname) \
               FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
               WHERE n.nspname = $1 AND t.typtype IN ('e', 'd', 'r', 'm') \
             ) s ORDER BY step, statement",
        )
        .bind(&names.schema)
        .fetch_all(&mut *tx)
        .await?;
        for drop in drops {
            tx.execute(drop.as_str()).await?;
        }
        sqlx::query("SELECT pg_catalog.set_config('mercato.host_key', $1, true)")
            .bind(self.shared.key.expose())
            .execute(&mut *tx)
            .await?;
        for table in super::schema::WIPED_WITH_PLUGIN_DATA {
            tx.execute(format!("DELETE FROM {}.{table}", quote(&names.host_schema)).as_str())
                .await?;
        }
        sqlx::query(HostKey::CLEAR).execute(&mut *tx).await?;
        tx.commit().await?;
        conn.close().await?;
        Ok(())
    }

    pub(super) async fn applied_migrations(&self) -> Result<Vec<AppliedMigration>, StorageError> {
        self.applied().await
    }

    pub(super) async fn apply_migration(&self, step: &MigrationStep) -> Result<(), StorageError> {
        self.apply(step).await
    }

    pub(super) async fn begin(
        &self,
        mode: TxMode,
        budget: Option<CallBudget>,
    ) -> Result<PgTx, StorageError> {
        self.begin_tx(mode, budget).await
    }

    async fn grant_runtime(&self) -> Result<(), StorageError> {
        provision::grant_runtime(&self.shared.admin, &self.shared.names).await
    }
}
