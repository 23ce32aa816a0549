//! The guest-facing `outbox` interface: validates and queues events; they are
//! written at commit, in the call's transaction.
use super::{MAX_DELAY_MS, MAX_EVENTS_PER_CALL, MAX_PAYLOAD_BYTES, PendingEvent, valid_event_type};
use crate::bindings::GuestError;
use crate::bindings::mercato::plugin::outbox;

/// The outbox capability's per-call state: the events a call emitted, written
/// at commit.
pub struct OutboxCall {
    /// Events emitted during the call, in order.
    pub events: Vec<PendingEvent>,
    /// Bytes held in `events`.
    event_bytes: usize,
    /// Most bytes `events` may hold (the plugin's `max_event_bytes`).
    max_event_bytes: usize,
    /// A read-only call (GET) may not emit events.
    read_only: bool,
    /// Why this call may emit nothing at all, if it may not.
    denied: Option<&'static str>,
}

impl OutboxCall {
    /// An empty outbox for a call that may emit `max_event_bytes` (none when
    /// `read_only`).
    pub fn new(max_event_bytes: usize, read_only: bool) -> Self {
        OutboxCall {
            events: Vec::new(),
            event_bytes: 0,
            max_event_bytes,
            read_only,
            denied: None,
        }
    }

    /// Refuses every event of this call, saying `why`.
    pub fn deny(&mut self, why: &'static str) {
        self.denied = Some(why);
    }
}

impl outbox::Host for OutboxCall {
    async fn emit(
        &mut self,
        event_type: String,
        aggregate_id: String,
        payload: String,
        deliver_after_ms: Option<u64>,
    ) -> wasmtime::Result<Result<(), GuestError>> {
        if let Some(why) = self.denied {
            return Ok(Err(GuestError::Denied(why.into())));
        }
        if self.read_only {
            return Ok(Err(GuestError::Denied(
                "events cannot be emitted while serving a read-only (GET) request".into(),
            )));
        }
        let size = event_type.len() + aggregate_id.len() + payload.len();
        if self.event_bytes + size > self.max_event_bytes {
            return Ok(Err(GuestError::Invalid(format!(
                "events emitted by one call may hold at most {} bytes; emit fewer or smaller events",
                self.max_event_bytes
            ))));
        }
        Ok(validate(
            &event_type,
            &aggregate_id,
            &payload,
            deliver_after_ms,
            self.events.len(),
        )
        .map(|correlation_id| {
            self.event_bytes += size;
            self.events.push(PendingEvent {
                event_type,
                aggregate_id,
                payload,
                deliver_after_ms: deliver_after_ms.filter(|ms| *ms > 0),
                correlation_id,
                trace: None,
            });
        }))
    }
}

fn validate(
    event_type: &str,
    aggregate_id: &str,
    payload: &str,
    delay: Option<u64>,
    queued: usize,
) -> Result<Option<String>, GuestError> {
    if !valid_event_type(event_type) {
        return Err(GuestError::Invalid(format!(
            "event type `{event_type}` must be 1-128 letters, digits or `_`, without a source prefix"
        )));
    }
    if aggregate_id.is_empty() || aggregate_id.len() > 256 {
        return Err(GuestError::Invalid(
            "aggregate id must be 1-256 bytes".into(),
        ));
    }
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(GuestError::Invalid(format!(
            "payload exceeds {MAX_PAYLOAD_BYTES} bytes"
        )));
    }
    let correlation_id = super::correlation_id(payload)
        .map_err(|e| GuestError::Invalid(format!("payload is not JSON: {e}")))?;
    if delay.is_some_and(|ms| ms > MAX_DELAY_MS) {
        return Err(GuestError::Invalid(format!(
            "delay exceeds {MAX_DELAY_MS} ms"
        )));
    }
    if queued >= MAX_EVENTS_PER_CALL {
        return Err(GuestError::Invalid(format!(
            "a call may emit at most {MAX_EVENTS_PER_CALL} events"
        )));
    }
    Ok(correlation_id)
}
