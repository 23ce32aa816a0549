//! Hot swap: deploy a new version of a plugin while traffic flows, and roll it
//! back. A deploy compiles off the request path, checks the component (world,
//! imports, name, signature), refuses destructive migrations that are not marked
//! as contract steps, applies the migrations, records the version durably and
//! then switches: new calls use the new version, calls in flight finish on the
//! old one, and each event is handled by whichever version is current when its
//! delivery starts (its cursor makes it once).
mod checks;
mod compiled;
pub mod generation;
mod load;
mod rebuild;
mod remove;
mod shared;
pub mod signing;
pub mod store;
mod watch;
mod wipe;

pub use checks::CONTRACT_MARKER;
pub use load::{Candidate, Component, LoadFailure, PluginLoadError};
pub use rebuild::{RebuildError, RebuildStatus};
pub use remove::Removed;
pub use watch::{Watcher, watch};
pub use wipe::Wiped;

use crate::config::Config;
use crate::events::Relay;
use crate::migrate::{Mode, plan};
use crate::plugin::{PluginSandbox, Registry};
use crate::rules::Rules;
use crate::runtime::{Engine, LoadError};
use crate::storage::StorageError;
use sha2::Digest;
use std::ops::Deref;
use std::sync::Arc;
use store::Record;
use tokio_util::sync::CancellationToken;

/// Loads, deploys and rolls back plugins and rules; cheap to clone.
#[derive(Clone)]
pub struct Deployer(Arc<Inner>);

/// What loading and switching versions needs.
pub struct Inner {
    config: Arc<Config>,
    engine: Engine,
    sandbox: Arc<PluginSandbox>,
    rules: Arc<Rules>,
    registry: Arc<Registry>,
    relay: Relay,
    /// Deployed component bytes and version stacks.
    store: store::Store,
    /// Their compiled code, so a start or a rollback need not compile.
    code: compiled::CodeCache,
    /// Keys whose signatures deploys must carry (none: unsigned accepted).
    trusted_keys: Vec<ed25519_dalek::VerifyingKey>,
    /// Serialises deploys and rollbacks.
    deploying: tokio::sync::Mutex<()>,
    /// The last rebuild of each read model, and its progress.
    rebuilds: std::sync::Mutex<
        std::collections::HashMap<String, tokio::sync::watch::Sender<RebuildStatus>>,
    >,
    /// Fires when the host stops (ends `--watch`).
    cancel: CancellationToken,
    /// In a cluster: the shared registry every host follows (`shared.rs`).
    cluster: Option<crate::cluster::Cluster>,
    /// The shared registry's revision this host serves.
    followed: std::sync::atomic::AtomicU64,
}

