//! Configuration: defaults, then a TOML file, then environment / command line.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! data_dir = "data"
//! admin_token = "change-me"
//! max_body_bytes = 1048576
//!
//! [http]                    # limits on slow or greedy clients
//! header_read_timeout_ms = 10000
//! body_read_timeout_ms = 30000
//! keep_alive_timeout_ms = 60000
//! max_connections = 1024
//!
//! [storage]                 # default backend for every plugin
//! backend = "sqlite"        # or "postgres"
//! # url = "postgres://postgres@127.0.0.1/mercato"
//!
//! [limits]                  # default limits for every plugin
//! memory_mib = 64
//! deadline_ms = 1000
//! # fuel = 100000000
//!
//! [events]
//! max_attempts = 5
//! backoff_base_ms = 200
//! backoff_max_ms = 30000
//!
//! [idempotency]
//! retention_ms = 86400000   # stored responses answer replays this long
//!
//! [plugins.orders]          # per-plugin overrides
//! limits = { memory_mib = 128 }
//! storage = { backend = "postgres", url = "postgres://orders-db/shop" }
//!
//! [plugins.notifications.outbound]   # outbound HTTP (docs/plugins.md)
//! allowed_hosts = ["https://*", { url = "http://10.0.0.5:8080", timeout_ms = 2000 }]
//! max_attempts = 8
//!
//! [[load]]                  # extra components beside the embedded ones
//! path = "plugins/my-plugin.wasm"
//! ```
use crate::runtime::Limits;
use crate::storage::BackendKind;
pub use crate::storage::StorageConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors reading or validating configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Directory for SQLite files and host state.
    pub data_dir: PathBuf,
    /// Bearer token for `/admin/*`. `None`: the host makes a random one in
    /// `data_dir/admin-token` on first start and reuses it afterwards.
    pub admin_token: Option<String>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// HTTP server limits: timeouts and the connection cap.
    pub http: HttpConfig,
    /// Load the plugins embedded in the binary.
    pub embedded_plugins: bool,
    /// Default storage for plugins.
    pub storage: StorageConfig,
    /// Default limits for plugins.
    pub limits: Limits,
    /// Event delivery settings.
    pub events: EventsConfig,
    /// Instances alive at once across all plugins.
    pub max_instances: u32,
    /// Per-plugin overrides.
    pub plugins: BTreeMap<String, PluginConfig>,
    /// Extra plugin components to load.
    pub load: Vec<LoadConfig>,
    /// How long shutdown waits for in-flight calls.
    pub shutdown_grace_ms: u64,
    /// Hex ed25519 public keys; when set, deploys must be signed by one of them.
    pub trusted_keys: Vec<String>,
    /// Largest component a deploy may upload, in bytes.
    pub max_component_bytes: usize,
    /// Coupon-rule limits and pool.
    pub rules: crate::rules::RulesConfig,
    /// How long one migration file may run before it is stopped and rolled back.
    pub migration_deadline_ms: u64,
    /// How long Idempotency-Key responses are kept, and their pruning.
    pub idempotency: crate::retention::IdempotencyConfig,
    /// Run as one host of a cluster (PostgreSQL and NATS JetStream only).
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            admin_token: None,
            max_body_bytes: 1 << 20,
            http: HttpConfig::default(),
            embedded_plugins: true,
            storage: StorageConfig::default(),
            limits: Limits::default(),
            events: EventsConfig::default(),
            max_instances: 1_000,
            plugins: BTreeMap::new(),
            load: Vec::new(),
            shutdown_grace_ms: 10_000,
            trusted_keys: Vec::new(),
            max_component_bytes: 64 << 20,
            rules: crate::rules::RulesConfig::default(),
            migration_deadline_ms: crate::migrate::DEFAULT_DEADLINE.as_millis() as u64,
            idempotency: crate::retention::IdempotencyConfig::default(),
            cluster: None,
        }
    }
}

/// Limits that keep slow or greedy clients from tying up the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A request's headers must be complete this long after the connection
    /// opens, or after the first byte of a later request on it.
    pub header_read_timeout_ms: u64,
    /// A request's body must be complete this long after its headers (408).
    pub body_read_timeout_ms: u64,
    /// A keep-alive connection with no request in flight is closed after this.
    pub keep_alive_timeout_ms: u64,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            keep_alive_timeout_ms: 60_000,
            max_connections: 1_024,
        }
    }
}

impl HttpConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("body_read_timeout_ms", self.body_read_timeout_ms),
            ("keep_alive_timeout_ms", self.keep_alive_timeout_ms),
            ("max_connections", self.max_connections.into()),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "http.{name} must be positive"
                )));
            }
        }
        Ok(())
    }
}

