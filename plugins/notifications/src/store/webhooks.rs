//! SQL for webhook endpoints, deliveries and the attempt log.
//!
//! `webhook_attempts` only receives INSERTs and nothing here deletes (the
//! 0002 migration's triggers refuse both); a delivery is updated only from
//! the state it was read in.
use crate::domain::delivery::{Change, DeliveryStatus, Progress, QUEUED, Report};
use mercato_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

const ENDPOINT_COLUMNS: &str = "id, url, event_types, secret, created_at, disabled_at";

/// An endpoint as stored. The secret is loaded for signing and never shown
/// by [`Endpoint::to_json`].
#[derive(Debug, Clone, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    /// JSON list, as stored.
    event_types: String,
    pub secret: String,
    pub created_at: String,
    pub disabled_at: Option<String>,
}

impl Endpoint {
    /// The event types it listed (`source.EventType` or `*`).
    pub fn event_types(&self) -> Result<Vec<String>, Error> {
        serde_json::from_str(&self.event_types).map_err(|e| {
            Error::Internal(format!(
                "webhook endpoint {} has unreadable event_types: {e}",
                self.id
            ))
        })
    }

    /// The API representation, without the secret.
    pub fn to_json(&self) -> Result<Value, Error> {
        Ok(json!({
            "id": self.id,
            "url": self.url,
            "event_types": self.event_types()?,
            "created_at": self.created_at,
            "disabled_at": self.disabled_at,
        }))
    }
}

/// A new endpoint.
pub struct NewEndpoint<'a> {
    pub id: &'a str,
    pub url: &'a str,
    pub event_types: &'a [String],
    pub secret: &'a str,
}

/// Records a new, enabled endpoint.
pub fn insert_endpoint(new: &NewEndpoint<'_>, now: &str) -> Result<(), Error> {
    let event_types =
        serde_json::to_string(new.event_types).map_err(|e| Error::Internal(e.to_string()))?;
    db::execute(
        "INSERT INTO webhook_endpoints (id, url, event_types, secret, created_at, disabled_at) \
         VALUES ($1, $2, $3, $4, $5, NULL)",
        &[
            new.id.into(),
            new.url.into(),
            event_types.into(),
            new.secret.into(),
            now.into(),
        ],
    )
    .map(drop)
}

/// The endpoint with `id`, enabled or not.
pub fn endpoint(id: &str) -> Result<Option<Endpoint>, Error> {
    db::query(
        &format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"),
        &[id.into()],
    )?
    .parse_first()
}

/// Every endpoint, disabled ones included, oldest first.
pub fn endpoints() -> Result<Vec<Endpoint>, Error> {
    db::query(
        &format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id"),
        &[],
    )?
    .parse_all()
}

/// The endpoints that receive events now.
pub fn enabled_endpoints() -> Result<Vec<Endpoint>, Error> {
    db::query(
        &format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE disabled_at IS NULL \
             ORDER BY created_at, id"
        ),
        &[],
    )?
    .parse_all()
}

/// Disables the endpoint unless it already is (the first time stands).
pub fn disable_endpoint(id: &str, now: &str) -> Result<(), Error> {
    db::execute(
        "UPDATE webhook_endpoints SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL",
        &[id.into(), now.into()],
    )
    .map(drop)
}

/// A delivery's identity and progress.
#[derive(Debug, Clone, Deserialize)]
pub struct Delivery {
    pub id: String,
    status: String,
    attempts: i64,
}

impl Delivery {
    /// Where it stands; an unknown stored status is a bug, not input.
    pub fn progress(&self) -> Result<Progress, Error> {
        let status = DeliveryStatus::parse(&self.status).ok_or_else(|| {
            Error::Internal(format!(
                "webhook delivery {} has unknown status {}",
                self.id, self.status
            ))
        })?;
        Ok(Progress {
            status,
            attempts: self.attempts,
        })
    }
}

