//! Host-owned tables present in every plugin database.
//!
//! `outbox_events` carries the seed's columns (id, aggregate_id, event_type,
//! payload, created_at, published_at) plus the per-source `sequence` that orders
//! delivery and the requested delay. The `mercato_*` tables hold what the host
//! keeps on the plugin's behalf, inside the plugin's own database so that it
//! commits in the same transaction as the plugin's state.
use super::BackendKind;

/// Tables a guest may read but never write (beside sqlx's `_sqlx_migrations`).
pub const HOST_TABLES: &[&str] = &[
    "outbox_events",
    "mercato_cursors",
    "mercato_scheduled",
    "mercato_dead_letters",
    "mercato_idempotency",
    "mercato_outbound",
    "mercato_fences",
    "mercato_handled",
    "_sqlx_migrations",
];

/// Host tables that describe the plugin's own data and go with it when the
/// plugin's database is wiped ([`super::Database::wipe`]).
pub const WIPED_WITH_PLUGIN_DATA: &[&str] = &[
    "_sqlx_migrations",
    "mercato_idempotency",
    "mercato_scheduled",
    "mercato_dead_letters",
];

/// True for tables only the host may write.
pub fn is_host_table(name: &str) -> bool {
    HOST_TABLES.iter().any(|t| t.eq_ignore_ascii_case(name))
        || name.to_ascii_lowercase().starts_with("sqlite_")
}

/// The columns of an event held outside the outbox, leading both
/// `mercato_scheduled` and `mercato_dead_letters`: the event store reads and
/// writes the two tables through one column list, so they are defined once.
const HELD_EVENT_COLUMNS: &str = "    event_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    traceparent TEXT,";

/// Nullable `TEXT` columns host tables gained after their first release:
/// each backend adds any its tables of an earlier build lack, in place
/// (no rewrite), before [`AFTER_ADDED_COLUMNS`] runs.
pub const ADDED_COLUMNS: &[(&str, &str)] = &[
    ("outbox_events", "traceparent"),
    ("outbox_events", "correlation_id"),
    ("mercato_scheduled", "traceparent"),
    ("mercato_dead_letters", "traceparent"),
];

/// DDL over [`ADDED_COLUMNS`]; idempotent. One order's events, found by its
/// id in any outbox: an index of only the events that name an order.
pub const AFTER_ADDED_COLUMNS: &str = "CREATE INDEX IF NOT EXISTS outbox_events_correlation \
     ON outbox_events (correlation_id) WHERE correlation_id IS NOT NULL";

/// DDL creating the host tables; idempotent.
pub fn host_tables_ddl(kind: BackendKind) -> String {
    let blob = match kind {
        BackendKind::Sqlite => "BLOB",
        BackendKind::Postgres => "BYTEA",
    };
    format!(
        "
CREATE TABLE IF NOT EXISTS outbox_events (
    id TEXT PRIMARY KEY,
    sequence BIGINT NOT NULL UNIQUE,
    aggregate_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    deliver_after_ms BIGINT,
    published_at TEXT,
    traceparent TEXT,
    correlation_id TEXT
);
CREATE INDEX IF NOT EXISTS outbox_events_unpublished ON outbox_events (sequence) WHERE published_at IS NULL;
-- Events this plugin handled (delivered to it and committed): which version
-- of it, and when. Written in the handler's transaction; read by an
-- operator's order timeline (`GET /admin/orders/{{id}}/timeline`).
CREATE TABLE IF NOT EXISTS mercato_handled (
    event_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    version TEXT NOT NULL,
    handled_at TEXT NOT NULL
);
-- Per source: the last outbox sequence this plugin has consumed.
CREATE TABLE IF NOT EXISTS mercato_cursors (
    source TEXT PRIMARY KEY,
    sequence BIGINT NOT NULL
);
-- In a cluster: per leased piece of work committing here, the highest lease
-- token that has committed, and by which host. A host whose lease was taken
-- over holds a lower token, and its commits are refused (`cluster::fence`).
CREATE TABLE IF NOT EXISTS mercato_fences (
    name TEXT PRIMARY KEY,
    token BIGINT NOT NULL,
    host TEXT NOT NULL
);
-- Delayed events taken from a source's stream, waiting to be due.
CREATE TABLE IF NOT EXISTS mercato_scheduled (
{HELD_EVENT_COLUMNS}
    due_at_ms BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS mercato_scheduled_due ON mercato_scheduled (due_at_ms);
-- Events this plugin failed to handle after every retry.
CREATE TABLE IF NOT EXISTS mercato_dead_letters (
{HELD_EVENT_COLUMNS}
    error TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    failed_at TEXT NOT NULL
);
-- Stored first responses for Idempotency-Key replays.
CREATE TABLE IF NOT EXISTS mercato_idempotency (
    key TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    status BIGINT NOT NULL,
    headers TEXT NOT NULL,
    body {blob} NOT NULL,
    created_at TEXT NOT NULL
);
-- The pruner deletes by age (RFC 3339 UTC text, fixed width: text order is time order).
CREATE INDEX IF NOT EXISTS mercato_idempotency_created_at ON mercato_idempotency (created_at);
-- Outbound HTTP requests a plugin queued (the outbound capability): sent after commit,
-- retried until delivered or dead; `report` holds the latest attempt's result
-- until the plugin has taken it in a transaction of its own.
CREATE TABLE IF NOT EXISTS mercato_outbound (
    key TEXT PRIMARY KEY,
    method TEXT NOT NULL,
    url TEXT NOT NULL,
    headers TEXT NOT NULL,
    body {blob} NOT NULL,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    due_at_ms BIGINT NOT NULL,
    next_attempt_ms BIGINT,
    last_status BIGINT,
    last_error TEXT,
    report_id TEXT,
    report TEXT,
    report_at TEXT,
    report_failures BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mercato_outbound_due ON mercato_outbound (due_at_ms);
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_tables_are_recognised_case_insensitively() {
        assert!(is_host_table("OUTBOX_EVENTS"));
        assert!(is_host_table("mercato_cursors"));
        assert!(is_host_table("sqlite_master"));
        assert!(!is_host_table("notes"));
    }
}
