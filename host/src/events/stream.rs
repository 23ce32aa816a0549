//! One stream per (subscriber, source): reads the source's outbox past the
//! subscriber's cursor and delivers each matching event in order. A failing
//! event blocks only its own stream; a delayed one moves to the subscriber's
//! schedule.
use super::attempt::{Settled, attempt, current, persist};
use super::relay::Relay;
use super::relay::Stream;
use crate::outbox::Delivery;
use crate::outbox::OutboxEvent;
use crate::outbox::store::{advance_cursor, load_cursor, read_outbox, schedule};
use crate::plugin::Plugin;
use std::sync::Arc;
use std::time::Duration;

pub(super) async fn run_stream(
    relay: Relay,
    name: Arc<str>,
    source: Arc<Plugin>,
    stream: Arc<Stream>,
) {
    let Some(subscriber) = relay.registry.get(&name) else {
        return;
    };
    let Some(mut position) = persist(&relay, "reading cursor", || {
        load_cursor(&subscriber.slot.db, &source.name)
    })
    .await
    else {
        return;
    };
    publish_position(&relay, &stream, position);
    // Shared by every delivery of this stream; a rebuild's switch takes it alone.
    let gate = relay.gate(&name);
    let mut head = source.slot.head.subscribe();
    let poll = Duration::from_millis(relay.config.poll_ms);
    loop {
        let Some(batch) = persist(&relay, "reading outbox", || {
            read_outbox(&source.slot.db, &source.name, position)
        })
        .await
        else {
            return;
        };
        if batch.is_empty() {
            tokio::select! {
                _ = stream.life.cancelled() => return,
                _ = head.wait_for(|h| *h > position) => {}
                _ = tokio::time::sleep(poll) => {}
            }
            continue;
        }
        let consumed_before = position;
        let mut persisted = position;
        for event in batch {
            if current(&relay, &name, &subscriber).subscribes_to(&source.name, &event.event_type) {
                if !deliver(&relay, &gate, &stream.life, &subscriber, &event).await {
                    return;
                }
                // The handler's transaction advanced the cursor.
                persisted = event.sequence;
                publish_position(&relay, &stream, event.sequence);
            }
            position = event.sequence;
        }
        if position > persisted {
            // Persist the cursor past events this subscriber ignores, so a restart
            // does not rescan them.
            let event_source = source.name.to_string();
            // The version serving now: a rebuilt read model has another database.
            let target = current(&relay, &name, &subscriber);
            if persist(&relay, "advancing cursor", || {
                advance_cursor(&target.slot.db, &event_source, position)
            })
            .await
            .is_none()
            {
                return;
            }
        }
        if position > consumed_before {
            publish_position(&relay, &stream, position);
        }
    }
}

fn publish_position(relay: &Relay, stream: &Stream, position: u64) {
    stream.position.send_replace(position);
    relay.progress.notify_waiters();
}

/// Delivers one event in order: schedules it if delayed, else retries until it is
/// handled or dead-lettered. Returns false when the host is shutting down.
/// `gate` is the subscriber's delivery gate, looked up once per stream;
/// `life` ends the stream (a removed plugin): no delivery starts after it.
async fn deliver(
    relay: &Relay,
    gate: &tokio::sync::RwLock<()>,
    life: &tokio_util::sync::CancellationToken,
    subscriber: &Arc<Plugin>,
    event: &OutboxEvent,
) -> bool {
    let _delivering = gate.read().await;
    if life.is_cancelled() {
        return false;
    }
    if let Some(delay) = event.deliver_after_ms {
        let target = current(relay, &subscriber.name, subscriber);
        let due = crate::clock::parse_millis(&event.created_at)
            .unwrap_or_else(crate::clock::now_millis)
            + delay;
        let scheduled = persist(relay, "scheduling delayed event", || {
            schedule(&target.slot.db, event, due)
        })
        .await;
        relay.scheduled(&subscriber.name, due);
        return scheduled.is_some();
    }
    let mut n = 1;
    loop {
        match attempt(relay, subscriber, event, &event.source, n, Delivery::Stream).await {
            Settled::Done => return true,
            Settled::Stopped => return false,
            Settled::Retry(backoff) => {
                tokio::select! {
                    _ = life.cancelled() => return false,
                    _ = tokio::time::sleep(backoff) => {}
                }
                n += 1;
            }
        }
    }
}
