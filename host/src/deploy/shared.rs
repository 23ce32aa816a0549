//! In a cluster, every host serves the same versions: a deploy, rollback or
//! removal through any host is written to the cluster's shared registry
//! (`cluster::registry`), and every other host follows it. Deploys are
//! serialised across the cluster, so two hosts never migrate one plugin at
//! once; a host starting later takes the shared records as its own first.
use super::store::Deployments;
use super::{DeployError, Deployer, Mode};
use futures_util::StreamExt;
use std::time::Duration;

/// A follower checks the shared revision this often even without a message.
const FOLLOW_POLL: Duration = Duration::from_secs(2);

fn shared_error(e: impl std::fmt::Display) -> DeployError {
    DeployError::Registry(format!("the cluster's shared registry: {e}"))
}

impl Deployer {
    /// Holds every host's deploys off until dropped (`None` alone).
    pub(super) async fn cluster_exclusive(
        &self,
    ) -> Result<Option<crate::cluster::Exclusive>, DeployError> {
        match &self.cluster {
            Some(cluster) => Ok(Some(
                cluster.exclusive("deploy").await.map_err(shared_error)?,
            )),
            None => Ok(None),
        }
    }

    /// After a switch here: the bytes of every version the records name, and
    /// the records, into the shared registry; the other hosts follow.
    pub(super) async fn share(&self) -> Result<(), DeployError> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let deployments = self.store.deployments().map_err(super::registry_error)?;
        let mut shas: Vec<String> = Vec::new();
        for history in deployments.plugins.values() {
            shas.extend(history.stack.iter().map(|r| r.sha256.clone()));
        }
        shas.extend(deployments.removed.values().map(|r| r.sha256.clone()));
        for sha in shas {
            if let Ok(bytes) = self.store.get(&sha) {
                cluster.put_blob(&sha, &bytes).await.map_err(shared_error)?;
            }
        }
        let records = serde_json::to_value(&deployments).map_err(shared_error)?;
        let revision = cluster.save_records(&records).await.map_err(shared_error)?;
        self.followed
            .store(revision, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Makes the shared records this host's own (their bytes too), without
    /// loading anything: at start, before the deployed versions load.
    pub async fn adopt_shared(&self) -> Result<(), DeployError> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let Some((revision, records)) = cluster.records().await.map_err(shared_error)? else {
            return Ok(());
        };
        let deployments: Deployments = serde_json::from_value(records).map_err(shared_error)?;
        for record in deployments.plugins.values().filter_map(|h| h.stack.last()) {
            if self.store.get(&record.sha256).is_err() {
                let bytes = cluster
                    .blob(&record.sha256)
                    .await
                    .map_err(shared_error)?
                    .ok_or_else(|| shared_error(format!("no bytes for {}", record.sha256)))?;
                self.store
                    .put(&record.sha256, &bytes)
                    .map_err(super::registry_error)?;
            }
        }
        self.store
            .save(&deployments)
            .map_err(super::registry_error)?;
        self.followed
            .store(revision, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Brings this host to the shared records when they are newer than what
    /// it follows: loads each plugin or rule whose serving version changed,
    /// takes removed ones out of service here (their data was archived by
    /// the host that removed them).
    pub(super) async fn follow_shared(&self) -> Result<(), DeployError> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let Some((revision, _)) = cluster.records().await.map_err(shared_error)? else {
            return Ok(());
        };
        if revision <= self.followed.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        self.adopt_shared().await?;
        let deployments = self.store.deployments().map_err(super::registry_error)?;
        for (name, history) in &deployments.plugins {
            let Some(current) = history.stack.last() else {
                continue;
            };
            if deployments.removed.contains_key(name)
                || self
                    .running_version(name)
                    .is_some_and(|r| r.sha256 == current.sha256)
            {
                continue;
            }
            let bytes = self
                .store
                .get(&current.sha256)
                .map_err(super::registry_error)?;
            let candidate = self.prepare(&bytes).await?;
            // The host that deployed it migrated already; a rolled-back
            // version runs on the newer schema.
            self.activate(candidate, Mode::AllowNewerSchema).await?;
            tracing::info!(plugin = %name, version = %current.version, revision, "following a deploy made through another host");
        }
        for name in deployments.removed.keys() {
            if self.is_running(name) {
                self.take_out_of_service(name).await;
                tracing::info!(plugin = %name, revision, "following a removal made through another host");
            }
        }
        self.relay.ensure();
        Ok(())
    }

    /// Follows the shared registry until the host stops: at each message
    /// from a host that changed it, and every [`FOLLOW_POLL`].
    pub fn spawn_follower(&self) -> Option<tokio::task::JoinHandle<()>> {
        let cluster = self.cluster.clone()?;
        let deployer = self.clone();
        Some(tokio::spawn(async move {
            let mut changes = match cluster.bus().notifications("registry").await {
                Ok(changes) => Some(changes),
                Err(e) => {
                    tracing::warn!(error = %e, "not told of deploys through other hosts; polling");
                    None
                }
            };
            loop {
                tokio::select! {
                    _ = deployer.cancel.cancelled() => return,
                    _ = tokio::time::sleep(FOLLOW_POLL) => {}
                    Some(_) = async { match &mut changes { Some(c) => c.next().await, None => None } } => {}
                }
                let _deploying = deployer.deploying.lock().await;
                if let Err(e) = deployer.follow_shared().await {
                    tracing::error!(error = %e, "following the cluster's registry failed; retrying");
                }
            }
        }))
    }
}
