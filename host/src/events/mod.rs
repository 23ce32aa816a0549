//! Events: the transactional outbox, subscription patterns and the relay.
//!
//! A call's emitted events are queued in its store (`outbox.rs`, the guest
//! interface) and written to the plugin's `outbox_events` in the same
//! transaction as its state (`flush`). The relay (`relay.rs`) runs a stream per
//! (subscriber, source) (`stream.rs`), a scheduler per subscriber for delayed
//! events (`scheduler.rs`) and a marker per source (`marker.rs`); both kinds of
//! delivery share one retry-or-dead-letter path (`attempt.rs`). The subscriber
//! records what it consumed in its own transaction (`inbox.rs`), which makes
//! the effect exactly once. All their SQL is in `store.rs`.
mod attempt;
pub mod inbox;
mod marker;
mod outbox;
pub mod redrive;
mod relay;
mod scheduler;
pub mod store;
mod stream;

pub use inbox::Delivery;
pub use relay::{Relay, StreamStatus};

use crate::bindings::SqlValue;
use crate::storage::{StorageError, Tx};

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
}

impl OutboxEvent {
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

/// A subscription: `source.EventType` or `source.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// Source plugin.
    pub source: String,
    /// Event type, or `None` for every type.
    pub event_type: Option<String>,
}

impl Pattern {
    /// Parses `source.Type` / `source.*`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (source, ty) = text.split_once('.').ok_or_else(|| {
            format!("subscription `{text}` must look like `source.EventType` or `source.*`")
        })?;
        if !valid_name(source) || ty.is_empty() || (ty != "*" && !valid_event_type(ty)) {
            return Err(format!(
                "subscription `{text}` must look like `source.EventType` or `source.*`"
            ));
        }
        Ok(Pattern {
            source: source.to_owned(),
            event_type: (ty != "*").then(|| ty.to_owned()),
        })
    }

    /// True when the pattern selects `event_type` from `source`.
    pub fn matches(&self, source: &str, event_type: &str) -> bool {
        self.source == source && self.event_type.as_deref().is_none_or(|t| t == event_type)
    }
}

/// Plugin names: lower-case letters, digits and `-`, starting with a letter.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 48
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Event types: letters, digits, `_`, up to 128 characters.
pub fn valid_event_type(ty: &str) -> bool {
    !ty.is_empty() && ty.len() <= 128 && ty.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Writes queued events to the outbox inside `tx`; returns the last sequence used.
pub async fn flush(tx: &mut Tx, events: &[PendingEvent]) -> Result<Option<u64>, StorageError> {
    if events.is_empty() {
        return Ok(None);
    }
    let mut sequence = tx.reserve_sequences(events.len() as u64).await?;
    let now = crate::clock::now_rfc3339();
    for event in events {
        sequence += 1;
        tx.host_execute(
            "INSERT INTO outbox_events (id, sequence, aggregate_id, event_type, payload, created_at, deliver_after_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
            ],
        )
        .await?;
    }
    Ok(Some(sequence as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_select_by_source_and_type() {
        let all = Pattern::parse("orders.*").unwrap();
        let one = Pattern::parse("orders.OrderPlaced").unwrap();
        assert!(all.matches("orders", "OrderPaid"));
        assert!(one.matches("orders", "OrderPlaced"));
        assert!(!one.matches("orders", "OrderPaid"));
        assert!(!all.matches("payments", "OrderPlaced"));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "orders",
            ".X",
            "orders.",
            "Orders.*",
            "orders.Order-Placed",
            "a.b.c",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
