//! One marker per source: stamps `published_at` on the events every
//! subscriber has consumed, and keeps the outbox depth and lag gauges current.
use super::relay::Relay;
use crate::outbox::store::{committed_at, mark_published, unpublished};
use crate::plugin::Plugin;
use std::sync::Arc;
use std::time::Duration;

/// Stamps `published_at` on events every subscriber has consumed, and keeps the
/// depth and lag gauges current.
pub(super) async fn run_marker(
    relay: Relay,
    source: Arc<Plugin>,
    life: tokio_util::sync::CancellationToken,
) {
    let mut marked = 0;
    let poll = Duration::from_millis(relay.config.poll_ms.max(100));
    // Every plugin has a depth from the start, emitting or not.
    match unpublished(&source.slot.db).await {
        Ok(depth) => relay
            .metrics
            .outbox_depth
            .with_label_values(&[&source.name])
            .set(i64::try_from(depth).unwrap_or(i64::MAX)),
        Err(e) => {
            tracing::warn!(plugin = %source.name, error = %e, "reading the outbox depth failed")
        }
    }
    loop {
        let progressed = relay.progress.notified();
        relay.refresh_positions(&source.name).await;
        let head = *source.slot.head.borrow();
        let target = relay.min_position(&source.name).unwrap_or(head);
        if target > marked {
            match mark_published(&source.slot.db, target).await {
                Ok(depth) => {
                    marked = target;
                    relay
                        .metrics
                        .outbox_depth
                        .with_label_values(&[&source.name])
                        .set(i64::try_from(depth).unwrap_or(i64::MAX));
                }
                Err(e) => {
                    tracing::warn!(plugin = %source.name, error = %e, "marking events published failed")
                }
            }
        }
        for s in relay
            .status()
            .into_iter()
            .filter(|s| s.source == *source.name)
        {
            relay
                .metrics
                .outbox_lag
                .with_label_values(&[&s.subscriber, &s.source])
                .set(s.lag as i64);
            // How long the oldest event the subscriber has not consumed has
            // waited: what an alert on a stuck stream watches.
            let age = match oldest_unconsumed_secs(&source.slot.db, &s).await {
                Ok(age) => age,
                Err(e) => {
                    tracing::warn!(plugin = %source.name, error = %e, "reading the oldest unconsumed event failed");
                    None
                }
            };
            if let Some(age) = age {
                relay
                    .metrics
                    .oldest_unconsumed
                    .with_label_values(&[&s.subscriber, &s.source])
                    .set(age);
            }
        }
        tokio::select! {
            _ = life.cancelled() => return,
            _ = progressed => {}
            _ = tokio::time::sleep(poll) => {}
        }
        // Batch bursts of progress into one UPDATE.
        tokio::select! {
            _ = life.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

/// How long the oldest event of `stream`'s source its subscriber has not
/// consumed has waited, in seconds: 0 when caught up; `None` when the source
/// no longer holds that event. `db` is the source's database.
pub async fn oldest_unconsumed_secs(
    db: &crate::storage::Database,
    stream: &super::StreamStatus,
) -> Result<Option<f64>, crate::storage::StorageError> {
    if stream.lag == 0 {
        return Ok(Some(0.0));
    }
    Ok(committed_at(db, stream.position + 1)
        .await?
        .as_deref()
        .and_then(crate::clock::parse_millis)
        .map(|at| crate::clock::now_millis().saturating_sub(at) as f64 / 1000.0))
}
