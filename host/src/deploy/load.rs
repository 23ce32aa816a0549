//! Loading a component: compile it, check it fits a world, validate its
//! manifest (`prepare`), then migrate its database and make it the version new
//! calls use (`activate`). Used at start, by deploys and by rollbacks.
use super::Deployer;
use super::compiled::Source;
use crate::migrate::{MigrationError, Mode};
use crate::outbox::store::outbox_head;
use crate::plugin::{CompiledPlugin, Kind, Pattern, Plugin, Slot, valid_name};
use crate::rules::{CompiledRule, Rule};
use crate::runtime::LoadError;
use crate::storage::StorageError;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

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
    /// Its outbound configuration is unusable.
    #[error("outbound HTTP: {0}")]
    Outbound(String),
}

/// A component that could not be loaded at start, and where it came from.
#[derive(Debug, thiserror::Error)]
#[error("loading {origin}: {source}")]
pub struct LoadFailure {
    /// Where the component came from.
    pub origin: String,
    /// Why it failed.
    pub source: PluginLoadError,
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
    /// Compiled now: its code goes to the cache once it is accepted.
    fresh: Option<wasmtime::component::Component>,
}

/// What each kind of component brings.
enum Prepared {
    Domain {
        subscriptions: Vec<Pattern>,
        openapi: serde_json::Value,
        compiled: CompiledPlugin,
    },
    Rule {
        compiled: CompiledRule,
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

impl Deployer {
    /// Loads the versions recorded by earlier deploys and rollbacks.
    pub async fn load_deployed(&self) -> Result<(), LoadFailure> {
        let deployments = self.store.deployments().map_err(|e| LoadFailure {
            origin: "the plugin registry".into(),
            source: PluginLoadError::Registry(e.to_string()),
        })?;
        for (name, history) in deployments.plugins {
            let Some(current) = history.stack.last() else {
                continue;
            };
            if deployments.removed.contains_key(&name) {
                continue;
            }
            let origin = format!(
                "deployed plugin `{name}` {} ({})",
                current.version, current.sha256
            );
            let failed = |source| LoadFailure {
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

    /// Loads `components` (the embedded plugins, `[[load]]` files) that no
    /// deployed version of the same name overrides.
    pub async fn load(&self, components: Vec<Component>) -> Result<(), LoadFailure> {
        let removed = self
            .store
            .deployments()
            .map_err(|e| LoadFailure {
                origin: "the plugin registry".into(),
                source: PluginLoadError::Registry(e.to_string()),
            })?
            .removed;
        for component in components {
            let origin = component.origin.clone();
            let failed = |source| LoadFailure {
                origin: origin.clone(),
                source,
            };
            // A deployed version of this plugin takes precedence over the
            // shipped one, and a removed plugin stays out.
            let out = |name: &str| removed.contains_key(name) || self.is_running(name);
            if component.name.as_deref().is_some_and(out) {
                continue;
            }
            let candidate = self.prepare(&component.bytes).await.map_err(failed)?;
            if out(&candidate.name) {
                continue;
            }
            self.activate(candidate, Mode::Forward)
                .await
                .map_err(failed)?;
        }
        Ok(())
    }

    /// True when a plugin or a rule named `name` is running.
    pub fn is_running(&self, name: &str) -> bool {
        self.registry.get(name).is_some() || self.rules.get(name).is_some()
    }

    /// Compiles a component (off the async workers) or loads the code
    /// compiled for it before, checks that it fits the `domain` or the
    /// `coupon-rule` world and imports nothing else, and validates its
    /// manifest. Cached code goes through every check, as compiled code does.
    pub async fn prepare(&self, bytes: &[u8]) -> Result<Candidate, PluginLoadError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let (component, source) = self.code.load(&sha256, bytes).await?;
        let (name, version, kind) = if self.engine.exports(&component, "mercato:plugin/rule@") {
            // Limits by name are known only after `describe`; it runs under the defaults.
            let compiled = self
                .rules
                .sandbox()
                .compile(&component, self.config.rules.limits)
                .await?;
            let m = &compiled.manifest;
            (
                m.name.clone(),
                m.version.clone(),
                Prepared::Rule { compiled },
            )
        } else {
            let compiled = self.sandbox.compile(&component, self.config.limits).await?;
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
            fresh: (source == Source::Compiled).then_some(component),
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
            fresh,
        } = candidate;
        // Every version that ever served is kept, so a rollback can return to
        // it, and so is its code, so that neither it nor a restart compiles.
        self.store
            .put(&sha256, &bytes)
            .map_err(|e| PluginLoadError::Storage {
                plugin: name.clone(),
                source: StorageError::Setup(format!("storing the component: {e}")),
            })?;
        if let Some(component) = &fresh {
            self.code.keep(&sha256, component).await;
        }
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
                let generation = super::generation::current(&self.config.data_dir, &name)
                    .map_err(|e| PluginLoadError::Registry(e.to_string()))?;
                opened = self
                    .config
                    .storage_for(&name)
                    .open(
                        &super::generation::store_name(&name, generation),
                        &self.config.data_dir,
                        self.config.limits_for(&name).query_bytes(),
                    )
                    .await
                    .map_err(storage_error)?;
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
            read_model: compiled.manifest.read_model,
            limits: self.config.limits_for(&name),
            compiled,
            outbound: Arc::new(
                crate::outbound::Policy::new(self.config.outbound_for(&name))
                    .map_err(PluginLoadError::Outbound)?,
            ),
            slot,
        });
        self.registry.put(plugin.clone());
        tracing::info!(plugin = %plugin.name, version = %plugin.version, sha256 = %plugin.sha256, "plugin active");
        Ok(())
    }
}
