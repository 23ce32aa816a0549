//! SQL for webhook endpoints, deliveries and the attempt log.
//!
//! `webhook_attempts` only receives INSERTs and nothing here deletes (the
//! 0002 migration's triggers refuse both); a delivery is updated only from
//! the state it was read in.
use crate::domain::delivery::{Change, DeliveryStatus, Progress, QUEUED, Report};
use mercato_sdk::list::Listing;
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

    /// A row of [`endpoint_listing`] (its columns as JSON) read back.
    pub fn from_json(row: Value) -> Result<Endpoint, Error> {
        let id = row["id"].as_str().unwrap_or_default().to_owned();
        serde_json::from_value(row)
            .map_err(|e| Error::Internal(format!("webhook endpoint {id} is unreadable: {e}")))
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

/// Every endpoint as a list, deleted (disabled) ones included, newest first
/// by `(created_at, id)`.
pub fn endpoint_listing() -> Listing {
    Listing::new("webhook_endpoints", ENDPOINT_COLUMNS)
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

/// The endpoint's deliveries as a list, newest first by `(created_at, id)`;
/// each row's attempts are added by [`attach_attempts`].
pub fn delivery_listing(endpoint_id: &str) -> Listing {
    Listing::new(
        "webhook_deliveries",
        "id, endpoint_id, event_id, event_type, status, attempts AS attempt_count, \
         last_status, last_error, created_at, updated_at",
    )
    .condition("endpoint_id = $?", endpoint_id.into())
}

/// Adds each listed delivery's attempt log (oldest attempt first) under
/// `attempts`, read in one query for the whole page.
pub fn attach_attempts(deliveries: &mut [Value]) -> Result<(), Error> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let ids: Vec<SqlValue> = deliveries
        .iter()
        .map(|d| d["id"].as_str().unwrap_or_default().into())
        .collect();
    let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
    let attempts = db::query(
        &format!(
            "SELECT delivery_id, attempt, outcome, status, error, duration_ms, at \
             FROM webhook_attempts WHERE delivery_id IN ({}) ORDER BY delivery_id, attempt",
            placeholders.join(", ")
        ),
        &ids,
    )?
    .to_json();
    group_attempts(deliveries, &attempts);
    Ok(())
}

/// Puts each attempt row under its delivery's `attempts`, in the order given
/// (a delivery without attempts gets an empty log).
fn group_attempts(deliveries: &mut [Value], attempts: &[Value]) {
    for delivery in deliveries {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_delivery_gets_its_own_attempts_in_order() {
        let mut deliveries = vec![json!({"id": "d1"}), json!({"id": "d2"})];
        let attempt = |id: &str, n: i64, outcome: &str| {
            json!({"delivery_id": id, "attempt": n, "outcome": outcome, "status": 503,
                "error": null, "duration_ms": 4, "at": "2026-12-01T00:00:00.000Z"})
        };
        let attempts = [
            attempt("d1", 1, "retrying"),
            attempt("d1", 2, "delivered"),
            attempt("d3", 1, "dead"),
        ];
        group_attempts(&mut deliveries, &attempts);
        let outcomes: Vec<&Value> = deliveries[0]["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| &a["outcome"])
            .collect();
        assert_eq!(outcomes, [&json!("retrying"), &json!("delivered")]);
        assert_eq!(deliveries[0]["attempts"][0].get("delivery_id"), None);
        assert_eq!(deliveries[1]["attempts"], json!([]));
    }

    #[test]
    fn a_listed_endpoint_shows_no_secret() {
        let row = json!({"id": "e", "url": "https://example.com/hook",
            "event_types": "[\"orders.OrderPaid\"]", "secret": "whsec_x",
            "created_at": "2026-12-01T00:00:00.000Z", "disabled_at": null});
        let shown = Endpoint::from_json(row).unwrap().to_json().unwrap();
        assert_eq!(shown["event_types"], json!(["orders.OrderPaid"]));
        assert!(!shown.to_string().contains("whsec_x"), "{shown}");
        assert!(Endpoint::from_json(json!({"id": "e"})).is_err());
    }
}
