//! Several in-order events of one stream delivered in one transaction.
//!
//! A stream's deliveries are sequential by design (source order), so each one
//! waiting for its own commit caps a stream at one disk flush per event: about
//! 275 per second on the PostgreSQL measured here, whatever the plugin does.
//! Under load a stream falls behind by many events at once; delivering the
//! ones waiting in one transaction lets one flush acknowledge them all.
//!
//! Each event is still its own plugin call (fresh instance, its own fuel and
//! deadline in the sandbox), and the batch keeps the unit of work's
//! guarantee: the effects of every event and the cursor past the last one
//! commit together or not at all. The batch is optimistic: if any call fails,
//! traps or times out, the whole transaction is rolled back and the stream
//! delivers the same events one by one, where the usual retries and dead
//! letters apply. A batch takes no new event once it has run for
//! [`BATCH_TIME`], or once the events its calls emitted reach one call's
//! event budget, and commits what it has: it holds its transaction (and
//! SQLite's writer) no longer than that plus one call's deadline, and no more
//! emitted events than about two calls may.
use super::{Ran, UnitOfWork, abandon, budget, committed, describe_guest_error};
use crate::outbound;
use crate::outbox::inbox::{Delivery, cursor_in, record_consumed, record_handled};
use crate::outbox::{self, OutboxEvent};
use crate::plugin::Plugin;
use crate::storage::TxMode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most events delivered in one transaction.
pub const MAX_BATCH: usize = 64;

/// A batch starts no new call after running this long.
pub const BATCH_TIME: Duration = Duration::from_millis(50);

/// How a batch ended.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchOutcome {
    /// The events up to this sequence were handled (or had been, before) and
    /// the cursor is past it; the rest, if any, are for the next batch.
    Handled(u64),
    /// Nothing was committed.
    Fallback {
        /// The event that failed (the first, when the batch failed as a whole).
        at: u64,
        /// What went wrong.
        why: String,
        /// The sandbox stopped the call (deadline, trap, fuel, memory): it
        /// may have cost its whole budget.
        timed_out: bool,
    },
}

impl UnitOfWork {
    /// Delivers `events` — consecutive events of one source, each subscribed
    /// to and none delayed — to `subscriber` in one transaction, as the
    /// stream's first attempt at each.
    pub async fn call_batch(
        &self,
        subscriber: &Arc<Plugin>,
        events: &[OutboxEvent],
    ) -> BatchOutcome {
        let Some(last) = events.last() else {
            return BatchOutcome::Handled(0);
        };
        let _in_flight = self.inner.metrics.start_call(&subscriber.name);
        let mut tx = match subscriber
            .slot
            .db
            .begin_call(TxMode::ReadWrite, budget(subscriber))
            .await
        {
            Ok(tx) => tx,
            Err(e) => return fallback(events, e.to_string()),
        };
        let cursor = match cursor_in(&mut tx, &last.source).await {
            Ok(cursor) => cursor,
            Err(e) => return fallback(events, e.to_string()),
        };
        let pending: Vec<&OutboxEvent> = events.iter().filter(|e| e.sequence > cursor).collect();
        if pending.is_empty() {
            // Consumed before (a delivery that committed just before a crash).
            return match tx.rollback().await {
                Ok(()) => BatchOutcome::Handled(last.sequence),
                Err(e) => fallback(events, e.to_string()),
            };
        }
        let started = Instant::now();
        let mut emitted = Vec::new();
        let mut requests = Vec::new();
        let mut through = None;
        let mut handled = Vec::new();
        // Payload bytes emitted by the batch's calls so far.
        let mut held = 0usize;
        for event in pending {
            if through.is_some() && started.elapsed() >= BATCH_TIME {
                break;
            }
            let Ran {
                result,
                tx: back,
                events,
                requests: queued,
            } = self
                .run(
                    subscriber,
                    tx,
                    false,
                    &event.id,
                    event.trace(),
                    event.to_wit(1),
                )
                .await;
            let failure = match result {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(describe_guest_error(&e)),
                Err(e) => {
                    let why = format!("event {}: {e}", event.id);
                    if let Err(e) = abandon(back, &e).await {
                        tracing::warn!(plugin = %subscriber.name, error = %e, "rolling back a batch failed");
                    }
                    return BatchOutcome::Fallback {
                        at: event.sequence,
                        why,
                        timed_out: true,
                    };
                }
            };
            if let Some(failure) = failure {
                if let Err(e) = back.rollback().await {
                    tracing::warn!(plugin = %subscriber.name, error = %e, "rolling back a batch failed");
                }
                return BatchOutcome::Fallback {
                    at: event.sequence,
                    why: format!("event {}: {failure}", event.id),
                    timed_out: false,
                };
            }
            tx = back;
            held += events.iter().map(|e| e.payload.len()).sum::<usize>();
            emitted.extend(events);
            requests.extend(queued);
            through = Some(event);
            handled.push(event);
            // What the batch holds until its flush stays within about two
            // calls' worth: a subscriber that emits its limit on every event
            // must not make the host keep 64 times that.
            if held >= subscriber.limits.event_bytes() {
                break;
            }
        }
        let through = through.expect("the batch ran at least one event");
        let outcome = async {
            // One cursor write covers the batch: the cursor only moves forward
            // and nothing else moves this stream's cursor meanwhile (a racing
            // writer would have made the statement change nothing).
            if !record_consumed(&mut tx, through, Delivery::Stream).await? {
                tx.rollback().await?;
                return Ok(None);
            }
            record_handled(&mut tx, &handled, &subscriber.version).await?;
            let head = outbox::flush(&mut tx, &emitted).await?;
            outbound::store::queue(&mut tx, &requests).await?;
            tx.commit().await?;
            Ok::<_, crate::storage::StorageError>(Some(head))
        }
        .await;
        match outcome {
            Ok(Some(head)) => {
                committed(subscriber, head, &requests);
                BatchOutcome::Handled(through.sequence)
            }
            // Another delivery moved the cursor first: start again one by one,
            // where each event's own check tells what is left.
            Ok(None) => fallback(events, "the cursor moved during the batch".into()),
            Err(e) => fallback(events, e.to_string()),
        }
    }
}

/// A batch that failed as a whole, not at one of its events.
fn fallback(events: &[OutboxEvent], why: String) -> BatchOutcome {
    BatchOutcome::Fallback {
        at: events.first().map_or(0, |e| e.sequence),
        why,
        timed_out: false,
    }
}
