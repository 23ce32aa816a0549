//! One scheduler per subscriber: delivers its delayed events
//! (`mercato_scheduled`) when due, retrying a failed one by moving its due time.
use super::attempt::{Settled, attempt, persist};
use super::relay::Relay;
use super::relay::Schedule;
use crate::outbox::Delivery;
use crate::outbox::store::{next_due, read_due, reschedule};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub(super) async fn run_scheduler(
    relay: Relay,
    name: Arc<str>,
    schedule: Arc<Schedule>,
    life: tokio_util::sync::CancellationToken,
) {
    let poll = Duration::from_millis(relay.config.poll_ms);
    loop {
        // The version serving now: a rebuilt read model has another database.
        let Some(subscriber) = relay.registry.get(&name) else {
            return;
        };
        let woken = schedule.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let now = crate::clock::now_millis();
        let Some(due) = persist(&relay, "reading scheduled events", || {
            read_due(&subscriber.slot.db, now)
        })
        .await
        else {
            return;
        };
        for (event, attempts) in due {
            let n = attempts + 1;
            // The source is read back from the subscriber's own database,
            // which its plugin can write on PostgreSQL: only the name of a
            // running plugin may become a label value.
            let source = match relay.registry.get(&event.source) {
                Some(_) => event.source.as_str(),
                None => crate::metrics::UNKNOWN,
            };
            let gate = relay.gate(&name);
            let delivering = gate.read().await;
            let settled =
                attempt(&relay, &subscriber, &event, source, n, Delivery::Scheduled).await;
            drop(delivering);
            match settled {
                Settled::Done => {}
                Settled::Stopped => return,
                Settled::Retry(backoff) => {
                    let retry_at = crate::clock::now_millis()
                        + u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX);
                    if persist(&relay, "rescheduling", || {
                        reschedule(&subscriber.slot.db, &event.id, retry_at)
                    })
                    .await
                    .is_none()
                    {
                        return;
                    }
                }
            }
        }
        let inserted = schedule.inserted.load(Ordering::SeqCst);
        let Some(next_due) =
            persist(&relay, "reading schedule", || next_due(&subscriber.slot.db)).await
        else {
            return;
        };
        if schedule.inserted.load(Ordering::SeqCst) != inserted {
            // An event was scheduled meanwhile; look again before publishing.
            continue;
        }
        schedule.next_due.send_replace(next_due);
        relay.progress.notify_waiters();
        let now = crate::clock::now_millis();
        let sleep = next_due.map_or(poll, |due| {
            Duration::from_millis(due.saturating_sub(now)).min(poll)
        });
        tokio::select! {
            _ = life.cancelled() => return,
            _ = &mut woken => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}
