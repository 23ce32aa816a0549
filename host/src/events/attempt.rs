//! What streams and schedulers share: retrying the host's own storage work,
//! the version an attempt goes to, and the one retry-or-dead-letter decision
//! for a delivery attempt.
use super::relay::Relay;
use crate::config::EventsConfig;
use crate::outbox::Delivery;
use crate::outbox::OutboxEvent;
use crate::outbox::store::dead_letter;
use crate::plugin::Plugin;
use crate::storage::StorageError;
use crate::unit_of_work::EventOutcome;
use std::sync::Arc;
use std::time::Duration;

/// Retries a storage operation until it succeeds or the host shuts down.
pub(super) async fn persist<T, F, Fut>(relay: &Relay, what: &str, mut op: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StorageError>>,
{
    loop {
        match op().await {
            Ok(v) => return Some(v),
            // Another host holds this work now: stop it here.
            Err(StorageError::Fenced(_)) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "{what} failed; retrying");
                tokio::select! {
                    _ = relay.cancel.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_millis(relay.config.poll_ms)) => {}
                }
            }
        }
    }
}

/// The version of `name` that new calls use (each delivery attempt asks again,
/// so a deploy takes effect on the next event).
pub(super) fn current(relay: &Relay, name: &str, fallback: &Arc<Plugin>) -> Arc<Plugin> {
    relay.registry.get(name).unwrap_or_else(|| fallback.clone())
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
    relay: &Relay,
    subscriber: &Arc<Plugin>,
    event: &OutboxEvent,
    source_label: &str,
    attempt: u32,
    delivery: Delivery,
) -> Settled {
    let target = current(relay, &subscriber.name, subscriber);
    let result = relay
        .calls
        .call_event(&target, event, attempt, delivery)
        .await;
    let count = |outcome: &str| {
        relay
            .metrics
            .deliveries
            .with_label_values(&[&*subscriber.name, source_label, outcome])
            .inc();
    };
    match next(&result, attempt, &relay.config) {
        Next::Done => {
            count("ok");
            Settled::Done
        }
        Next::Fenced => {
            count("fenced");
            Settled::Stopped
        }
        Next::DeadLetter(error) => {
            count("dead_letter");
            tracing::error!(plugin = %subscriber.name, event = %event.id, source = %event.source, attempts = attempt, ?delivery, %error, "event dead-lettered");
            match persist(relay, "dead-lettering", || {
                dead_letter(&subscriber.slot.db, event, error, attempt, delivery)
            })
            .await
            {
                Some(()) => Settled::Done,
                None => Settled::Stopped,
            }
        }
        Next::Retry(error, backoff) => {
            count("retry");
            tracing::warn!(plugin = %subscriber.name, event = %event.id, attempt, ?delivery, %error, "event handler failed; will retry");
            Settled::Retry(backoff)
        }
    }
}

/// What follows attempt number `attempt` (1-based) that ended in `result`.
#[derive(Debug, PartialEq, Eq)]
enum Next<'a> {
    /// Handled now or before: the event is done.
    Done,
    /// Another host took the work over: this one stops.
    Fenced,
    /// It failed for the last time: dead-letter it with this error.
    DeadLetter(&'a str),
    /// It failed: try again after the backoff.
    Retry(&'a str, Duration),
}

/// The one retry-or-dead-letter decision of both kinds of delivery.
fn next<'a>(
    result: &'a Result<EventOutcome, String>,
    attempt: u32,
    config: &EventsConfig,
) -> Next<'a> {
    match result {
        Ok(EventOutcome::Handled | EventOutcome::AlreadyHandled) => Next::Done,
        Ok(EventOutcome::Fenced) => Next::Fenced,
        Err(error) if attempt >= config.max_attempts => Next::DeadLetter(error),
        Err(error) => Next::Retry(error, config.backoff(attempt)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EventsConfig {
        EventsConfig {
            max_attempts: 3,
            backoff_base_ms: 100,
            backoff_max_ms: 250,
            poll_ms: 1_000,
        }
    }

    #[test]
    fn a_handled_event_is_done_whatever_the_attempt() {
        for outcome in [EventOutcome::Handled, EventOutcome::AlreadyHandled] {
            let result = Ok(outcome);
            assert_eq!(next(&result, 1, &config()), Next::Done);
            assert_eq!(next(&result, 3, &config()), Next::Done);
        }
    }

    #[test]
    fn a_failure_is_retried_with_growing_backoff_then_dead_lettered() {
        let result = Err("conflict: stock".to_owned());
        let config = config();
        assert_eq!(
            next(&result, 1, &config),
            Next::Retry("conflict: stock", Duration::from_millis(100))
        );
        // Doubled, then capped at backoff_max_ms.
        assert_eq!(
            next(&result, 2, &config),
            Next::Retry("conflict: stock", Duration::from_millis(200))
        );
        assert_eq!(
            next(&result, 3, &config),
            Next::DeadLetter("conflict: stock")
        );
        assert_eq!(
            next(&result, 9, &config),
            Next::DeadLetter("conflict: stock")
        );
    }

    #[test]
    fn one_attempt_means_no_retry() {
        let config = EventsConfig {
            max_attempts: 1,
            ..config()
        };
        let result = Err("trap".to_owned());
        assert_eq!(next(&result, 1, &config), Next::DeadLetter("trap"));
    }
}
