//! A loaded plugin version and the registry of running plugins.
use crate::events::Pattern;
use crate::runtime::{Compiled, Limits};
use crate::storage::Database;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;

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
    /// Limits applied to each call.
    pub limits: Limits,
    /// The compiled component.
    pub compiled: Compiled,
    /// Its database.
    pub db: Database,
    /// Highest committed outbox sequence; the router waits on it.
    pub head: watch::Sender<u64>,
    /// Idempotency keys of requests currently running.
    pub inflight_keys: Mutex<HashSet<String>>,
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

    /// Adds a plugin; refuses a second plugin with the same name.
    pub fn insert(&self, plugin: Arc<Plugin>) -> Result<(), String> {
        let mut plugins = self.plugins.write().expect("registry poisoned");
        if plugins.contains_key(&*plugin.name) {
            return Err(format!(
                "a plugin named `{}` is already loaded",
                plugin.name
            ));
        }
        plugins.insert(plugin.name.to_string(), plugin);
        Ok(())
    }
}
