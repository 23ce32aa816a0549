//! Wiping a plugin whose database holds only process state (the seeds'
//! checkout: "can be wiped without data loss"): its own tables are dropped
//! and its migrations run again, while it keeps serving the same version.
//! Its outbox, cursors and queued outbound requests stay (see
//! [`crate::storage::Database::wipe`]), so events it emitted still reach their
//! subscribers and it goes on consuming where it was.
use super::{DeployError, Deployer};
use crate::migrate::Mode;
use std::time::Duration;

/// What a wipe did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Wiped {
    /// The plugin.
    pub name: String,
    /// Its version, serving on the emptied database.
    pub version: String,
    /// Migrations applied again.
    pub migrations: usize,
    /// When.
    pub wiped_at: String,
}

impl Deployer {
    /// Empties `name`'s database and migrates it again. Only plugins the
    /// configuration marks `wipeable` (by default the built-in `checkout`).
    /// Calls in flight on the plugin may fail while it happens; none of
    /// another plugin's data is touched.
    pub async fn wipe(&self, name: &str) -> Result<Wiped, DeployError> {
        // Not during a deploy or rollback of any plugin.
        let _deploying = self.deploying.lock().await;
        let plugin = self
            .registry
            .get(name)
            .ok_or_else(|| DeployError::Unknown(name.to_owned()))?;
        if !self.config.wipeable(name) {
            return Err(DeployError::NotWipeable(name.to_owned()));
        }
        let storage = |source| {
            DeployError::Load(super::PluginLoadError::Storage {
                plugin: name.to_owned(),
                source,
            })
        };
        plugin.slot.db.wipe().await.map_err(storage)?;
        let migrations = &plugin.compiled.manifest.migrations;
        crate::migrate::run_within(
            name,
            &plugin.slot.db,
            migrations,
            Mode::Forward,
            Duration::from_millis(self.config.migration_deadline_ms),
        )
        .await
        .map_err(|e| DeployError::Load(e.into()))?;
        tracing::warn!(plugin = %name, version = %plugin.version, "plugin database wiped and migrated again");
        Ok(Wiped {
            name: name.to_owned(),
            version: plugin.version.clone(),
            migrations: migrations.len(),
            wiped_at: crate::clock::now_rfc3339(),
        })
    }
}