impl Deref for Deployer {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The handles a [`Deployer`] works with.
pub struct Parts {
    /// Effective configuration.
    pub config: Arc<Config>,
    /// The engine components compile on.
    pub engine: Engine,
    /// The domain plugins' sandbox.
    pub sandbox: Arc<PluginSandbox>,
    /// The running rules.
    pub rules: Arc<Rules>,
    /// The running plugins.
    pub registry: Arc<Registry>,
    /// Started for new plugins and subscriptions after each switch.
    pub relay: Relay,
    /// Keys whose signatures deploys must carry.
    pub trusted_keys: Vec<ed25519_dalek::VerifyingKey>,
    /// Fires when the host stops.
    pub cancel: CancellationToken,
    /// Counts components compiled and loaded from the compiled cache.
    pub compilations: prometheus::IntCounterVec,
    /// The cluster this host belongs to, if any.
    pub cluster: Option<crate::cluster::Cluster>,
}

impl Deployer {
    /// A deployer keeping its registry in `config.data_dir`.
    pub fn new(parts: Parts) -> Self {
        let store = store::Store::new(&parts.config.data_dir);
        let code = compiled::CodeCache::open(
            parts.engine.clone(),
            store.compiled_dir(),
            parts.compilations,
        );
        Deployer(Arc::new(Inner {
            store,
            code,
            config: parts.config,
            engine: parts.engine,
            sandbox: parts.sandbox,
            rules: parts.rules,
            registry: parts.registry,
            relay: parts.relay,
            trusted_keys: parts.trusted_keys,
            deploying: tokio::sync::Mutex::new(()),
            rebuilds: Default::default(),
            cancel: parts.cancel,
            cluster: parts.cluster,
            followed: Default::default(),
        }))
    }
}

/// Why a deploy or rollback was refused. Each leaves the running version serving.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Signed plugins are required and the signature is missing or wrong.
    #[error(transparent)]
    Signature(#[from] signing::SignatureError),
    /// The upload could not be loaded.
    #[error(transparent)]
    Load(PluginLoadError),
    /// The component is for another plugin.
    #[error("the component is plugin `{found}`, not `{expected}`")]
    NameMismatch {
        /// Name in the URL.
        expected: String,
        /// Name in the manifest.
        found: String,
    },
    /// A pending migration drops or renames data without the contract marker.
    #[error(
        "migration `{file}` is destructive (`{statement}`); expand → migrate → contract: ship it only once no running version needs the data, starting the file with `{CONTRACT_MARKER}`"
    )]
    Destructive {
        /// The migration file.
        file: String,
        /// The offending statement.
        statement: String,
    },
    /// A pending migration could not be read well enough to check it.
    #[error("migration `{file}` cannot be checked for destructive statements: {source}")]
    Unreadable {
        /// The migration file.
        file: String,
        /// Why.
        source: checks::Unreadable,
    },
    /// There is no earlier version to return to.
    #[error("plugin `{0}` has no previous version to roll back to")]
    NoPrevious(String),
    /// No plugin of that name runs.
    #[error("no plugin named `{0}` is loaded")]
    Unknown(String),
    /// Other plugins subscribe to the one to remove.
    #[error(
        "plugin `{name}` has subscribers ({}); remove them first, or force the removal (`?force=true`, `mercato remove --force`) and they receive nothing from it any more",
        subscribers.join(", ")
    )]
    HasSubscribers {
        /// The plugin to remove.
        name: String,
        /// The plugins subscribing to its events.
        subscribers: Vec<String>,
    },
    /// The plugin's data is not process state the operator allowed to wipe.
    #[error(
        "plugin `{0}` is not wipeable; only plugins whose database holds no business truth may be (`[plugins.{0}] wipeable = true`)"
    )]
    NotWipeable(String),
    /// Only a read model can be rebuilt by replay.
    #[error(
        "plugin `{0}` is not a read model (its manifest does not declare one), so it cannot be rebuilt by replay"
    )]
    NotAReadModel(String),
    /// A rebuild of the plugin is already running.
    #[error("a rebuild of `{0}` is already running")]
    RebuildRunning(String),
    /// A source's history was pruned: a replay would build a partial view.
    #[error("{0}")]
    HistoryPruned(String),
    /// The registry on disk could not be read or written.
    #[error("plugin registry: {0}")]
    Registry(String),
}

impl DeployError {
    /// HTTP status and stable error code.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            DeployError::Signature(signing::SignatureError::Missing) => (401, "unsigned_component"),
            DeployError::Signature(_) => (403, "bad_signature"),
            DeployError::Load(PluginLoadError::Load(LoadError::NotAComponent(_))) => {
                (400, "not_a_component")
            }
            DeployError::Load(PluginLoadError::Load(LoadError::ForbiddenImport { .. })) => {
                (422, "forbidden_import")
            }
            DeployError::Load(PluginLoadError::Duplicate(_)) => (409, "name_taken"),
            DeployError::Load(PluginLoadError::Load(_)) => (422, "wrong_world"),
            DeployError::Load(PluginLoadError::Manifest(_)) => (422, "invalid_manifest"),
            DeployError::Load(PluginLoadError::Migration(_)) => (422, "migration_failed"),
            DeployError::Load(_) | DeployError::Registry(_) => (500, "deploy_failed"),
            DeployError::NameMismatch { .. } => (400, "name_mismatch"),
            DeployError::Destructive { .. } => (422, "destructive_migration"),
            DeployError::Unreadable { .. } => (422, "unreadable_migration"),
            DeployError::NoPrevious(_) => (409, "no_previous_version"),
            DeployError::Unknown(_) => (404, "unknown_plugin"),
            DeployError::HasSubscribers { .. } => (409, "has_subscribers"),
            DeployError::NotWipeable(_) => (409, "not_wipeable"),
            DeployError::NotAReadModel(_) => (409, "not_a_read_model"),
            DeployError::RebuildRunning(_) => (409, "rebuild_running"),
            DeployError::HistoryPruned(_) => (409, "history_pruned"),
        }
    }
}

