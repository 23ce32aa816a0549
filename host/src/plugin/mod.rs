//! Plugins: a loaded version (`Plugin`), what a plugin keeps across versions
//! (`Slot`), the registry of running plugins, their subscriptions
//! (`subscription.rs`) and the world they run in (`world.rs`).
pub mod routes;
mod subscription;
mod world;

pub use subscription::{Pattern, valid_name};
pub use world::{CallState, CompiledPlugin, DomainWorld, PluginSandbox};

use crate::runtime::Limits;
use crate::storage::Database;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;

/// What a component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bounded context (`world domain`).
    Domain,
    /// A coupon rule (`world coupon-rule`).
    Rule,
}

impl Kind {
    /// `domain` or `rule`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Domain => "domain",
            Kind::Rule => "rule",
        }
    }
}

/// One plugin version, compiled and connected to its database.
pub struct Plugin {
    /// Name from the manifest: HTTP mount point and event source.
    pub name: Arc<str>,
    /// Version from the manifest.
    pub version: String,
    /// sha256 of the component bytes, hex.
    pub sha256: String,
    /// Parsed subscriptions.
    pub subscriptions: Vec<Pattern>,
    /// The plugin's OpenAPI fragment (`Null` when it documents nothing).
    pub openapi: serde_json::Value,
    /// A read model: built only from its subscriptions' events, emits none,
    /// may be rebuilt by replay.
    pub read_model: bool,
    /// Limits applied to each call.
    pub limits: Limits,
    /// The compiled component.
    pub compiled: CompiledPlugin,
    /// Where it may send outbound HTTP, and how.
    pub outbound: Arc<crate::outbound::Policy>,
    /// What the plugin keeps across versions.
    pub slot: Arc<Slot>,
}

/// What a plugin keeps across its versions: one per plugin name, and every
/// version of it holds the same one, so a deploy carries nothing over by hand.
pub struct Slot {
    /// Its database.
    pub db: Database,
    /// Highest committed outbox sequence; the relay's streams wait on it.
    pub head: watch::Sender<u64>,
    /// Commits that staged events for numbering (PostgreSQL), counted; the
    /// numberer wakes on it.
    pub staged: watch::Sender<u64>,
    /// The count of `staged` the numberer read before its last pass that
    /// left nothing waiting: every commit up to it is numbered, in `head`.
    pub numbered: watch::Sender<u64>,
    /// Idempotency keys of requests running now, whichever version runs them.
    pub inflight_keys: Mutex<HashSet<String>>,
    /// Woken when a call commits outbound requests.
    pub outbound: tokio::sync::Notify,
}

impl Slot {
    /// A slot for a plugin whose outbox ends at `head`.
    pub fn new(db: Database, head: u64) -> Self {
        Slot {
            db,
            head: watch::Sender::new(head),
            staged: watch::Sender::new(0),
            numbered: watch::Sender::new(0),
            inflight_keys: Mutex::default(),
            outbound: tokio::sync::Notify::new(),
        }
    }
}

impl Plugin {
    /// True if this plugin subscribes to `event_type` from `source`.
    pub fn subscribes_to(&self, source: &str, event_type: &str) -> bool {
        self.subscriptions
            .iter()
            .any(|p| p.matches(source, event_type))
    }

    /// Sources named by this plugin's subscriptions.
    pub fn sources(&self) -> Vec<String> {
        let mut sources: Vec<String> = self
            .subscriptions
            .iter()
            .map(|p| p.source.clone())
            .collect();
        sources.sort();
        sources.dedup();
        sources
    }
}

/// The running plugins by name.
#[derive(Default)]
pub struct Registry {
    plugins: RwLock<BTreeMap<String, Arc<Plugin>>>,
}

impl Registry {
    /// The running version of `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.plugins
            .read()
            .expect("registry poisoned")
            .get(name)
            .cloned()
    }

    /// All running plugins, by name.
    pub fn all(&self) -> Vec<Arc<Plugin>> {
        self.plugins
            .read()
            .expect("registry poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Makes `plugin` the version that new calls use; calls already running
    /// keep the version they started with. Returns the version it replaced.
    pub fn put(&self, plugin: Arc<Plugin>) -> Option<Arc<Plugin>> {
        self.plugins
            .write()
            .expect("registry poisoned")
            .insert(plugin.name.to_string(), plugin)
    }

    /// Takes `name` out: new calls find no such plugin; calls running keep
    /// the version they started with.
    pub fn remove(&self, name: &str) -> Option<Arc<Plugin>> {
        self.plugins
            .write()
            .expect("registry poisoned")
            .remove(name)
    }
}

/// Checks a manifest's fragment when the plugin loads, so a bad one is refused
/// then rather than breaking `/openapi.json` later.
pub fn parse_openapi_fragment(text: &str) -> Result<serde_json::Value, String> {
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Null);
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("openapi fragment is not JSON: {e}"))?;
    let paths_ok = value.get("paths").is_none_or(serde_json::Value::is_object);
    if !value.is_object() || !paths_ok {
        return Err("openapi fragment must be an object with a `paths` object".into());
    }
    if let Some(problem) = routes::invalid_access(&value) {
        return Err(format!("openapi fragment: {problem}"));
    }
    Ok(value)
}
