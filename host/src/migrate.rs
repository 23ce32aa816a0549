//! Per-plugin migrations: carried in the plugin's manifest, applied in the
//! plugin's own database when the plugin loads.
//!
//! A migration is plugin code, so it runs in the sandbox like the plugin's
//! calls: statement by statement under the backend's rules for plugin SQL
//! (SQLite's authorizer; on PostgreSQL the plugin's owner role), each file in
//! one transaction together with its bookkeeping row.
//!
//! File names follow sqlx: `NNNN_description.sql` for every backend, or
//! `NNNN_description.sqlite.sql` / `NNNN_description.postgres.sql` where the
//! dialects differ. The bookkeeping table is sqlx's (`_sqlx_migrations`, SHA-384
//! checksums), so databases migrated by earlier builds carry on. Checksums are
//! verified: an applied migration whose text changed refuses to load.
use crate::storage::{BackendKind, Database, MigrationStep, StorageError};
use sha2::{Digest, Sha384};
use std::time::Duration;

/// How long one migration file may run unless configured otherwise.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

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
    /// A migration's SQL failed or was refused; nothing of it was applied.
    #[error("migration `{file}` of {plugin} failed: {source}")]
    Failed {
        /// Plugin name.
        plugin: String,
        /// The file.
        file: String,
        /// What the database or the sandbox said.
        source: StorageError,
    },
    /// The database could not be reached.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub(crate) struct Planned {
    pub(crate) file: String,
    pub(crate) step: MigrationStep,
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
        if let Some(other) = planned.iter().find(|p| p.step.version == version) {
            return Err(MigrationError::Duplicate(other.file.clone(), file.clone()));
        }
        planned.push(Planned {
            file: file.clone(),
            step: MigrationStep {
                version,
                description: description.replace('_', " "),
                file: file.clone(),
                sql: sql.clone(),
                checksum: Sha384::digest(sql.as_bytes()).to_vec(),
                deadline: DEFAULT_DEADLINE,
            },
        });
    }
    planned.sort_by_key(|p| p.step.version);
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

/// Creates the host tables and applies the plugin's pending migrations, each
/// within [`DEFAULT_DEADLINE`].
pub async fn run(
    plugin: &str,
    db: &Database,
    files: &[(String, String)],
    mode: Mode,
) -> Result<(), MigrationError> {
    run_within(plugin, db, files, mode, DEFAULT_DEADLINE).await
}

/// [`run`], each migration within `deadline`.
pub async fn run_within(
    plugin: &str,
    db: &Database,
    files: &[(String, String)],
    mode: Mode,
    deadline: Duration,
) -> Result<(), MigrationError> {
    let mut planned = plan(files, db.kind())?;
    for p in &mut planned {
        p.step.deadline = deadline;
    }
    db.prepare_host_tables().await?;
    let applied = db.applied_migrations().await?;
    for done in &applied {
        match planned.iter().find(|p| p.step.version == done.version) {
            Some(p) if p.step.checksum != done.checksum => {
                return Err(MigrationError::Changed {
                    plugin: plugin.to_owned(),
                    file: p.file.clone(),
                });
            }
            Some(_) => {}
            None if mode == Mode::AllowNewerSchema => {}
            None => {
                return Err(MigrationError::Missing {
                    plugin: plugin.to_owned(),
                    version: done.version,
                });
            }
        }
    }
    for p in planned
        .iter()
        .filter(|p| !applied.iter().any(|a| a.version == p.step.version))
    {
        db.apply_migration(&p.step)
            .await
            .map_err(|source| MigrationError::Failed {
                plugin: plugin.to_owned(),
                file: p.file.clone(),
                source,
            })?;
    }
    Ok(())
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
