//! The host: sandbox, plugins, databases, event relay and metrics wired together.
use crate::config::Config;
use crate::events::{Pattern, Relay, store::outbox_head, valid_name};
use crate::metrics::Metrics;
use crate::migrate::{MigrationError, Mode};
use crate::plugin::{Kind, Plugin, Registry, Slot};
use crate::rules::{Rule, RuleSandbox, Rules};
use crate::runtime::{EngineConfig, LoadError, Sandbox};
use crate::storage::postgres::PgDb;
use crate::storage::sqlite::SqliteDb;
use crate::storage::{BackendKind, Database, StorageError};
use sha2::{Digest, Sha256};
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginLoadError {
    /// Compile / link / describe failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The manifest is unusable.
    #[error("invalid manifest: {0}")]
    Manifest(String),
    /// Its database could not be opened.
    #[error("database for plugin `{plugin}`: {source}")]
    Storage {
        /// Plugin name.
        plugin: String,
        /// Cause.
        source: StorageError,
    },
    /// Its migrations failed.
    #[error(transparent)]
    Migration(#[from] MigrationError),
    /// A plugin with that name is already running.
    #[error("{0}")]
    Duplicate(String),
    /// The deployed-versions registry on disk could not be read.
    #[error("plugin registry: {0}")]
    Registry(String),
}

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The engine could not be built.
    #[error("starting the WebAssembly engine: {0}")]
    Engine(String),
    /// No admin token was configured and the token file is unusable.
    #[error("admin token: {0}")]
    AdminToken(#[from] crate::secrets::SecretError),
    /// A plugin failed to load.
    #[error("loading {origin}: {source}")]
    Plugin {
        /// Where the component came from.
        origin: String,
        /// Why it failed.
        source: PluginLoadError,
    },
}

/// A compiled and checked component, not yet serving.
pub struct Candidate {
    /// Name from its manifest.
    pub name: String,
    /// Version from its manifest.
    pub version: String,
    /// sha256 of its bytes, hex.
    pub sha256: String,
    bytes: Vec<u8>,
    kind: Prepared,
}

/// What each kind of component brings.
enum Prepared {
    Domain {
        subscriptions: Vec<Pattern>,
        openapi: serde_json::Value,
        compiled: crate::runtime::Compiled,
    },
    Rule {
        compiled: crate::rules::CompiledRule,
    },
}

impl Candidate {
    /// A domain plugin or a coupon rule.
    pub fn kind(&self) -> Kind {
        match self.kind {
            Prepared::Domain { .. } => Kind::Domain,
            Prepared::Rule { .. } => Kind::Rule,
        }
    }

    /// Its migrations (a rule has none).
    pub fn migrations(&self) -> &[(String, String)] {
        match &self.kind {
            Prepared::Domain { compiled, .. } => &compiled.manifest.migrations,
            Prepared::Rule { .. } => &[],
        }
    }
}

/// A component to load and where it came from (for messages).
pub struct Component {
    /// `embedded:notes`, a file path…
    pub origin: String,
    /// The plugin's name when known before compiling (embedded plugins).
    pub name: Option<String>,
    /// The component bytes.
    pub bytes: Vec<u8>,
}

impl Component {
    /// The components embedded in the binary.
    pub fn embedded() -> Vec<Component> {
        crate::artifacts::EMBEDDED
            .iter()
            .map(|(name, bytes)| Component {
                origin: format!("embedded plugin `{name}`"),
                name: Some(name.to_string()),
                bytes: bytes.to_vec(),
            })
            .collect()
    }
}

/// Shared state of a running host.
pub struct HostInner {
    /// Effective configuration.
    pub config: Config,
    /// The wasm engine.
    pub sandbox: Sandbox,
    /// Running plugins.
    pub registry: Registry,
    /// Running coupon rules (their names are taken from the same space).
    pub rules: Arc<Rules>,
    /// Metrics.
    pub metrics: Metrics,
    /// Event relay.
    pub relay: Relay,
    /// Cancelled on shutdown.
    pub cancel: CancellationToken,
    /// Deployed component bytes and version stacks.
    pub store: crate::deploy::store::Store,
    /// Keys whose signatures deploys must carry (none: unsigned accepted).
    pub trusted_keys: Vec<ed25519_dalek::VerifyingKey>,
    /// Serialises deploys and rollbacks.
    pub deploying: tokio::sync::Mutex<()>,
    admin_token: String,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// A running host; cheap to clone.
#[derive(Clone)]
pub struct Host(Arc<HostInner>);

impl Deref for Host {
    type Target = HostInner;
    fn deref(&self) -> &HostInner {
        &self.0
    }
}

impl Host {
    /// Loads `components` and starts event routing.
    pub async fn start(config: Config, components: Vec<Component>) -> Result<Host, StartError> {
        config.validate()?;
        let sandbox = Sandbox::new(&EngineConfig {
            max_instances: config.max_instances,
            max_memory_bytes: config.max_memory_bytes(),
            rule_instances: config.rules.max_instances,
        })
        .map_err(|e| StartError::Engine(format!("{e:#}")))?;
        let rule_sandbox = RuleSandbox::new(sandbox.engine().clone(), config.rules.max_instances)
            .map_err(|e| StartError::Engine(format!("{e:#}")))?;
        let metrics = Metrics::new();
        let rules = Arc::new(Rules::new(
            rule_sandbox,
            &config.rules,
            metrics.rules.clone(),
        ));
        let trusted_keys = crate::deploy::signing::parse_keys(&config.trusted_keys)
            .map_err(|e| StartError::Config(crate::config::ConfigError::Invalid(e.to_string())))?;
        // Admin routes are never open: without a configured token, the host's own.
        let admin_token = match &config.admin_token {
            Some(token) => token.clone(),
            None => crate::secrets::load_or_create_admin_token(&config.data_dir)?,
        };
        let host = Host(Arc::new(HostInner {
            store: crate::deploy::store::Store::new(&config.data_dir),
            trusted_keys,
            deploying: tokio::sync::Mutex::new(()),
            admin_token,
            config,
            sandbox,
            registry: Registry::default(),
            rules,
            metrics,
            relay: Relay::default(),
            cancel: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
        }));
        host.load_deployed().await?;
        for component in components {
            let origin = component.origin.clone();
            let failed = |source| StartError::Plugin {
                origin: origin.clone(),
                source,
            };
            // A deployed version of this plugin takes precedence over the shipped one.
            if component.name.as_ref().is_some_and(|n| host.is_running(n)) {
                continue;
            }
            let candidate = host.prepare(&component.bytes).await.map_err(failed)?;
            if host.is_running(&candidate.name) {
                continue;
            }
            host.activate(candidate, Mode::Forward)
                .await
                .map_err(failed)?;
        }
        let mut tasks = host.relay.ensure(&host);
        tasks.push(crate::retention::spawn_pruner(&host));
        host.tasks.lock().expect("tasks poisoned").extend(tasks);
        Ok(host)
    }

    /// Loads the versions recorded by earlier deploys and rollbacks.
    async fn load_deployed(&self) -> Result<(), StartError> {
        let deployments = self.store.deployments().map_err(|e| StartError::Plugin {
            origin: "the plugin registry".into(),
            source: PluginLoadError::Registry(e.to_string()),
        })?;
        for (name, history) in deployments.plugins {
            let Some(current) = history.stack.last() else {
                continue;
            };
            let origin = format!(
                "deployed plugin `{name}` {} ({})",
                current.version, current.sha256
            );
            let failed = |source| StartError::Plugin {
                origin: origin.clone(),
                source,
            };
            let bytes = self
                .store
                .get(&current.sha256)
                .map_err(|e| failed(PluginLoadError::Registry(e.to_string())))?;
            let candidate = self.prepare(&bytes).await.map_err(failed)?;
            // A rolled-back version runs on the newer version's expanded schema.
            self.activate(candidate, Mode::AllowNewerSchema)
                .await
                .map_err(failed)?;
        }
        Ok(())
    }

    /// The bearer token admin routes require: the configured one, else the
    /// one in `data_dir/admin-token`.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Starts event routing for plugins and subscriptions that have none yet.
    pub fn ensure_routing(&self) {
        let tasks = self.relay.ensure(self);
        self.tasks.lock().expect("tasks poisoned").extend(tasks);
    }

    /// True when a plugin or a rule named `name` is running.
    pub fn is_running(&self, name: &str) -> bool {
        self.registry.get(name).is_some() || self.rules.get(name).is_some()
    }

    /// Compiles a component (off the async workers), checks that it fits the
    /// `domain` or the `coupon-rule` world and imports nothing else, and
    /// validates its manifest.
    pub async fn prepare(&self, bytes: &[u8]) -> Result<Candidate, PluginLoadError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let component = self.sandbox.component(bytes).await?;
        let (name, version, kind) = if self.sandbox.is_rule(&component) {
            // Limits by name are known only after `describe`; it runs under the defaults.
            let compiled = self
                .rules
                .sandbox()
                .compile(component, self.config.rules.limits)
                .await?;
            let m = &compiled.manifest;
            (
                m.name.clone(),
                m.version.clone(),
                Prepared::Rule { compiled },
            )
        } else {
            let compiled = self.sandbox.compile(component, self.config.limits).await?;
            let manifest = &compiled.manifest;
            let subscriptions = manifest
                .subscriptions
                .iter()
                .map(|s| Pattern::parse(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(PluginLoadError::Manifest)?;
            let openapi = crate::plugin::parse_openapi_fragment(&manifest.openapi)
                .map_err(PluginLoadError::Manifest)?;
            let (name, version) = (manifest.name.clone(), manifest.version.clone());
            let kind = Prepared::Domain {
                subscriptions,
                openapi,
                compiled,
            };
            (name, version, kind)
        };
        if !valid_name(&name) {
            return Err(PluginLoadError::Manifest(format!(
                "plugin name `{name}` must be 1-48 lower-case letters, digits or `-`, starting with a letter"
            )));
        }
        if matches!(
            name.as_str(),
            "admin" | "healthz" | "readyz" | "metrics" | "openapi.json"
        ) {
            return Err(PluginLoadError::Manifest(format!(
                "plugin name `{name}` is reserved for host routes"
            )));
        }
        if version.trim().is_empty() {
            return Err(PluginLoadError::Manifest(
                "version must not be empty".into(),
            ));
        }
        let kind_in_use = match kind {
            Prepared::Domain { .. } => self.rules.get(&name).map(|_| Kind::Rule),
            Prepared::Rule { .. } => self.registry.get(&name).map(|_| Kind::Domain),
        };
        if let Some(other) = kind_in_use {
            return Err(PluginLoadError::Duplicate(format!(
                "the name `{name}` is taken by a running {} plugin",
                other.as_str()
            )));
        }
        Ok(Candidate {
            name,
            version,
            bytes: bytes.to_vec(),
            sha256,
            kind,
        })
    }

    /// Migrates the candidate's database and makes it the version new calls
    /// use. A plugin that is already running keeps its database, outbox head
    /// and in-flight idempotency keys; calls in flight finish on the old version.
    pub async fn activate(&self, candidate: Candidate, mode: Mode) -> Result<(), PluginLoadError> {
        let Candidate {
            name,
            version,
            sha256,
            bytes,
            kind,
        } = candidate;
        // Every version that ever served is kept, so a rollback can return to it.
        self.store
            .put(&sha256, &bytes)
            .map_err(|e| PluginLoadError::Storage {
                plugin: name.clone(),
                source: StorageError::Setup(format!("storing the component: {e}")),
            })?;
        let (subscriptions, openapi, compiled) = match kind {
            Prepared::Rule { compiled } => {
                let rule = Arc::new(Rule {
                    name: name.as_str().into(),
                    version,
                    description: compiled.manifest.description.clone(),
                    sha256,
                    limits: self.config.rule_limits_for(&name),
                    compiled,
                    stats: Default::default(),
                });
                self.rules.put(rule.clone());
                tracing::info!(rule = %rule.name, version = %rule.version, sha256 = %rule.sha256, "coupon rule active");
                return Ok(());
            }
            Prepared::Domain {
                subscriptions,
                openapi,
                compiled,
            } => (subscriptions, openapi, compiled),
        };
        let storage_error = |source| PluginLoadError::Storage {
            plugin: name.clone(),
            source,
        };
        let running = self.registry.get(&name);
        let opened;
        let db = match &running {
            Some(p) => &p.slot.db,
            None => {
                opened = self.open_database(&name).await.map_err(storage_error)?;
                &opened
            }
        };
        crate::migrate::run_within(
            &name,
            db,
            &compiled.manifest.migrations,
            mode,
            Duration::from_millis(self.config.migration_deadline_ms),
        )
        .await?;
        let slot = match &running {
            Some(p) => p.slot.clone(),
            None => {
                let head = outbox_head(db).await.map_err(storage_error)?;
                Arc::new(Slot::new(db.clone(), head))
            }
        };
        let plugin = Arc::new(Plugin {
            name: name.as_str().into(),
            version,
            sha256,
            subscriptions,
            openapi,
            limits: self.config.limits_for(&name),
            compiled,
            slot,
        });
        self.registry.put(plugin.clone());
        tracing::info!(plugin = %plugin.name, version = %plugin.version, sha256 = %plugin.sha256, "plugin active");
        Ok(())
    }

    async fn open_database(&self, plugin: &str) -> Result<Database, StorageError> {
        let storage = self.config.storage_for(plugin);
        match storage.backend {
            BackendKind::Postgres => {
                let url = storage
                    .url
                    .as_deref()
                    .ok_or_else(|| StorageError::Setup("postgres backend without url".into()))?;
                let db =
                    PgDb::open(url, &storage.namespace, plugin, storage.max_connections).await?;
                Ok(Database::Postgres(Arc::new(db)))
            }
            BackendKind::Sqlite => {
                let path = self.config.data_dir.join(format!("{plugin}.db"));
                let limits = self.config.limits_for(plugin);
                Ok(Database::Sqlite(Arc::new(SqliteDb::open_limited(
                    &path,
                    limits.query_bytes(),
                )?)))
            }
        }
    }

    /// Waits until every subscriber has consumed every committed event (retries
    /// and dead-lettering included; delayed events count once scheduled).
    pub async fn drain(&self, timeout: Duration) -> Result<(), String> {
        self.relay.drain(&self.registry, timeout).await
    }

    /// Waits until `subscriber` has consumed everything `source` committed.
    pub async fn drain_stream(
        &self,
        subscriber: &str,
        source: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        self.relay
            .drain_stream(&self.registry, subscriber, source, timeout)
            .await
    }

    /// Waits until every delayed event due at or before `until_ms` (ms since the
    /// epoch) has been delivered or dead-lettered.
    pub async fn drain_scheduled(&self, until_ms: u64, timeout: Duration) -> Result<(), String> {
        self.relay.drain_scheduled(until_ms, timeout).await
    }

    /// Stops the relay and the idempotency pruner and waits for their tasks.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("tasks poisoned"));
        for task in tasks {
            let _ = task.await;
        }
        self.relay.mark_all(&self.registry).await;
    }
}
