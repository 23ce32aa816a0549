//! One marker per source: stamps `published_at` on the events every
//! subscriber has consumed, and keeps the outbox depth and lag gauges current.
use super::relay::Relay;
use crate::outbox::store::mark_published;
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
    loop {
        let progressed = relay.progress.notified();
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
