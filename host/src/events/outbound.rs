//! One outbound worker per plugin: sends the HTTP requests its calls queued
//! (`crate::outbound`), after commit and outside any transaction, and hands
//! each attempt's report to the plugin as an `outbound.DeliveryAttempted`
//! event, through the same retry-or-dead-letter path as every delivery.
//!
//! Per request the order is strict: attempt, record it with its report, let
//! the plugin take the report, and only then is the next attempt due. So the
//! plugin sees attempts 1, 2, 3… of a key in order, each once.
use super::attempt::{Settled, attempt, persist};
use super::relay::Relay;
use crate::outbound::store::{self, Pending, Recorded, Report, State};
use crate::outbound::{REPORT_BODY_BYTES, REPORT_SOURCE, REPORT_TYPE};
use crate::outbox::{Delivery, OutboxEvent};
use crate::plugin::Plugin;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// Requests read per pass.
const BATCH: usize = 64;
/// How often a plugin with nothing queued is looked at anyway.
const IDLE_POLL: Duration = Duration::from_secs(30);

pub(super) async fn run_outbound(
    relay: Relay,
    name: Arc<str>,
    life: tokio_util::sync::CancellationToken,
) {
    let poll = Duration::from_millis(relay.config.poll_ms);
    loop {
        let Some(plugin) = relay.registry.get(&name) else {
            return;
        };
        let woken = plugin.slot.outbound.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let now = crate::clock::now_millis();
        let Some(due) = persist(&relay, "reading outbound requests", || {
            store::due(&plugin.slot.db, now, BATCH)
        })
        .await
        else {
            return;
        };
        let full = due.len() == BATCH;
        let concurrency = plugin.outbound.config().concurrency;
        let batch = futures_util::stream::iter(due)
            .map(|pending| deliver(&relay, &plugin, pending))
            .buffer_unordered(concurrency)
            .any(|finished| async move { !finished });
        // A stopping host does not wait out a batch of slow receivers (64
        // attempts, each up to its timeout): an attempt cut short here is
        // not recorded, so it is made again after the restart with the same
        // key, as after a crash (at-least-once, the receiver dedupes).
        let stopped = tokio::select! {
            stopped = batch => stopped,
            _ = life.cancelled() => true,
        };
        if stopped {
            return;
        }
        let Some((outstanding, next)) = persist(&relay, "counting outbound requests", || {
            store::outstanding(&plugin.slot.db)
        })
        .await
        else {
            return;
        };
        relay
            .metrics
            .outbound_pending
            .with_label_values(&[&*plugin.name])
            .set(i64::try_from(outstanding).unwrap_or(i64::MAX));
        relay.progress.notify_waiters();
        if full {
            continue;
        }
        // Commits wake the worker (a `Notify` keeps the wake-up even when it
        // is not waiting yet), so an idle plugin is only looked at rarely.
        let now = crate::clock::now_millis();
        let sleep = next.map_or(IDLE_POLL, |due| {
            Duration::from_millis(due.saturating_sub(now)).min(poll)
        });
        tokio::select! {
            _ = life.cancelled() => return,
            _ = &mut woken => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Attempts `pending` (unless its report is still to be taken) and hands the
/// report to the plugin. False when the host is stopping.
async fn deliver(relay: &Relay, plugin: &Arc<Plugin>, pending: Pending) -> bool {
    let key = pending.request.key.clone();
    let (attempt_no, report) = match pending.report {
        Some(report) => (pending.attempts, report),
        None => {
            let Some(recorded) = send(relay, plugin, &pending).await else {
                return false;
            };
            match recorded {
                Some(report) => (pending.attempts + 1, report),
                // Another worker recorded this attempt: it reports it too.
                None => return true,
            }
        }
    };
    let event = OutboxEvent {
        id: report.id.clone(),
        source: REPORT_SOURCE.to_owned(),
        sequence: attempt_no.into(),
        event_type: REPORT_TYPE.to_owned(),
        aggregate_id: key.clone(),
        payload: report.payload.clone(),
        created_at: report.at.clone(),
        deliver_after_ms: None,
        // The host's report starts a trace of its own.
        traceparent: None,
    };
    match attempt(
        relay,
        plugin,
        &event,
        REPORT_SOURCE,
        report.failures + 1,
        Delivery::Report,
    )
    .await
    {
        Settled::Done => true,
        Settled::Stopped => false,
        Settled::Retry(backoff) => {
            let due =
                crate::clock::now_millis() + u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX);
            persist(relay, "putting off an outbound report", || {
                store::report_failed(&plugin.slot.db, &key, due)
            })
            .await
            .is_some()
        }
    }
}

/// Sends one attempt and records it: `Some(Some(report))` when recorded,
/// `Some(None)` when another attempt was recorded first, `None` when stopping.
async fn send(relay: &Relay, plugin: &Arc<Plugin>, pending: &Pending) -> Option<Option<Report>> {
    let config = plugin.outbound.config();
    let result = plugin.outbound.attempt(&pending.request).await;
    let attempt_no = pending.attempts + 1;
    let now = crate::clock::now_millis();
    let (state, next_attempt_ms) = if result.delivered() {
        (State::Delivered, now)
    } else if attempt_no >= config.max_attempts {
        (State::Dead, now)
    } else {
        let backoff = config.backoff(attempt_no);
        (
            State::Pending,
            now + u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
        )
    };
    let outcome = match state {
        State::Delivered => "delivered",
        State::Pending => "retrying",
        State::Dead => "dead",
    };
    relay
        .metrics
        .outbound_attempts
        .with_label_values(&[&*plugin.name, &result.label, outcome])
        .inc();
    relay
        .metrics
        .outbound_seconds
        .with_label_values(&[&*plugin.name, &result.label])
        .observe(result.elapsed.as_secs_f64());
    if let Some(error) = &result.error {
        tracing::warn!(plugin = %plugin.name, key = %pending.request.key, attempt = attempt_no, outcome, %error, "outbound attempt failed");
    }
    let body = &result.body[..result.body.len().min(REPORT_BODY_BYTES)];
    let payload = serde_json::json!({
        "key": pending.request.key,
        "attempt": attempt_no,
        "url": pending.request.url,
        "outcome": outcome,
        "status": result.status,
        "error": result.error,
        "duration_ms": u64::try_from(result.elapsed.as_millis()).unwrap_or(u64::MAX),
        "response_body": String::from_utf8_lossy(body),
        "next_attempt_at": (state == State::Pending).then(|| crate::clock::rfc3339_millis(next_attempt_ms)),
    });
    let report = Report {
        id: uuid::Uuid::new_v4().to_string(),
        payload: payload.to_string(),
        at: crate::clock::now_rfc3339(),
        failures: 0,
    };
    let record = Recorded {
        key: &pending.request.key,
        attempt: attempt_no,
        state,
        next_attempt_ms,
        status: result.status,
        error: result.error.as_deref(),
        report: &report,
    };
    let recorded = persist(relay, "recording an outbound attempt", || {
        store::record_attempt(&plugin.slot.db, &record)
    })
    .await?;
    Some(recorded.then_some(report))
}
