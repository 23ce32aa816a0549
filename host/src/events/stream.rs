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
use crate::unit_of_work::{BatchOutcome, MAX_BATCH};
use std::sync::Arc;
use std::time::Duration;

pub(super) async fn run_stream(
    relay: Relay,
    name: Arc<str>,
    source: Arc<Plugin>,
    stream: Arc<Stream>,
    life: tokio_util::sync::CancellationToken,
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
    // Events still to deliver one by one after a batch fell back.
    let mut singles = 0usize;
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
                _ = life.cancelled() => return,
                _ = head.wait_for(|h| *h > position) => {}
                _ = tokio::time::sleep(poll) => {}
            }
            continue;
        }
        let consumed_before = position;
        let mut persisted = position;
        // Consecutive events to hand over together (see `unit_of_work::batch`).
        let mut run: Vec<OutboxEvent> = Vec::new();
        for event in batch {
            let target = current(&relay, &name, &subscriber);
            if !target.subscribes_to(&source.name, &event.event_type) {
                position = event.sequence;
                continue;
            }
            if event.deliver_after_ms.is_none() && singles == 0 {
                run.push(event);
                if run.len() == MAX_BATCH {
                    if !deliver_run(
                        &relay,
                        &gate,
                        &stream,
                        &life,
                        &subscriber,
                        &mut run,
                        &mut singles,
                    )
                    .await
                    {
                        return;
                    }
                    persisted = position_after(&stream);
                }
                continue;
            }
            if !deliver_run(
                &relay,
                &gate,
                &stream,
                &life,
                &subscriber,
                &mut run,
                &mut singles,
            )
            .await
            {
                return;
            }
            if !deliver(&relay, &gate, &life, &subscriber, &event).await {
                return;
            }
            singles = singles.saturating_sub(1);
            // The handler's transaction advanced the cursor.
            persisted = event.sequence;
            position = event.sequence;
            publish_position(&relay, &stream, event.sequence);
        }
        if !run.is_empty() {
            if !deliver_run(
                &relay,
                &gate,
                &stream,
                &life,
                &subscriber,
                &mut run,
                &mut singles,
            )
            .await
            {
                return;
            }
            persisted = position_after(&stream);
        }
        position = position.max(persisted);
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

/// The stream's published position.
fn position_after(stream: &Stream) -> u64 {
    *stream.position.borrow()
}

/// Delivers a run of consecutive subscribed, undelayed events and empties it:
/// several per transaction while more than one is left, else one by one with
/// retries. When a batch fails at an event, the events before it (which ran
/// fine in it) go again together and the failing one goes alone, through the
/// retries and dead letters. A batch whose call ran out of time or trapped
/// also sends the next [`MAX_BATCH`] events one by one (`singles`), so a
/// plugin whose calls keep running to their deadline wastes at most one
/// batch per that many events. Returns false when the stream must stop.
async fn deliver_run(
    relay: &Relay,
    gate: &tokio::sync::RwLock<()>,
    stream: &Stream,
    life: &tokio_util::sync::CancellationToken,
    subscriber: &Arc<Plugin>,
    run: &mut Vec<OutboxEvent>,
    singles: &mut usize,
) -> bool {
    let mut events = std::mem::take(run);
    // How many of `events` the next batch may take, and the one event that
    // failed in a batch and goes alone.
    let mut limit = usize::MAX;
    let mut alone = None;
    while let Some(first) = events.first() {
        if events.len() == 1 || *singles > 0 || alone == Some(first.sequence) {
            let event = events.remove(0);
            if !deliver(relay, gate, life, subscriber, &event).await {
                return false;
            }
            publish_position(relay, stream, event.sequence);
            *singles = singles.saturating_sub(1);
            continue;
        }
        let batch = &events[..events.len().min(limit)];
        let outcome = {
            let _delivering = gate.read().await;
            if life.is_cancelled() {
                return false;
            }
            let target = current(relay, &subscriber.name, subscriber);
            relay.calls.call_batch(&target, batch).await
        };
        match outcome {
            BatchOutcome::Handled(through) => {
                let done = events.iter().take_while(|e| e.sequence <= through).count();
                if done == 0 {
                    // Cannot happen (a batch handles at least its first
                    // event); one by one is always safe.
                    *singles = 1;
                    continue;
                }
                let labels = [&*subscriber.name, &*events[0].source];
                relay
                    .metrics
                    .deliveries
                    .with_label_values(&[labels[0], labels[1], "ok"])
                    .inc_by(done as u64);
                relay
                    .metrics
                    .delivery_batch
                    .with_label_values(&labels)
                    .observe(done as f64);
                publish_position(relay, stream, through);
                events.drain(..done);
                limit = usize::MAX;
            }
            BatchOutcome::Fallback { at, why, timed_out } => {
                tracing::debug!(plugin = %subscriber.name, source = %first.source, at, %why, "a batch was rolled back; its failing event goes alone");
                if timed_out {
                    *singles = MAX_BATCH;
                }
                alone = Some(at);
                limit = events.iter().take_while(|e| e.sequence < at).count();
            }
        }
    }
    true
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
