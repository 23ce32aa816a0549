//! The plugin's transactional outbox.
use crate::Error;
use crate::bindings::mercato::plugin::outbox;
use serde::Serialize;

/// Emits `event_type` (no source prefix) for `aggregate_id` with a JSON payload.
/// It is published only if the current call commits.
pub fn emit<T: Serialize>(event_type: &str, aggregate_id: &str, payload: &T) -> Result<(), Error> {
    emit_inner(event_type, aggregate_id, payload, None)
}

/// Like [`emit`], delivered to subscribers no earlier than `delay_ms` after commit.
/// This is how a plugin sets a timer (e.g. a reservation's expiry).
pub fn emit_after<T: Serialize>(
    event_type: &str,
    aggregate_id: &str,
    payload: &T,
    delay_ms: u64,
) -> Result<(), Error> {
    emit_inner(event_type, aggregate_id, payload, Some(delay_ms))
}

fn emit_inner<T: Serialize>(
    event_type: &str,
    aggregate_id: &str,
    payload: &T,
    delay_ms: Option<u64>,
) -> Result<(), Error> {
    let json = serde_json::to_string(payload).map_err(|e| Error::Internal(e.to_string()))?;
    outbox::emit(event_type, aggregate_id, &json, delay_ms)
}

/// Parses an event's JSON payload.
pub fn payload<T: serde::de::DeserializeOwned>(event: &crate::Event) -> Result<T, Error> {
    serde_json::from_str(&event.payload).map_err(|e| {
        Error::Invalid(format!(
            "{}.{} payload: {e}",
            event.source, event.event_type
        ))
    })
}
