//! Per-plugin migrations: carried in the plugin's manifest, applied with sqlx's
//! migrator in the plugin's own database when the plugin loads.
//!
//! File names follow sqlx: `NNNN_description.sql` for every backend, or
//! `NNNN_description.sqlite.sql` / `NNNN_description.postgres.sql` where the
//! dialects differ. Checksums are verified: an applied migration whose text
//! changed refuses to load.
use crate::storage::schema::host_tables_ddl;
use crate::storage::{BackendKind, Database, StorageError};
use sqlx::Executor;
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use std::borrow::Cow;

/// Why a plugin's migrations could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// A file name does not follow `NNNN_description[.backend].sql`.
    #[error(
        "migration `{0}`: name must look like `0001_description.sql` (optionally `.sqlite.sql` / `.postgres.sql`)"
    )]
    BadName(String),
    /// Two files claim the same version for this backend.
    #[error("migrations `{0}` and `{1}` have the same version")]
    Duplicate(String, String),
    /// An applied migration's text changed.
    #[error(
        "migration `{file}` was already applied to the {plugin} database with different contents; \
         restore its original text and put the change in a new migration with a higher number"
    )]
    Changed {
        /// Plugin name.
        plugin: String,
        /// The edited file.
        file: String,
    },
    /// The database has an applied migration the plugin no longer carries.
    #[error(
        "the {plugin} database has migration version {version} applied, which this plugin build does not carry"
    )]
    Missing {
        /// Plugin name.
        plugin: String,
        /// The version.
        version: i64,
    },
    /// A migration's SQL failed.
    #[error("migration of {plugin} failed: {source}")]
    Failed {
        /// Plugin name.
        plugin: String,
        /// What sqlx said.
        source: MigrateError,
    },
    /// The database could not be reached.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub(crate) struct Planned {
    pub(crate) file: String,
    pub(crate) migration: Migration,
}

pub(crate) fn plan(
    files: &[(String, String)],
    kind: BackendKind,
) -> Result<Vec<Planned>, MigrationError> {
    let mut planned: Vec<Planned> = Vec::new();
    for (file, sql) in files {
        let stem = file
            .strip_suffix(".sql")
            .ok_or_else(|| MigrationError::BadName(file.clone()))?;
        let (stem, backend) = match stem.rsplit_once('.') {
            Some((s, b)) if b == "sqlite" || b == "postgres" => (s, Some(b)),
            Some(_) => return Err(MigrationError::BadName(file.clone())),
            None => (stem, None),
        };
        if backend.is_some_and(|b| b != kind.name()) {
            continue;
        }
        let (version, description) = stem
            .split_once('_')
            .ok_or_else(|| MigrationError::BadName(file.clone()))?;
        let version: i64 = version
            .parse()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| MigrationError::BadName(file.clone()))?;
        if let Some(other) = planned.iter().find(|p| p.migration.version == version) {
            return Err(MigrationError::Duplicate(other.file.clone(), file.clone()));
        }
        planned.push(Planned {
            file: file.clone(),
            migration: Migration::new(
                version,
                Cow::Owned(description.replace('_', " ")),
                MigrationType::Simple,
                Cow::Owned(sql.clone()),
                false,
            ),
        });
    }
    planned.sort_by_key(|p| p.migration.version);
    Ok(planned)
}

/// Whether the database may already carry migrations this build does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A new or newer build: every applied migration must be one it carries.
    Forward,
    /// A rollback (or a restart on a rolled-back version): the newer version's
    /// expand migrations stay applied, which an older build tolerates.
    AllowNewerSchema,
}

/// Creates the host tables and applies the plugin's migrations.
pub async fn run(
    plugin: &str,
    db: &Database,
    files: &[(String, String)],
    mode: Mode,
) -> Result<(), MigrationError> {
    let planned = plan(files, db.kind())?;
    let migrator = Migrator {
        migrations: Cow::Owned(planned.iter().map(|p| p.migration.clone()).collect()),
        ignore_missing: mode == Mode::AllowNewerSchema,
        locking: true,
        no_tx: false,
    };
    let ddl = host_tables_ddl(db.kind());
    // Through a one-connection pool: `Migrator::run(&mut conn)` makes callers'
    // futures non-`Send` (a higher-ranked `Acquire` bound), and deploys run in
    // HTTP handlers, which must be `Send`.
    let result = match db {
        Database::Sqlite(sqlite) => {
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect(&sqlite.sqlx_url())
                .await
                .map_err(StorageError::from)?;
            pool.execute(sqlx::raw_sql(&ddl))
                .await
                .map_err(StorageError::from)?;
            let result = migrator.run(&pool).await;
            pool.close().await;
            result
        }
        Database::Postgres(pg) => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect_with(pg.admin_options())
                .await
                .map_err(StorageError::from)?;
            pool.execute(sqlx::raw_sql(&ddl))
                .await
                .map_err(StorageError::from)?;
            let result = migrator.run(&pool).await;
            if result.is_ok() {
                let mut conn = pool.acquire().await.map_err(StorageError::from)?;
                pg.grant(&mut conn).await?;
            }
            pool.close().await;
            result
        }
    };
    result.map_err(|e| explain(plugin, &planned, e))
}

fn explain(plugin: &str, planned: &[Planned], e: MigrateError) -> MigrationError {
    let file_of = |v: i64| {
        planned
            .iter()
            .find(|p| p.migration.version == v)
            .map_or_else(|| format!("version {v}"), |p| p.file.clone())
    };
    match e {
        MigrateError::VersionMismatch(v) => MigrationError::Changed {
            plugin: plugin.to_owned(),
            file: file_of(v),
        },
        MigrateError::VersionMissing(version) => MigrationError::Missing {
            plugin: plugin.to_owned(),
            version,
        },
        source => MigrationError::Failed {
            plugin: plugin.to_owned(),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (n.to_string(), format!("-- {n}")))
            .collect()
    }

    #[test]
    fn backend_variants_are_selected() {
        let all = files(&["0002_b.sqlite.sql", "0001_a.sql", "0002_b.postgres.sql"]);
        let sqlite = plan(&all, BackendKind::Sqlite).unwrap();
        assert_eq!(
            sqlite.iter().map(|p| p.file.as_str()).collect::<Vec<_>>(),
            ["0001_a.sql", "0002_b.sqlite.sql"]
        );
        let pg = plan(&all, BackendKind::Postgres).unwrap();
        assert_eq!(pg[1].file, "0002_b.postgres.sql");
    }

    #[test]
    fn bad_names_and_duplicates_are_refused() {
        assert!(matches!(
            plan(&files(&["a.sql"]), BackendKind::Sqlite),
            Err(MigrationError::BadName(_))
        ));
        assert!(matches!(
            plan(&files(&["0001_a.txt"]), BackendKind::Sqlite),
            Err(MigrationError::BadName(_))
        ));
        assert!(matches!(
            plan(&files(&["0001_a.mysql.sql"]), BackendKind::Sqlite),
            Err(MigrationError::BadName(_))
        ));
        assert!(matches!(
            plan(&files(&["0001_a.sql", "0001_b.sql"]), BackendKind::Sqlite),
            Err(MigrationError::Duplicate(_, _))
        ));
    }
}