impl From<PluginLoadError> for DeployError {
    fn from(e: PluginLoadError) -> Self {
        DeployError::Load(e)
    }
}

/// The outcome of a deploy or rollback.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Switched {
    /// Plugin name.
    pub name: String,
    /// The version now serving.
    pub current: Record,
    /// The version it replaced, if any.
    pub previous: Option<Record>,
    /// The bytes deployed are those serving already: nothing was switched,
    /// migrated or added to the version stack.
    pub unchanged: bool,
}

fn registry_error(e: std::io::Error) -> DeployError {
    DeployError::Registry(e.to_string())
}

impl Deployer {
    /// Deploys `bytes` as the new version of plugin `expected` (any name when `None`).
    pub async fn deploy(
        &self,
        expected: Option<&str>,
        bytes: &[u8],
        signature: Option<&str>,
    ) -> Result<Switched, DeployError> {
        signing::verify(&self.trusted_keys, bytes, signature)?;
        // Redeploying what serves is answered before compiling (a rule in
        // Python takes seconds) and changes nothing.
        let sha256 = hex::encode(sha2::Sha256::digest(bytes));
        if let Some(unchanged) = expected.and_then(|name| self.unchanged(name, &sha256)) {
            return Ok(unchanged);
        }
        let candidate = self.prepare(bytes).await?;
        if let Some(expected) = expected
            && expected != candidate.name
        {
            return Err(DeployError::NameMismatch {
                expected: expected.to_owned(),
                found: candidate.name,
            });
        }
        // One deploy at a time, so the registry file and the switch stay in
        // step; in a cluster, one on all hosts, starting from the shared records.
        let _deploying = self.deploying.lock().await;
        let _cluster = self.cluster_exclusive().await?;
        self.follow_shared().await?;
        if let Some(unchanged) = self.unchanged(&candidate.name, &candidate.sha256) {
            return Ok(unchanged);
        }
        let running = self.running_version(&candidate.name);
        if let Some(plugin) = self.registry.get(&candidate.name) {
            let applied = applied_migrations(&plugin)
                .await
                .map_err(|e| DeployError::Registry(e.to_string()))?;
            refuse_destructive(candidate.migrations(), plugin.slot.db.kind(), &applied)?;
        }
        let name = candidate.name.clone();
        let record = Record {
            version: candidate.version.clone(),
            sha256: candidate.sha256.clone(),
            deployed_at: crate::clock::now_rfc3339(),
        };
        self.activate(candidate, Mode::Forward).await?;
        let mut deployments = self.store.deployments().map_err(registry_error)?;
        // Deployed again after a removal: in service again, on its kept data.
        deployments.removed.remove(&name);
        let history = deployments.plugins.entry(name.clone()).or_default();
        if history.stack.is_empty()
            && let Some(running) = &running
        {
            // The version that served before the first deploy becomes the rollback target.
            history.stack.push(Record {
                deployed_at: crate::clock::now_rfc3339(),
                ..running.clone()
            });
        }
        let previous = history.stack.last().cloned();
        history.stack.push(record.clone());
        self.store.save(&deployments).map_err(registry_error)?;
        self.share().await?;
        self.relay.ensure();
        tracing::info!(plugin = %name, version = %record.version, sha256 = %record.sha256, "deployed");
        Ok(Switched {
            name,
            current: record,
            previous,
            unchanged: false,
        })
    }

