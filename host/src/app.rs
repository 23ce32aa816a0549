//! The composition root: builds every capability from the configuration and
//! wires them together. Nothing below this module knows the whole app; each
//! part gets the narrow handles it works with (the relay gets the registry and
//! the unit of work, the deployer the sandboxes, the registry and the relay).
//!
//! Dependencies point one way: `http`/`cli` → `app` → {`deploy`, `events`,
//! `unit_of_work`, `retention`} → {`plugin`, `rules`, `outbox`, `storage`,
//! `runtime`} → `bindings`.
use crate::config::{Config, ConfigError};
use crate::deploy::{self, Component, Deployer, LoadFailure};
use crate::events::Relay;
use crate::metrics::Metrics;
use crate::plugin::{PluginSandbox, Registry};
use crate::retention::Pruner;
use crate::rules::{RuleMetrics, RuleSandbox, Rules};
use crate::runtime::{Engine, EngineConfig};
use crate::unit_of_work::UnitOfWork;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The engine could not be built.
    #[error("starting the WebAssembly engine: {0}")]
    Engine(String),
    /// No admin token was configured and the token file is unusable.
    #[error("admin token: {0}")]
    AdminToken(#[from] crate::secrets::SecretError),
    /// The API key file is unusable.
    #[error("API keys: {0}")]
    Keys(#[from] crate::keys::KeyError),
    /// A plugin failed to load.
    #[error(transparent)]
    Plugin(#[from] LoadFailure),
    /// The cluster could not be joined.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// A running shop: its plugins, rules, relay and deployer; cheap to clone.
#[derive(Clone)]
pub struct App(Arc<Inner>);

struct Inner {
    config: Arc<Config>,
    sandbox: Arc<PluginSandbox>,
    registry: Arc<Registry>,
    rules: Arc<Rules>,
    metrics: Arc<Metrics>,
    calls: UnitOfWork,
    relay: Relay,
    deployer: Deployer,
    pruner: Pruner,
    cluster: Option<crate::cluster::Cluster>,
    cancel: CancellationToken,
    admin_token: String,
    keys: crate::keys::Keys,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl App {
    /// Loads the deployed versions and `components`, and starts event
    /// delivery and idempotency pruning.
    pub async fn start(mut config: Config, components: Vec<Component>) -> Result<App, StartError> {
        config.validate()?;
        config.apply_cluster();
        let config = Arc::new(config);
        let cluster = match &config.cluster {
            Some(cluster) => Some(
                crate::cluster::Cluster::join(
                    cluster,
                    config.storage.url.as_deref().unwrap_or_default(),
                    &config.storage.namespace,
                    config.listen.to_string(),
                )
                .await?,
            ),
            None => None,
        };
        let engine_error = |e: anyhow::Error| StartError::Engine(format!("{e:#}"));
        // Rules get pool slots of their own, so a domain call waiting on a
        // rule can never be starved by other domain calls holding every slot.
        let engine = Engine::new(&EngineConfig {
            max_instances: config.max_instances + config.rules.max_instances,
            max_memory_bytes: config.max_memory_bytes(),
        })
        .map_err(engine_error)?;
        let sandbox =
            Arc::new(PluginSandbox::new(&engine, config.max_instances).map_err(engine_error)?);
        let rule_sandbox =
            RuleSandbox::new(&engine, config.rules.max_instances).map_err(engine_error)?;
        let metrics = Arc::new(Metrics::new());
        let rules = Arc::new(Rules::new(
            rule_sandbox,
            &config.rules,
            RuleMetrics::new(metrics.registry()),
        ));
        let trusted_keys = deploy::signing::parse_keys(&config.trusted_keys)
            .map_err(|e| StartError::Config(ConfigError::Invalid(e.to_string())))?;
        // Admin routes are never open: without a configured token, the host's own.
        let admin_token = match &config.admin_token {
            Some(token) => token.clone(),
            None => crate::secrets::load_or_create_admin_token(&config.data_dir)?,
        };
        let keys = crate::keys::Keys::open(&config.data_dir)?;
        let registry = Arc::new(Registry::default());
        let cancel = CancellationToken::new();
        let calls = UnitOfWork::new(
            sandbox.clone(),
            rules.clone(),
            metrics.clone(),
            config.idempotency,
        );
        let relay = Relay::new(
            registry.clone(),
            calls.clone(),
            metrics.clone(),
            config.events,
            cancel.clone(),
            cluster.clone(),
        );
        let deployer = Deployer::new(deploy::Parts {
            config: config.clone(),
            engine,
            sandbox: sandbox.clone(),
            rules: rules.clone(),
            registry: registry.clone(),
            relay: relay.clone(),
            trusted_keys,
            cancel: cancel.clone(),
            compilations: metrics.compilations.clone(),
            cluster: cluster.clone(),
        });
        let pruner = Pruner::new(
            registry.clone(),
            metrics.clone(),
            config.idempotency,
            cancel.clone(),
        );
        // Hosts of a cluster starting together load (and migrate) in turn.
        let exclusive = match &cluster {
            Some(cluster) => Some(cluster.exclusive("deploy").await.map_err(|source| {
                crate::cluster::ClusterError::Postgres {
                    cluster: cluster.config().name.clone(),
                    source,
                }
            })?),
            None => None,
        };
        deployer.adopt_shared().await.map_err(|e| LoadFailure {
            origin: "the cluster's shared registry".into(),
            source: deploy::PluginLoadError::Registry(e.to_string()),
        })?;
        deployer.load_deployed().await?;
        deployer.load(components).await?;
        drop(exclusive);
        relay.ensure();
        relay
            .listen()
            .await
            .map_err(|message| crate::cluster::ClusterError::Nats {
                cluster: config
                    .cluster
                    .as_ref()
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
                message,
            })?;
        let tasks = Mutex::new(
            std::iter::once(pruner.spawn())
                .chain(deployer.spawn_follower())
                .collect(),
        );
        Ok(App(Arc::new(Inner {
            config,
            sandbox,
            registry,
            rules,
            metrics,
            calls,
            relay,
            deployer,
            pruner,
            cluster,
            cancel,
            admin_token,
            keys,
            tasks,
        })))
    }

    /// Effective configuration.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The sandbox domain plugins run in.
    pub fn sandbox(&self) -> &PluginSandbox {
        &self.0.sandbox
    }

    /// The running plugins.
    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    /// The running coupon rules.
    pub fn rules(&self) -> &Rules {
        &self.0.rules
    }

    /// Metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// Runs plugin calls as units of work.
    pub fn calls(&self) -> &UnitOfWork {
        &self.0.calls
    }

    /// Event delivery between plugins.
    pub fn relay(&self) -> &Relay {
        &self.0.relay
    }

    /// Deploys and rolls back plugins.
    pub fn deployer(&self) -> &Deployer {
        &self.0.deployer
    }

    /// Deletes expired idempotency records.
    pub fn pruner(&self) -> &Pruner {
        &self.0.pruner
    }

    /// The bearer token admin routes require: the configured one, else the
    /// one in `data_dir/admin-token`.
    pub fn admin_token(&self) -> &str {
        &self.0.admin_token
    }

    /// The API keys plugin routes are called with.
    pub fn keys(&self) -> &crate::keys::Keys {
        &self.0.keys
    }

    /// True once shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.0.cancel.is_cancelled()
    }

    /// Waits until every subscriber has consumed every committed event
    /// (see [`Relay::drain`]).
    pub async fn drain(&self, timeout: Duration) -> Result<(), String> {
        self.0.relay.drain(timeout).await
    }

    /// Waits until every committed event has its outbox sequence number
    /// (see [`Relay::drain_numbering`]).
    pub async fn drain_numbering(&self, timeout: Duration) -> Result<(), String> {
        self.0.relay.drain_numbering(timeout).await
    }

    /// Stops the relay and the idempotency pruner and waits for their tasks.
    pub async fn shutdown(&self) {
        self.0.cancel.cancel();
        let tasks = std::mem::take(&mut *self.0.tasks.lock().expect("tasks poisoned"));
        for task in tasks {
            let _ = task.await;
        }
        self.0.relay.stopped().await;
        if let Some(cluster) = &self.0.cluster {
            cluster.leave().await;
        }
    }

    /// This host's membership of its cluster, if it runs in one.
    pub fn cluster(&self) -> Option<&crate::cluster::Cluster> {
        self.0.cluster.as_ref()
    }
}
