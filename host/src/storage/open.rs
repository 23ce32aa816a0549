//! Opening a plugin's database on the backend its configuration names.
use super::postgres::PgDb;
use super::sqlite::SqliteDb;
use super::{BackendKind, Database, StorageError};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;

/// A storage backend choice (`[storage]`, `[plugins.<name>.storage]`); a
/// field left out takes its default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite` (the default) or `postgres`.
    pub backend: BackendKind,
    /// PostgreSQL admin URL (required for `postgres`).
    pub url: Option<String>,
    /// Prefix of each plugin's schema and role on PostgreSQL (`mercato_`).
    pub namespace: String,
    /// Pool size per plugin on PostgreSQL (8).
    pub max_connections: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: BackendKind::Sqlite,
            url: None,
            namespace: "mercato_".into(),
            max_connections: 8,
        }
    }
}

impl StorageConfig {
    /// Opens (and on PostgreSQL provisions) `plugin`'s database: a file in
    /// `data_dir` on SQLite, whose statements may build values of at most
    /// `max_query_bytes`; a schema and role on PostgreSQL.
    pub async fn open(
        &self,
        plugin: &str,
        data_dir: &Path,
        max_query_bytes: usize,
    ) -> Result<Database, StorageError> {
        match self.backend {
            BackendKind::Postgres => {
                let url = self
                    .url
                    .as_deref()
                    .ok_or_else(|| StorageError::Setup("postgres backend without url".into()))?;
                let db = PgDb::open(url, &self.namespace, plugin, self.max_connections).await?;
                Ok(Database::Postgres(Arc::new(db)))
            }
            BackendKind::Sqlite => {
                let path = data_dir.join(format!("{plugin}.db"));
                let db = SqliteDb::open_limited(&path, max_query_bytes)?;
                Ok(Database::Sqlite(Arc::new(db)))
            }
        }
    }
}