/// Records a queued delivery of `event_id` to `endpoint_id` unless one exists
/// (one per endpoint and event); false when it did.
pub fn insert_delivery(
    id: &str,
    endpoint_id: &str,
    event_id: &str,
    event_type: &str,
    now: &str,
) -> Result<bool, Error> {
    let changed = db::execute(
        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, status, \
         attempts, last_status, last_error, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7, $7) \
         ON CONFLICT (endpoint_id, event_id) DO NOTHING",
        &[
            id.into(),
            endpoint_id.into(),
            event_id.into(),
            event_type.into(),
            QUEUED.status.as_str().into(),
            QUEUED.attempts.into(),
            now.into(),
        ],
    )?;
    Ok(changed == 1)
}

/// The delivery with `id`.
pub fn delivery(id: &str) -> Result<Option<Delivery>, Error> {
    db::query(
        "SELECT id, status, attempts FROM webhook_deliveries WHERE id = $1",
        &[id.into()],
    )?
    .parse_first()
}

/// Applies `change` if the delivery is still where it was read (`from`); a
/// concurrent writer got there first otherwise, and the error retries the call.
pub fn update_delivery(id: &str, from: Progress, change: &Change, now: &str) -> Result<(), Error> {
    let changed = db::execute(
        "UPDATE webhook_deliveries SET status = $1, attempts = $2, last_status = $3, \
         last_error = $4, updated_at = $5 WHERE id = $6 AND status = $7 AND attempts = $8",
        &[
            change.status.as_str().into(),
            change.attempts.into(),
            change.last_status.into(),
            change.last_error.as_deref().into(),
            now.into(),
            id.into(),
            from.status.as_str().into(),
            from.attempts.into(),
        ],
    )?;
    if changed == 1 {
        Ok(())
    } else {
        Err(Error::Conflict(format!(
            "webhook delivery {id} changed concurrently; retry"
        )))
    }
}

/// Appends an attempt to the log unless that attempt is logged already;
/// false when it was.
pub fn insert_attempt(
    delivery_id: &str,
    report: &Report,
    duration_ms: i64,
    at: &str,
) -> Result<bool, Error> {
    let changed = db::execute(
        "INSERT INTO webhook_attempts (delivery_id, attempt, outcome, status, error, \
         duration_ms, at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (delivery_id, attempt) DO NOTHING",
        &[
            delivery_id.into(),
            report.attempt.into(),
            report.outcome.as_str().into(),
            report.status.into(),
            report.error.as_deref().into(),
            duration_ms.into(),
            at.into(),
        ],
    )?;
    Ok(changed == 1)
}

/// The endpoint's latest `limit` deliveries, newest first, each with its
/// attempt log (oldest attempt first) under `attempts` and the count under
/// `attempt_count`.
pub fn deliveries_of(endpoint_id: &str, limit: i64) -> Result<Vec<Value>, Error> {
    let mut deliveries = db::query(
        "SELECT id, endpoint_id, event_id, event_type, status, attempts AS attempt_count, \
         last_status, last_error, created_at, updated_at FROM webhook_deliveries \
         WHERE endpoint_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        &[endpoint_id.into(), limit.into()],
    )?
    .to_json();
    let attempts = db::query(
        "SELECT delivery_id, attempt, outcome, status, error, duration_ms, at \
         FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries \
         WHERE endpoint_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2) \
         ORDER BY delivery_id, attempt",
        &[endpoint_id.into(), limit.into()],
    )?
    .to_json();
    for delivery in &mut deliveries {
        let log: Vec<Value> = attempts
            .iter()
            .filter(|a| a["delivery_id"] == delivery["id"])
            .map(|a| {
                json!({
                    "attempt": a["attempt"], "outcome": a["outcome"], "status": a["status"],
                    "error": a["error"], "duration_ms": a["duration_ms"], "at": a["at"],
                })
            })
            .collect();
        delivery["attempts"] = Value::Array(log);
    }
    Ok(deliveries)
}
