//! The registry every host of a cluster shares: deployed component bytes by
//! sha256 and the deployment records (version stacks, removals), in the
//! cluster's PostgreSQL schema, with a revision that grows with each change.
use super::Cluster;

impl Cluster {
    /// Keeps a component's bytes under their sha256 (once: bytes already
    /// there are not sent again).
    pub async fn put_blob(&self, sha256: &str, bytes: &[u8]) -> Result<(), sqlx::Error> {
        let kept = format!(
            "SELECT EXISTS (SELECT 1 FROM \"{}\".registry_blobs WHERE sha256 = $1)",
            self.0.schema
        );
        let kept: bool = sqlx::query_scalar(&kept)
            .bind(sha256)
            .fetch_one(&self.0.pool)
            .await?;
        if kept {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO \"{}\".registry_blobs (sha256, bytes) VALUES ($1, $2) \
             ON CONFLICT (sha256) DO NOTHING",
            self.0.schema
        );
        sqlx::query(&sql)
            .bind(sha256)
            .bind(bytes)
            .execute(&self.0.pool)
            .await?;
        Ok(())
    }

    /// The bytes kept under `sha256`.
    pub async fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
        let sql = format!(
            "SELECT bytes FROM \"{}\".registry_blobs WHERE sha256 = $1",
            self.0.schema
        );
        sqlx::query_scalar(&sql)
            .bind(sha256)
            .fetch_optional(&self.0.pool)
            .await
    }

    /// The shared records and their revision (`None` before the first deploy).
    pub async fn records(&self) -> Result<Option<(u64, serde_json::Value)>, sqlx::Error> {
        let sql = format!(
            "SELECT revision, records FROM \"{}\".registry WHERE id = 1",
            self.0.schema
        );
        let row: Option<(i64, sqlx::types::Json<serde_json::Value>)> =
            sqlx::query_as(&sql).fetch_optional(&self.0.pool).await?;
        Ok(row.map(|(revision, records)| (u64::try_from(revision).unwrap_or(0), records.0)))
    }

    /// Replaces the shared records, and tells every host: the new revision.
    pub async fn save_records(&self, records: &serde_json::Value) -> Result<u64, sqlx::Error> {
        let sql = format!(
            "INSERT INTO \"{s}\".registry AS r (id, revision, records) VALUES (1, 1, $1) \
             ON CONFLICT (id) DO UPDATE SET revision = r.revision + 1, records = excluded.records \
             RETURNING revision",
            s = self.0.schema
        );
        let revision: i64 = sqlx::query_scalar(&sql)
            .bind(sqlx::types::Json(records))
            .fetch_one(&self.0.pool)
            .await?;
        let revision = u64::try_from(revision).unwrap_or(0);
        self.bus().notify("registry", "all", revision).await;
        Ok(revision)
    }
}
