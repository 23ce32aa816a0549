//! Removing a plugin or rule from service. Its routes answer 404, its event
//! jobs stop, and it is not loaded again at the next start (the embedded one
//! neither) until a deploy brings it back. Nothing is deleted: its database
//! stays where it was (the removal names it) with its outbox and cursors, so
//! a later deploy of the same name resumes on that data and its subscribers
//! resume where they stopped.
use super::store::Removal;
use super::{DeployError, Deployer, generation, registry_error};

/// What a removal did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Removed {
    /// The plugin or rule.
    pub name: String,
    /// `plugin` or `rule`.
    pub kind: &'static str,
    /// The version that served until now.
    pub version: String,
    /// The store its data is kept in (a plugin; a rule has none).
    pub archived_as: Option<String>,
    /// Plugins that subscribed to it and, the removal being forced, receive
    /// nothing from it any more.
    pub unsubscribed: Vec<String>,
    /// When.
    pub removed_at: String,
}

impl Deployer {
    /// Stops serving plugin or rule `name` on this host: no delivery to it is
    /// in hand once its gate is ours; then no new one starts, and no new
    /// request finds it.
    pub(super) async fn take_out_of_service(&self, name: &str) {
        if self.registry.get(name).is_some() {
            self.relay
                .paused(name, async {
                    self.registry.remove(name);
                    self.relay.retire(name);
                })
                .await;
        } else {
            self.rules.remove(name);
        }
    }

    /// Takes plugin or rule `name` out of service. A plugin others subscribe
    /// to is refused unless `force`.
    pub async fn remove(&self, name: &str, force: bool) -> Result<Removed, DeployError> {
        let _deploying = self.deploying.lock().await;
        let _cluster = self.cluster_exclusive().await?;
        self.follow_shared().await?;
        let removed_at = crate::clock::now_rfc3339();
        let (removed, sha256) = if let Some(plugin) = self.registry.get(name) {
            let subscribers: Vec<String> = self
                .registry
                .all()
                .iter()
                .filter(|p| p.name != plugin.name && p.sources().iter().any(|s| s == name))
                .map(|p| p.name.to_string())
                .collect();
            if !subscribers.is_empty() && !force {
                return Err(DeployError::HasSubscribers {
                    name: name.to_owned(),
                    subscribers,
                });
            }
            let generation = generation::current(&self.config.data_dir, name)
                .map_err(|e| DeployError::Registry(e.to_string()))?;
            // No delivery to it is in hand once its gate is ours; then no
            // new one starts, and no new request finds it.
            self.take_out_of_service(name).await;
            let removed = Removed {
                name: name.to_owned(),
                kind: "plugin",
                version: plugin.version.clone(),
                archived_as: Some(generation::store_name(name, generation)),
                unsubscribed: subscribers,
                removed_at: removed_at.clone(),
            };
            (removed, plugin.sha256.clone())
        } else if let Some(rule) = self.rules.remove(name) {
            let removed = Removed {
                name: name.to_owned(),
                kind: "rule",
                version: rule.version.clone(),
                archived_as: None,
                unsubscribed: Vec::new(),
                removed_at: removed_at.clone(),
            };
            (removed, rule.sha256.clone())
        } else {
            return Err(DeployError::Unknown(name.to_owned()));
        };
        let mut deployments = self.store.deployments().map_err(registry_error)?;
        deployments.removed.insert(
            name.to_owned(),
            Removal {
                version: removed.version.clone(),
                sha256,
                removed_at,
                archived_as: removed.archived_as.clone().unwrap_or_default(),
            },
        );
        self.store.save(&deployments).map_err(registry_error)?;
        self.share().await?;
        tracing::warn!(name, kind = removed.kind, version = %removed.version, forced = !removed.unsubscribed.is_empty(), "removed");
        Ok(removed)
    }
}
