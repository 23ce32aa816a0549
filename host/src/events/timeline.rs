//! One order's saga across every context, as an operator reads it: every
//! event that names the order (`outbox_events.correlation_id`, see
//! [`crate::outbox::correlation_id`]), in commit order, with who handled each —
//! which plugin, which version, when (`mercato_handled`) — and which
//! subscriber gave up on it (`mercato_dead_letters`, with the error).
//! Reads only: one indexed query per outbox and two per subscriber.
use crate::bindings::SqlValue;
use crate::plugin::Plugin;
use crate::storage::{StorageError, host_rows};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Most events one timeline shows (an order's saga emits a few dozen).
pub const MAX_EVENTS: usize = 500;

/// One event of the saga.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// When it was committed (RFC 3339).
    pub at: String,
    /// The plugin that emitted it.
    pub plugin: String,
    /// `source.Type`.
    pub event_type: String,
    /// Event id.
    pub event_id: String,
    /// Position in its source's outbox.
    pub sequence: u64,
    /// Its aggregate.
    pub aggregate_id: String,
    /// The trace it belongs to (32 hex digits), from its `traceparent`.
    pub trace_id: Option<String>,
    /// Who handled it, or failed to.
    pub handled_by: Vec<Handling>,
}

/// A subscriber's handling of one event.
#[derive(Debug, Clone, Serialize)]
pub struct Handling {
    /// The subscriber.
    pub plugin: String,
    /// Its version that handled it (`null` for a dead letter).
    pub version: Option<String>,
    /// When it committed, or was dead-lettered.
    pub at: String,
    /// `handled`, or `dead_letter`.
    pub outcome: &'static str,
    /// Why it was dead-lettered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Attempts made before it was dead-lettered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u64>,
}

/// The timeline of order `order_id` over `plugins` (empty: no event names it).
pub async fn timeline(plugins: &[Arc<Plugin>], order_id: &str) -> Result<Vec<Entry>, StorageError> {
    let mut entries = Vec::new();
    for plugin in plugins {
        let rows = plugin
            .slot
            .db
            .read_once(
                "SELECT id, sequence, event_type, aggregate_id, created_at, traceparent \
                 FROM outbox_events WHERE correlation_id = $1 ORDER BY sequence LIMIT $2",
                &[
                    SqlValue::Text(order_id.to_owned()),
                    SqlValue::Integer(MAX_EVENTS as i64),
                ],
            )
            .await?;
        for row in host_rows(&rows) {
            let traceparent = row.opt_text("traceparent")?;
            entries.push(Entry {
                at: row.text("created_at")?,
                plugin: plugin.name.to_string(),
                event_type: format!("{}.{}", plugin.name, row.text("event_type")?),
                event_id: row.text("id")?,
                sequence: row.uint("sequence")?,
                aggregate_id: row.text("aggregate_id")?,
                trace_id: traceparent
                    .as_deref()
                    .and_then(crate::trace::TraceContext::parse)
                    .map(|t| t.trace_id_hex()),
                handled_by: Vec::new(),
            });
        }
    }
    // RFC 3339 UTC of fixed width: text order is time order.
    entries.sort_by(|a, b| (&a.at, &a.plugin, a.sequence).cmp(&(&b.at, &b.plugin, b.sequence)));
    entries.truncate(MAX_EVENTS);
    if entries.is_empty() {
        return Ok(entries);
    }
    let index: HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.event_id.clone(), i))
        .collect();
    let ids: Vec<SqlValue> = entries
        .iter()
        .map(|e| SqlValue::Text(e.event_id.clone()))
        .collect();
    let placeholders = (1..=ids.len())
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ");
    for plugin in plugins {
        let handled = plugin
            .slot
            .db
            .read_once(
                &format!(
                    "SELECT event_id, version, handled_at FROM mercato_handled \
                     WHERE event_id IN ({placeholders})"
                ),
                &ids,
            )
            .await?;
        for row in host_rows(&handled) {
            if let Some(&i) = index.get(&row.text("event_id")?) {
                entries[i].handled_by.push(Handling {
                    plugin: plugin.name.to_string(),
                    version: Some(row.text("version")?),
                    at: row.text("handled_at")?,
                    outcome: "handled",
                    error: None,
                    attempts: None,
                });
            }
        }
        let dead = plugin
            .slot
            .db
            .read_once(
                &format!(
                    "SELECT event_id, error, attempts, failed_at FROM mercato_dead_letters \
                     WHERE event_id IN ({placeholders})"
                ),
                &ids,
            )
            .await?;
        for row in host_rows(&dead) {
            if let Some(&i) = index.get(&row.text("event_id")?) {
                entries[i].handled_by.push(Handling {
                    plugin: plugin.name.to_string(),
                    version: None,
                    at: row.text("failed_at")?,
                    outcome: "dead_letter",
                    error: Some(row.text("error")?),
                    attempts: Some(row.uint("attempts")?),
                });
            }
        }
    }
    for entry in &mut entries {
        entry.handled_by.sort_by(|a, b| a.at.cmp(&b.at));
    }
    Ok(entries)
}
