//! Outbound HTTP through an outbox: a plugin queues a request in its call's
//! transaction (`guest.rs`, the WIT `outbound` interface); after commit the
//! host sends it (`client.rs`), never inside a transaction, retries it with
//! backoff, dead-letters it after `max_attempts`, and reports every attempt
//! back to the plugin as an `outbound.DeliveryAttempted` event in the
//! plugin's own transaction (the worker is `crate::events::outbound`).
//!
//! The queue is the host table `mercato_outbound` in the plugin's database
//! (`store.rs`), so a request commits with the state that asked for it or not
//! at all. Destinations are denied unless the plugin's
//! `[plugins.<name>.outbound] allowed_hosts` allows them (`allow.rs`); the
//! check runs when the request is queued and again before every attempt, and
//! names resolved at send time must not land on private addresses unless the
//! entry names the host exactly.
mod allow;
mod client;
mod guest;
pub mod store;

pub use allow::{Allowlist, HostPattern, is_public};
pub use client::{AttemptResult, Policy};
pub use guest::OutboundCall;

use serde::Deserialize;

/// Source name of the host's delivery reports.
pub const REPORT_SOURCE: &str = "outbound";
/// Event type of a delivery report.
pub const REPORT_TYPE: &str = "DeliveryAttempted";
/// Most requests one call may queue.
pub const MAX_REQUESTS_PER_CALL: usize = 100;
/// Longest key.
pub const MAX_KEY_LEN: usize = 200;
/// Longest URL.
pub const MAX_URL_LEN: usize = 2048;
/// Most headers on one request, and their total size.
pub const MAX_HEADERS: usize = 64;
/// Total bytes of a request's header names and values.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// How much of an answer's body the report carries.
pub const REPORT_BODY_BYTES: usize = 1024;

/// `[plugins.<name>.outbound]`: where a plugin may send and how hard the host
/// tries.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Destinations the plugin may reach; empty denies everything. Each is a
    /// pattern (`https://*.example.com`, `http://127.0.0.1:8080`) or a table
    /// `{ url = "…", timeout_ms = …, max_response_bytes = … }` with limits of
    /// its own.
    pub allowed_hosts: Vec<AllowedHost>,
    /// Default time for one attempt: connect, send, and read the answer.
    pub timeout_ms: u64,
    /// Default cap on an answer's body; a longer one fails the attempt and is
    /// not read further.
    pub max_response_bytes: usize,
    /// Largest request body a plugin may queue.
    pub max_request_bytes: usize,
    /// Attempts before a request is dead.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each attempt.
    pub backoff_base_ms: u64,
    /// Longest delay between attempts.
    pub backoff_max_ms: u64,
    /// Requests of this plugin in flight at once.
    pub concurrency: usize,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            allowed_hosts: Vec::new(),
            timeout_ms: 10_000,
            max_response_bytes: 64 * 1024,
            max_request_bytes: 256 * 1024,
            max_attempts: 8,
            backoff_base_ms: 1_000,
            backoff_max_ms: 3_600_000,
            concurrency: 8,
        }
    }
}

/// One `allowed_hosts` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum AllowedHost {
    /// Just the pattern; the plugin's defaults apply.
    Pattern(String),
    /// A pattern with limits of its own.
    Destination {
        /// The pattern.
        url: String,
        /// Time for one attempt to it.
        timeout_ms: Option<u64>,
        /// Cap on its answers' bodies.
        max_response_bytes: Option<usize>,
    },
}

impl AllowedHost {
    /// The pattern.
    pub fn pattern(&self) -> &str {
        match self {
            AllowedHost::Pattern(p) | AllowedHost::Destination { url: p, .. } => p,
        }
    }
}

impl OutboundConfig {
    /// The configuration of the built-in `notifications` plugin when the
    /// operator gives none: public HTTPS endpoints only, so merchants'
    /// webhooks work out of the box and nothing inside the network is reachable.
    pub fn builtin_for(plugin: &str) -> Self {
        let mut config = OutboundConfig::default();
        if plugin == "notifications" {
            config.allowed_hosts = vec![AllowedHost::Pattern("https://*".into())];
        }
        config
    }

    /// Checks ranges and patterns.
    pub fn validate(&self, plugin: &str) -> Result<(), String> {
        Allowlist::parse(self.allowed_hosts.iter().map(AllowedHost::pattern))
            .map_err(|e| format!("plugins.{plugin}.outbound.allowed_hosts: {e}"))?;
        for (name, value) in [
            ("timeout_ms", self.timeout_ms),
            ("max_attempts", self.max_attempts.into()),
            ("backoff_base_ms", self.backoff_base_ms),
            ("concurrency", self.concurrency as u64),
            ("max_request_bytes", self.max_request_bytes as u64),
        ] {
            if value == 0 {
                return Err(format!("plugins.{plugin}.outbound.{name} must be positive"));
            }
        }
        if self.backoff_max_ms < self.backoff_base_ms {
            return Err(format!(
                "plugins.{plugin}.outbound.backoff_max_ms must be at least backoff_base_ms"
            ));
        }
        Ok(())
    }

    /// Delay after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> std::time::Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(30);
        std::time::Duration::from_millis(
            self.backoff_base_ms
                .saturating_mul(factor)
                .min(self.backoff_max_ms),
        )
    }
}

/// A request a call queued, written at commit.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedRequest {
    /// Names the delivery within the plugin.
    pub key: String,
    /// HTTP method, upper case.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_plain_and_detailed_destinations() {
        let config: OutboundConfig = toml::from_str(
            r#"
            allowed_hosts = ["https://*", { url = "http://127.0.0.1:*", timeout_ms = 50 }]
            max_attempts = 3
            "#,
        )
        .unwrap();
        assert_eq!(config.allowed_hosts[0].pattern(), "https://*");
        assert_eq!(
            config.allowed_hosts[1],
            AllowedHost::Destination {
                url: "http://127.0.0.1:*".into(),
                timeout_ms: Some(50),
                max_response_bytes: None
            }
        );
        assert_eq!(config.max_attempts, 3);
        assert!(config.validate("p").is_ok());
        let bad = OutboundConfig {
            allowed_hosts: vec![AllowedHost::Pattern("example.com".into())],
            ..OutboundConfig::default()
        };
        assert!(bad.validate("p").unwrap_err().contains("allowed_hosts"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = OutboundConfig {
            backoff_base_ms: 100,
            backoff_max_ms: 350,
            ..OutboundConfig::default()
        };
        let ms = |a| c.backoff(a).as_millis();
        assert_eq!((ms(1), ms(2), ms(3), ms(40)), (100, 200, 350, 350));
    }

    #[test]
    fn only_notifications_gets_a_builtin_destination() {
        assert!(
            OutboundConfig::builtin_for("orders")
                .allowed_hosts
                .is_empty()
        );
        assert_eq!(
            OutboundConfig::builtin_for("notifications").allowed_hosts[0].pattern(),
            "https://*"
        );
    }
}