/// Event routing settings.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Deliveries of one event before it is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubles each attempt.
    pub backoff_base_ms: u64,
    /// Longest retry delay.
    pub backoff_max_ms: u64,
    /// Fallback poll interval when no commit notification arrives.
    pub poll_ms: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            max_attempts: 5,
            backoff_base_ms: 200,
            backoff_max_ms: 30_000,
            poll_ms: 1_000,
        }
    }
}

impl EventsConfig {
    /// Delay before retry number `attempt` (1-based: the wait after the first failure).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(20);
        Duration::from_millis(
            self.backoff_base_ms
                .saturating_mul(factor)
                .min(self.backoff_max_ms),
        )
    }
}

/// Overrides for one plugin.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Storage for this plugin only.
    pub storage: Option<StorageConfig>,
    /// Limits for this plugin only (missing fields take the defaults).
    pub limits: Option<PartialLimits>,
    /// Where it may send outbound HTTP (nowhere when absent; the built-in
    /// `notifications` plugin defaults to public HTTPS).
    pub outbound: Option<crate::outbound::OutboundConfig>,
    /// Whether `POST /admin/plugins/{name}/wipe` may empty its database
    /// (default: only the built-in `checkout`, whose data is process state).
    pub wipeable: Option<bool>,
}

/// Limits where each field may be omitted.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialLimits {
    /// See [`Limits::memory_mib`].
    pub memory_mib: Option<u64>,
    /// See [`Limits::deadline_ms`].
    pub deadline_ms: Option<u64>,
    /// See [`Limits::fuel`].
    pub fuel: Option<u64>,
    /// See [`Limits::max_query_bytes`].
    pub max_query_bytes: Option<u64>,
    /// See [`Limits::max_event_bytes`].
    pub max_event_bytes: Option<u64>,
}

fn overridden(mut limits: Limits, plugin: Option<&PluginConfig>) -> Limits {
    if let Some(p) = plugin.and_then(|p| p.limits) {
        limits.memory_mib = p.memory_mib.unwrap_or(limits.memory_mib);
        limits.deadline_ms = p.deadline_ms.unwrap_or(limits.deadline_ms);
        limits.fuel = p.fuel.or(limits.fuel);
        limits.max_query_bytes = p.max_query_bytes.unwrap_or(limits.max_query_bytes);
        limits.max_event_bytes = p.max_event_bytes.unwrap_or(limits.max_event_bytes);
    }
    limits
}

/// An extra component to load.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadConfig {
    /// Path to the `.wasm` component.
    pub path: PathBuf,
}

impl Config {
    /// Reads `path` (TOML) over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Limits for `plugin`: its overrides over the defaults.
    pub fn limits_for(&self, plugin: &str) -> Limits {
        overridden(self.limits, self.plugins.get(plugin))
    }

    /// Limits for coupon rule `rule`: its `[plugins.<rule>.limits]` over `[rules.limits]`.
    pub fn rule_limits_for(&self, rule: &str) -> Limits {
        overridden(self.rules.limits, self.plugins.get(rule))
    }

    /// Outbound HTTP for `plugin`: its `[plugins.<name>.outbound]`, or the
    /// built-in default.
    pub fn outbound_for(&self, plugin: &str) -> crate::outbound::OutboundConfig {
        self.plugins
            .get(plugin)
            .and_then(|p| p.outbound.clone())
            .unwrap_or_else(|| crate::outbound::OutboundConfig::builtin_for(plugin))
    }

    /// Whether `plugin`'s database may be wiped.
    pub fn wipeable(&self, plugin: &str) -> bool {
        self.plugins
            .get(plugin)
            .and_then(|p| p.wipeable)
            .unwrap_or(plugin == "checkout")
    }

    /// Storage for `plugin`.
    pub fn storage_for(&self, plugin: &str) -> &StorageConfig {
        self.plugins
            .get(plugin)
            .and_then(|p| p.storage.as_ref())
            .unwrap_or(&self.storage)
    }

    /// The largest memory limit of any plugin, in bytes (sizes the instance pool).
    pub fn max_memory_bytes(&self) -> usize {
        let mut max = self
            .limits
            .memory_bytes()
            .max(self.rules.limits.memory_bytes());
        for name in self.plugins.keys() {
            max = max
                .max(self.limits_for(name).memory_bytes())
                .max(self.rule_limits_for(name).memory_bytes());
        }
        max
    }

