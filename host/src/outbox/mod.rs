//! The outbox and inbox capability: what a plugin emits and what it consumed,
//! kept in the plugin's own database.
//!
//! A call's emitted events are queued in its per-call state (`guest.rs`, the
//! guest's `outbox` interface) and written to the plugin's `outbox_events` in
//! the same transaction as its state ([`flush`]). A subscriber records what it
//! consumed in its own transaction (`inbox.rs`), which makes the effect
//! exactly once. The host tables of delivery — cursors, the schedule of
//! delayed events, dead letters — and all their SQL are in `store.rs`; the
//! relay that moves events between plugins is `crate::events`.
mod guest;
pub mod inbox;
pub mod store;
#[cfg(test)]
mod tests;

pub use guest::OutboxCall;
pub use inbox::Delivery;

use crate::bindings::SqlValue;
use crate::storage::{StagedEvents, StorageError, Tx};

/// Most events one call may emit.
pub const MAX_EVENTS_PER_CALL: usize = 10_000;
/// Largest payload, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// Longest delay a plugin may ask for (30 days).
pub const MAX_DELAY_MS: u64 = 30 * 24 * 3600 * 1000;

/// An event emitted during a call, not yet written.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    /// Type without source prefix.
    pub event_type: String,
    /// The aggregate it concerns.
    pub aggregate_id: String,
    /// JSON text.
    pub payload: String,
    /// Requested delivery delay after commit.
    pub deliver_after_ms: Option<u64>,
    /// The saga it belongs to ([`correlation_id`]).
    pub correlation_id: Option<String>,
    /// The emitting call's span, stored as the event's `traceparent`.
    pub trace: Option<crate::trace::TraceContext>,
}

/// Longest correlation id kept; a longer `order_id` is no order of the shop's.
const MAX_CORRELATION_BYTES: usize = 128;

/// Reads a payload (an error: it is not JSON) and finds the saga its event
/// belongs to: the top-level `order_id` string, the key of the shop's order
/// saga in every context's events. Stored with the event
/// (`outbox_events.correlation_id`, indexed), it lets an operator see one
/// order's events across every context (`GET /admin/orders/{id}/timeline`, `crate::events::timeline`)
/// without a scan of every outbox.
pub fn correlation_id(payload: &str) -> Result<Option<String>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        order_id: Option<serde_json::Value>,
    }
    match serde_json::from_str::<Probe>(payload) {
        Ok(Probe {
            order_id: Some(serde_json::Value::String(id)),
        }) if payload.trim_start().starts_with('{')
            && !id.is_empty()
            && id.len() <= MAX_CORRELATION_BYTES =>
        {
            Ok(Some(id))
        }
        Ok(_) => Ok(None),
        // Not an object with one `order_id` (an array, a scalar, a
        // duplicate key): still an event, if it is JSON at all.
        Err(_) => serde_json::from_str::<serde::de::IgnoredAny>(payload).map(|_| None),
    }
}

/// An event as stored in a source's outbox.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// UUID.
    pub id: String,
    /// Source plugin.
    pub source: String,
    /// Position in the source outbox.
    pub sequence: u64,
    /// Type without prefix.
    pub event_type: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// JSON text.
    pub payload: String,
    /// Commit time, RFC 3339.
    pub created_at: String,
    /// Requested delay.
    pub deliver_after_ms: Option<u64>,
    /// W3C `traceparent` of the call that emitted it, which its handlers continue.
    pub traceparent: Option<String>,
}

impl OutboxEvent {
    /// The trace its handlers continue: its emitter's span, when it was
    /// stored with one that reads as a `traceparent`.
    pub fn trace(&self) -> Option<crate::trace::TraceContext> {
        self.traceparent
            .as_deref()
            .and_then(crate::trace::TraceContext::parse)
    }

    /// The form a subscriber receives.
    pub fn to_wit(&self, attempt: u32) -> crate::bindings::Event {
        crate::bindings::Event {
            id: self.id.clone(),
            source: self.source.clone(),
            event_type: self.event_type.clone(),
            aggregate_id: self.aggregate_id.clone(),
            payload: self.payload.clone(),
            occurred_at: self.created_at.clone(),
            sequence: self.sequence,
            attempt,
        }
    }
}

/// Event types: letters, digits, `_`, up to 128 characters.
pub fn valid_event_type(ty: &str) -> bool {
    !ty.is_empty() && ty.len() <= 128 && ty.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What [`flush`] did with a call's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// The call emitted none.
    Nothing,
    /// Written with their sequence numbers; this is the last one.
    Numbered(u64),
    /// Staged: they are numbered after commit ([`store::number_staged`]).
    Staged,
}

/// Writes queued events to the outbox inside `tx`.
pub async fn flush(tx: &mut Tx, events: &[PendingEvent]) -> Result<Flushed, StorageError> {
    let traceparent = |event: &PendingEvent| event.trace.map(|t| t.header());
    if events.is_empty() {
        return Ok(Flushed::Nothing);
    }
    let now = crate::clock::now_rfc3339();
    if tx.stages_outbox() {
        let mut staged = StagedEvents::default();
        for event in events {
            staged.ids.push(uuid::Uuid::new_v4().to_string());
            staged.aggregate_ids.push(event.aggregate_id.clone());
            staged.event_types.push(event.event_type.clone());
            staged.payloads.push(event.payload.clone());
            staged.created_at.push(now.clone());
            staged
                .delays_ms
                .push(event.deliver_after_ms.map(|ms| ms as i64));
            staged.traceparents.push(traceparent(event));
            staged.correlation_ids.push(event.correlation_id.clone());
        }
        tx.stage_events(&staged).await?;
        return Ok(Flushed::Staged);
    }
    let mut sequence = tx.last_sequence().await?;
    for event in events {
        sequence += 1;
        tx.host_execute(
            "INSERT INTO outbox_events (id, sequence, aggregate_id, event_type, payload, created_at, \
             deliver_after_ms, traceparent, correlation_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                SqlValue::Text(uuid::Uuid::new_v4().to_string()),
                SqlValue::Integer(sequence),
                SqlValue::Text(event.aggregate_id.clone()),
                SqlValue::Text(event.event_type.clone()),
                SqlValue::Text(event.payload.clone()),
                SqlValue::Text(now.clone()),
                event
                    .deliver_after_ms
                    .map_or(SqlValue::Null, |ms| SqlValue::Integer(ms as i64)),
                traceparent(event).map_or(SqlValue::Null, SqlValue::Text),
                event
                    .correlation_id
                    .clone()
                    .map_or(SqlValue::Null, SqlValue::Text),
            ],
        )
        .await?;
    }
    Ok(Flushed::Numbered(sequence as u64))
}
