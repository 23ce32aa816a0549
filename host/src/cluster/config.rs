//! `[cluster]`: several `mercato serve` processes on one PostgreSQL and one
//! NATS JetStream share a shop's work.
use serde::Deserialize;

/// Cluster settings; absent, the host runs alone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Prefixes every NATS subject, stream and bucket and every PostgreSQL
    /// schema and role of the cluster, so two clusters on the same servers
    /// never meet: 1–12 of `a-z`, `0-9`, `_`, starting with a letter.
    pub name: String,
    /// NATS server with JetStream (`nats://127.0.0.1:4222`).
    pub nats_url: String,
    /// How long a host's lease on a piece of work lasts without renewal; a
    /// killed host's work is taken over within about this plus a third of it.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
}

/// Three seconds: a killed host's streams move within about four.
pub const DEFAULT_LEASE_MS: u64 = 3_000;

fn default_lease_ms() -> u64 {
    DEFAULT_LEASE_MS
}

impl ClusterConfig {
    /// Why these settings cannot run a cluster, if they cannot.
    pub fn problem(&self) -> Option<String> {
        let name = &self.name;
        let valid = (1..=12).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Some(format!(
                "cluster.name `{name}` must be 1-12 of a-z, 0-9 and _, starting with a letter"
            ));
        }
        if !self.nats_url.starts_with("nats://") && !self.nats_url.starts_with("tls://") {
            return Some(format!(
                "cluster.nats_url `{}` must be a nats:// or tls:// URL",
                self.nats_url
            ));
        }
        if !(300..=600_000).contains(&self.lease_ms) {
            return Some("cluster.lease_ms must be 300..=600000".into());
        }
        None
    }

    /// The PostgreSQL namespace of the cluster's plugins: the configured
    /// one with the cluster's name after it (`mercato_shop_`).
    pub fn namespace(&self, configured: &str) -> String {
        format!("{configured}{}_", self.name)
    }

    /// The cluster's own schema (hosts, leases, registry) under the
    /// cluster's `namespace`. Plugin names start with a letter, so
    /// `…__cluster` is never a plugin's schema.
    pub fn schema(namespace: &str) -> String {
        format!("{namespace}_cluster")
    }

    /// Prefix of every NATS subject of the cluster.
    pub fn subject(&self, rest: &str) -> String {
        format!("mercato.{}.{rest}", self.name)
    }

    /// The JetStream stream holding every source's events.
    pub fn events_stream(&self) -> String {
        format!("MERCATO_{}_EVENTS", self.name.to_ascii_uppercase())
    }
}