    /// Checks values a running host depends on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, plugin) in &self.plugins {
            if let Some(outbound) = &plugin.outbound {
                outbound.validate(name).map_err(ConfigError::Invalid)?;
            }
        }
        let storages = std::iter::once(&self.storage)
            .chain(self.plugins.values().filter_map(|p| p.storage.as_ref()));
        for s in storages {
            if s.backend == BackendKind::Postgres && s.url.is_none() {
                return Err(ConfigError::Invalid(
                    "storage backend `postgres` needs `url` (or MERCATO_DATABASE_URL)".into(),
                ));
            }
        }
        let all_limits = std::iter::once(self.limits)
            .chain(self.plugins.keys().map(|n| self.limits_for(n)))
            .chain(std::iter::once(self.rules.limits))
            .chain(self.plugins.keys().map(|n| self.rule_limits_for(n)));
        for l in all_limits {
            if l.memory_mib == 0 || l.memory_mib > 4096 {
                return Err(ConfigError::Invalid(
                    "limits.memory_mib must be 1..=4096".into(),
                ));
            }
            if l.deadline_ms == 0 {
                return Err(ConfigError::Invalid(
                    "limits.deadline_ms must be positive".into(),
                ));
            }
            // SQLite cannot build a value over 1 GiB, and a budget below a few
            // KiB would refuse ordinary rows.
            if !(4096..=1 << 30).contains(&l.max_query_bytes) {
                return Err(ConfigError::Invalid(
                    "limits.max_query_bytes must be 4096..=1073741824".into(),
                ));
            }
            if !(4096..=1 << 30).contains(&l.max_event_bytes) {
                return Err(ConfigError::Invalid(
                    "limits.max_event_bytes must be 4096..=1073741824".into(),
                ));
            }
        }
        if self.rules.limits.fuel.is_none_or(|f| f == 0) {
            return Err(ConfigError::Invalid(
                "rules.limits.fuel must be a positive number of instructions".into(),
            ));
        }
        if self.rules.max_instances == 0 {
            return Err(ConfigError::Invalid(
                "rules.max_instances must be at least 1".into(),
            ));
        }
        self.http.validate()?;
        if self.migration_deadline_ms == 0 {
            return Err(ConfigError::Invalid(
                "migration_deadline_ms must be positive".into(),
            ));
        }
        let idempotency = self.idempotency;
        if idempotency.retention_ms == 0 {
            return Err(ConfigError::Invalid(
                "idempotency.retention_ms must be positive".into(),
            ));
        }
        if idempotency.prune_interval_ms == Some(0) || idempotency.prune_batch == 0 {
            return Err(ConfigError::Invalid(
                "idempotency.prune_interval_ms and idempotency.prune_batch must be positive".into(),
            ));
        }
        if self.events.max_attempts == 0 {
            return Err(ConfigError::Invalid(
                "events.max_attempts must be at least 1".into(),
            ));
        }
        if let Some(cluster) = &self.cluster {
            self.validate_cluster(cluster)?;
        }
        if self.admin_token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err(ConfigError::Invalid(
                "admin_token must be at least 16 characters".into(),
            ));
        }
        Ok(())
    }
}

impl Config {
    /// A cluster keeps every plugin in PostgreSQL: hosts on other machines
    /// cannot share an embedded SQLite file.
    fn validate_cluster(&self, cluster: &crate::cluster::ClusterConfig) -> Result<(), ConfigError> {
        if let Some(problem) = cluster.problem() {
            return Err(ConfigError::Invalid(problem));
        }
        if self.storage.backend != BackendKind::Postgres {
            return Err(ConfigError::Invalid(
                "a cluster stores its plugins in PostgreSQL: embedded SQLite cannot be shared \
                 between hosts; pass --database-url (or set [storage] backend = \"postgres\")"
                    .into(),
            ));
        }
        for (name, plugin) in &self.plugins {
            if plugin
                .storage
                .as_ref()
                .is_some_and(|s| s.backend != BackendKind::Postgres)
            {
                return Err(ConfigError::Invalid(format!(
                    "a cluster stores its plugins in PostgreSQL, but [plugins.{name}.storage] \
                     is SQLite, which cannot be shared between hosts"
                )));
            }
        }
        Ok(())
    }

    /// In a cluster, every plugin's PostgreSQL names carry the cluster's
    /// name, so two clusters on one server never share a schema. And a
    /// transaction left idle by a host that stopped (SIGSTOP, a VM paused)
    /// is ended by PostgreSQL, so its locks cannot hold up the host that
    /// took its work over: after a lease, or a call's deadline if longer.
    pub fn apply_cluster(&mut self) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let longest_call = std::iter::once(self.limits.deadline_ms)
            .chain(self.plugins.keys().map(|n| self.limits_for(n).deadline_ms))
            .max()
            .unwrap_or(0);
        let idle_ms = cluster.lease_ms.max(longest_call + 1_000);
        let apply = |storage: &mut StorageConfig| {
            storage.namespace = cluster.namespace(&storage.namespace);
            if let Some(url) = &mut storage.url {
                let separator = if url.contains('?') { '&' } else { '?' };
                url.push_str(&format!(
                    "{separator}options[idle_in_transaction_session_timeout]={idle_ms}"
                ));
            }
        };
        apply(&mut self.storage);
        for plugin in self.plugins.values_mut() {
            if let Some(storage) = &mut plugin.storage {
                apply(storage);
            }
        }
    }
}

#[cfg(test)]
mod tests;
