//! Idempotency records expire, as Stripe's do: a stored first response is kept
//! for `[idempotency] retention_ms` (24 h by default); after that its key is
//! new again (the unit of work ignores it and replaces it), and a pruner
//! deletes it within one prune interval.
//! Without it every keyed request would be kept forever (2,000 keyed quotes
//! grew a SQLite WAL by 25 MB).
//!
//! One pruner task per host walks the running plugins' databases and deletes
//! expired rows in batches of `prune_batch`, one short transaction each, so
//! it never holds a SQLite writer (which every request needs) for long.
//!
//! `created_at` is compared as text: `clock::rfc3339` writes fixed-width UTC
//! (`2026-11-21T23:43:24.123Z`), so text order is time order under any
//! collation that orders digits, and no column has to be added to databases
//! that already hold records.
use crate::bindings::SqlValue;
use crate::metrics::Metrics;
use crate::plugin::{Plugin, Registry};
use crate::storage::{StorageError, TxMode};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// The `[idempotency]` configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdempotencyConfig {
    /// How long a stored response answers replays of its key.
    pub retention_ms: u64,
    /// How often the pruner runs; unset: every minute, or `retention_ms / 24`
    /// when that is shorter (but at most once a second).
    pub prune_interval_ms: Option<u64>,
    /// Rows deleted per transaction.
    pub prune_batch: u32,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        IdempotencyConfig {
            retention_ms: 24 * 60 * 60 * 1000,
            prune_interval_ms: None,
            prune_batch: 500,
        }
    }
}

impl IdempotencyConfig {
    /// Time between two pruning rounds.
    pub fn prune_interval(&self) -> Duration {
        Duration::from_millis(
            self.prune_interval_ms
                .unwrap_or((self.retention_ms / 24).clamp(1_000, 60_000)),
        )
    }

    /// Records created before the returned time (as stored) have expired at `now`.
    pub fn cutoff(&self, now: OffsetDateTime) -> String {
        // A cutoff before year 0 is "" (`rfc3339` writes four-digit years
        // only), which no record sorts below: nothing has expired yet.
        i64::try_from(self.retention_ms)
            .ok()
            .and_then(|ms| now.checked_sub(time::Duration::milliseconds(ms)))
            .map(crate::clock::rfc3339)
            .unwrap_or_default()
    }
}

/// Pruning a plugin's database failed (it is tried again next round).
#[derive(Debug, thiserror::Error)]
#[error("pruning idempotency records of `{plugin}`: {source}")]
pub struct PruneError {
    /// The plugin.
    pub plugin: String,
    /// What the database said.
    pub source: StorageError,
}

/// Deletes expired idempotency records of the running plugins; cheap to clone.
#[derive(Clone)]
pub struct Pruner {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    config: IdempotencyConfig,
    cancel: CancellationToken,
}

impl Pruner {
    /// A pruner of `registry`'s plugins that stops when `cancel` fires.
    pub fn new(
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        config: IdempotencyConfig,
        cancel: CancellationToken,
    ) -> Self {
        Pruner {
            registry,
            metrics,
            config,
            cancel,
        }
    }

    /// Deletes expired idempotency records from every running plugin's
    /// database now, as the pruner does each interval; returns how many.
    /// Every plugin is tried; the first failure is returned.
    pub async fn prune_expired_now(&self) -> Result<u64, PruneError> {
        let config = self.config;
        let cutoff = config.cutoff(OffsetDateTime::now_utc());
        let mut pruned = 0;
        let mut failed = None;
        for plugin in self.registry.all() {
            match self.prune(&plugin, &cutoff, config.prune_batch).await {
                Ok(n) => pruned += n,
                Err(source) => {
                    let e = PruneError {
                        plugin: plugin.name.to_string(),
                        source,
                    };
                    tracing::warn!(error = %e, "idempotency pruning failed");
                    failed.get_or_insert(e);
                }
            }
        }
        failed.map_or(Ok(pruned), Err)
    }

    async fn prune(&self, plugin: &Plugin, cutoff: &str, batch: u32) -> Result<u64, StorageError> {
        let counter = self
            .metrics
            .idempotency_pruned
            .with_label_values(&[&plugin.name]);
        let mut pruned = 0;
        loop {
            let mut tx = plugin.slot.db.begin(TxMode::ReadWrite).await?;
            let n = tx
                .host_execute(
                    "DELETE FROM mercato_idempotency WHERE key IN \
                     (SELECT key FROM mercato_idempotency WHERE created_at < $1 LIMIT $2)",
                    &[
                        SqlValue::Text(cutoff.to_owned()),
                        SqlValue::Integer(batch.into()),
                    ],
                )
                .await?;
            tx.commit().await?;
            counter.inc_by(n);
            pruned += n;
            // A short batch means nothing expired is left; a stopping host
            // finishes the rest next start.
            if n < u64::from(batch) || self.cancel.is_cancelled() {
                return Ok(pruned);
            }
            // Let requests waiting for the writer go first.
            tokio::task::yield_now().await;
        }
    }

    /// Starts pruning each interval until the cancellation token fires.
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        let pruner = self.clone();
        tokio::spawn(async move {
            let interval = pruner.config.prune_interval();
            loop {
                tokio::select! {
                    _ = pruner.cancel.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                // A failure is logged by `prune_expired_now` and retried next round.
                let _ = pruner.prune_expired_now().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i128) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000).unwrap()
    }

    #[test]
    fn the_cutoff_is_retention_before_now_and_orders_as_text() {
        let config = IdempotencyConfig {
            retention_ms: 1_500,
            ..IdempotencyConfig::default()
        };
        let now = 1_700_000_000_000;
        let cutoff = config.cutoff(at(now));
        assert_eq!(cutoff, crate::clock::rfc3339(at(now - 1_500)));
        let expired = crate::clock::rfc3339(at(now - 1_501));
        let kept = crate::clock::rfc3339(at(now - 1_500));
        assert!(expired < cutoff && kept >= cutoff);
    }

    #[test]
    fn the_default_interval_is_a_minute_or_a_24th_of_the_retention() {
        let interval = |retention_ms| {
            IdempotencyConfig {
                retention_ms,
                ..IdempotencyConfig::default()
            }
            .prune_interval()
        };
        assert_eq!(interval(24 * 60 * 60 * 1000), Duration::from_secs(60));
        assert_eq!(interval(12 * 60 * 1000), Duration::from_secs(30));
        assert_eq!(interval(100), Duration::from_secs(1));
        let explicit = IdempotencyConfig {
            prune_interval_ms: Some(20),
            ..IdempotencyConfig::default()
        };
        assert_eq!(explicit.prune_interval(), Duration::from_millis(20));
    }

    #[test]
    fn a_retention_reaching_before_year_0_expires_nothing() {
        for retention_ms in [u64::MAX, 3_000 * 365 * 24 * 60 * 60 * 1000] {
            let config = IdempotencyConfig {
                retention_ms,
                ..IdempotencyConfig::default()
            };
            assert_eq!(config.cutoff(at(1_700_000_000_000)), "");
        }
        let config = IdempotencyConfig {
            retention_ms: 1_500 * 365 * 24 * 60 * 60 * 1000,
            ..IdempotencyConfig::default()
        };
        assert!(config.cutoff(at(1_700_000_000_000)).starts_with("05"));
    }
}