    /// The answer to deploying `sha256` as `name` when those bytes serve
    /// already: the serving version as it was recorded.
    fn unchanged(&self, name: &str, sha256: &str) -> Option<Switched> {
        let running = self.running_version(name)?;
        if running.sha256 != sha256 {
            return None;
        }
        let recorded = self
            .store
            .deployments()
            .ok()
            .and_then(|d| d.plugins.get(name).and_then(|h| h.stack.last().cloned()))
            .filter(|r| r.sha256 == sha256);
        Some(Switched {
            name: name.to_owned(),
            current: recorded.unwrap_or(running),
            previous: None,
            unchanged: true,
        })
    }

    /// The version of plugin or rule `name` serving now (`deployed_at` empty).
    fn running_version(&self, name: &str) -> Option<Record> {
        let (version, sha256) = match (self.registry.get(name), self.rules.get(name)) {
            (Some(p), _) => (p.version.clone(), p.sha256.clone()),
            (None, Some(r)) => (r.version.clone(), r.sha256.clone()),
            (None, None) => return None,
        };
        Some(Record {
            version,
            sha256,
            deployed_at: String::new(),
        })
    }

    /// Returns plugin `name` to the version before the current one.
    pub async fn rollback(&self, name: &str) -> Result<Switched, DeployError> {
        let _deploying = self.deploying.lock().await;
        let _cluster = self.cluster_exclusive().await?;
        self.follow_shared().await?;
        if !self.is_running(name) {
            return Err(DeployError::Unknown(name.to_owned()));
        }
        let mut deployments = self.store.deployments().map_err(registry_error)?;
        let history = deployments.plugins.entry(name.to_owned()).or_default();
        if history.stack.len() < 2 {
            return Err(DeployError::NoPrevious(name.to_owned()));
        }
        let target = history.stack[history.stack.len() - 2].clone();
        let bytes = self.store.get(&target.sha256).map_err(registry_error)?;
        let candidate = self.prepare(&bytes).await?;
        // The newer version's expand migrations stay; the older build tolerates them.
        self.activate(candidate, Mode::AllowNewerSchema).await?;
        let previous = history.stack.pop();
        self.store.save(&deployments).map_err(registry_error)?;
        self.share().await?;
        self.relay.ensure();
        tracing::info!(plugin = %name, version = %target.version, "rolled back");
        Ok(Switched {
            name: name.to_owned(),
            current: target,
            previous,
            unchanged: false,
        })
    }

    /// The versions of `name`, newest first; the first one serves.
    pub fn versions(&self, name: &str) -> Result<Vec<Record>, DeployError> {
        let running = self
            .running_version(name)
            .ok_or_else(|| DeployError::Unknown(name.to_owned()))?;
        let deployments = self.store.deployments().map_err(registry_error)?;
        let mut stack = deployments
            .plugins
            .get(name)
            .map(|h| h.stack.clone())
            .unwrap_or_default();
        if stack.is_empty() {
            stack.push(running);
        }
        stack.reverse();
        Ok(stack)
    }
}

async fn applied_migrations(plugin: &crate::plugin::Plugin) -> Result<Vec<i64>, StorageError> {
    Ok(plugin
        .slot
        .db
        .applied_migrations()
        .await?
        .into_iter()
        .map(|m| m.version)
        .collect())
}

fn refuse_destructive(
    files: &[(String, String)],
    kind: crate::storage::BackendKind,
    applied: &[i64],
) -> Result<(), DeployError> {
    let planned =
        plan(files, kind).map_err(|e| DeployError::Load(PluginLoadError::Migration(e)))?;
    for p in planned
        .iter()
        .filter(|p| !applied.contains(&p.step.version))
    {
        if checks::is_contract(&p.step.sql) {
            continue;
        }
        let found = checks::destructive_statement(&p.file, &p.step.sql).map_err(|source| {
            DeployError::Unreadable {
                file: p.file.clone(),
                source,
            }
        })?;
        if let Some(statement) = found {
            return Err(DeployError::Destructive {
                file: p.file.clone(),
                statement,
            });
        }
    }
    Ok(())
}
