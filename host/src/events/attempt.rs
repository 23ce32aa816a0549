//! What streams and schedulers share: retrying the host's own storage work,
//! the version an attempt goes to, and the one retry-or-dead-letter decision
//! for a delivery attempt.
use super::OutboxEvent;
use super::inbox::Delivery;
use super::store::dead_letter;
use crate::host::Host;
use crate::plugin::Plugin;
use crate::storage::StorageError;
use crate::uow::EventOutcome;
use std::sync::Arc;
use std::time::Duration;

/// Retries a storage operation until it succeeds or the host shuts down.
pub(super) async fn persist<T, F, Fut>(host: &Host, what: &str, mut op: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StorageError>>,
{
    loop {
        match op().await {
            Ok(v) => return Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "{what} failed; retrying");
                tokio::select! {
                    _ = host.cancel.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_millis(host.config.events.poll_ms)) => {}
                }
            }
        }
    }
}

/// The version of `name` that new calls use (each delivery attempt asks again,
/// so a deploy takes effect on the next event).
pub(super) fn current(host: &Host, name: &str, fallback: &Arc<Plugin>) -> Arc<Plugin> {
    host.registry.get(name).unwrap_or_else(|| fallback.clone())
}

/// Where a delivery attempt leaves its event.
pub(super) enum Settled {
    /// Handled, or dead-lettered after its last attempt: the event is done.
    Done,
    /// Failed; try again after this backoff.
    Retry(Duration),
    /// The host is shutting down.
    Stopped,
}

/// Delivers `event` to the current version of `subscriber` once, and decides
/// what follows: counted in `mercato_deliveries_total`, logged, and past the
/// last attempt dead-lettered (consumed in the same transaction).
/// `source_label` is the source as a metric label.
pub(super) async fn attempt(
    host: &Host,
    subscriber: &Arc<Plugin>,
    event: &OutboxEvent,
    source_label: &str,
    attempt: u32,
    delivery: Delivery,
) -> Settled {
    let target = current(host, &subscriber.name, subscriber);
    let result = host.call_event(&target, event, attempt, delivery).await;
    let count = |outcome: &str| {
        host.metrics
            .deliveries
            .with_label_values(&[&*subscriber.name, source_label, outcome])
            .inc();
    };
    let max_attempts = host.config.events.max_attempts;
    match result {
        Ok(EventOutcome::Handled | EventOutcome::AlreadyHandled) => {
            count("ok");
            Settled::Done
        }
        Err(error) if attempt >= max_attempts => {
            count("dead_letter");
            tracing::error!(plugin = %subscriber.name, event = %event.id, source = %event.source, attempts = attempt, ?delivery, %error, "event dead-lettered");
            match persist(host, "dead-lettering", || {
                dead_letter(&subscriber.slot.db, event, &error, attempt, delivery)
            })
            .await
            {
                Some(()) => Settled::Done,
                None => Settled::Stopped,
            }
        }
        Err(error) => {
            count("retry");
            tracing::warn!(plugin = %subscriber.name, event = %event.id, attempt, ?delivery, %error, "event handler failed; will retry");
            Settled::Retry(host.config.events.backoff(attempt))
        }
    }
}
