//! SQL for the shipping tables, inside the current call's transaction.
//!
//! `shipments` is only ever updated with its version checked (and the 0002
//! guard refuses any update that does not move it forward);
//! `shipment_events` only receives INSERTs.
use crate::domain::Status;
use crate::domain::input::NewCarrier;
use crate::domain::label::CarrierKind;
use mercato_sdk::list::Listing;
use mercato_sdk::prelude::*;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

const SHIPMENT_COLUMNS: &str = "id, order_id, buyer_id, status, carrier, tracking_number, \
     label_id, items_json, shipping_address_json, version, created_at, updated_at";

/// A 0/1 column as a bool (both backends store flags as BIGINT).
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(i64::deserialize(d)? != 0)
}

/// A carrier integration (a `carrier_integrations` row).
#[derive(Debug, Clone, Deserialize)]
pub struct Carrier {
    pub code: String,
    pub name: String,
    pub kind: CarrierKind,
    #[serde(deserialize_with = "flag")]
    pub is_default: bool,
    pub created_at: String,
}

impl Carrier {
    /// The API representation.
    pub fn to_json(&self) -> Value {
        json!({
            "code": self.code,
            "name": self.name,
            "kind": self.kind.as_str(),
            "default": self.is_default,
            "created_at": self.created_at,
        })
    }
}

/// Every carrier as a list, newest first by `(created_at, code)`.
pub fn carrier_listing() -> Listing {
    Listing::new(
        "carrier_integrations",
        "code, name, kind, is_default, created_at",
    )
    .sorted_by("created_at", "code")
}

/// Every shipment as a list, newest first by `(created_at, id)`; the handler
/// adds its filters.
pub fn shipment_listing() -> Listing {
    Listing::new("shipments", SHIPMENT_COLUMNS)
}

/// A listed row (its columns as JSON) read back as the stored type; a row
/// that does not read is a bug or tampering, not a caller's error.
pub fn read_row<T: serde::de::DeserializeOwned>(row: Value, what: &str) -> Result<T, Error> {
    let id = row.get("id").or_else(|| row.get("code")).cloned();
    serde_json::from_value(row).map_err(|e| {
        let id = id.as_ref().and_then(Value::as_str).unwrap_or("?");
        Error::Internal(format!("{what} {id} is unreadable: {e}"))
    })
}

/// The carrier new shipments go with (at most one, by a unique index).
pub fn default_carrier() -> Result<Option<Carrier>, Error> {
    db::query(
        "SELECT code, name, kind, is_default, created_at FROM carrier_integrations \
         WHERE is_default = 1",
        &[],
    )?
    .parse_first()
}

/// Makes no carrier the default, so a new one can be.
pub fn clear_default_carrier() -> Result<(), Error> {
    db::execute(
        "UPDATE carrier_integrations SET is_default = 0 WHERE is_default = 1",
        &[],
    )?;
    Ok(())
}

/// Inserts the carrier; `None` when its code is taken.
pub fn insert_carrier(new: &NewCarrier, now: &str) -> Result<Option<Carrier>, Error> {
    let changed = db::execute(
        "INSERT INTO carrier_integrations (code, name, kind, is_default, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (code) DO NOTHING",
        &[
            new.code.as_str().into(),
            new.name.as_str().into(),
            new.kind.as_str().into(),
            new.is_default.into(),
            now.into(),
        ],
    )?;
    Ok((changed == 1).then(|| Carrier {
        code: new.code.clone(),
        name: new.name.clone(),
        kind: new.kind,
        is_default: new.is_default,
        created_at: now.to_owned(),
    }))
}

/// A shipment as stored (a `shipments` row).
#[derive(Debug, Clone, Deserialize)]
pub struct Shipment {
    pub id: String,
    pub order_id: String,
    pub buyer_id: String,
    pub status: Status,
    pub carrier: String,
    pub tracking_number: Option<String>,
    pub label_id: Option<String>,
    /// `[{sku, quantity}]`, written once from `OrderPaid`.
    pub items_json: String,
    /// The `ShippingAddress` snapshot, written once from `OrderPaid`.
    pub shipping_address_json: String,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl Shipment {
    /// The items snapshot as JSON.
    pub fn items(&self) -> Value {
        serde_json::from_str(&self.items_json).unwrap_or(Value::Null)
    }

    /// The address snapshot as JSON.
    pub fn shipping_address(&self) -> Value {
        serde_json::from_str(&self.shipping_address_json).unwrap_or(Value::Null)
    }

    /// The API representation (without the history).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "order_id": self.order_id,
            "buyer_id": self.buyer_id,
            "status": self.status.as_str(),
            "carrier": self.carrier,
            "tracking_number": self.tracking_number,
            "label_id": self.label_id,
            "items": self.items(),
            "shipping_address": self.shipping_address(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "version": self.version,
        })
    }
}

/// Inserts a new shipment unless its order already has one; false when it
/// did (a second `OrderPaid` for the order), so the caller does nothing.
pub fn insert_shipment(s: &Shipment) -> Result<bool, Error> {
    let changed = db::execute(
        &format!(
            "INSERT INTO shipments ({SHIPMENT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (order_id) DO NOTHING"
        ),
        &[
            s.id.as_str().into(),
            s.order_id.as_str().into(),
            s.buyer_id.as_str().into(),
            s.status.as_str().into(),
            s.carrier.as_str().into(),
            s.tracking_number.as_deref().into(),
            s.label_id.as_deref().into(),
            s.items_json.as_str().into(),
            s.shipping_address_json.as_str().into(),
            s.version.into(),
            s.created_at.as_str().into(),
            s.updated_at.as_str().into(),
        ],
    )?;
    Ok(changed == 1)
}

/// The shipment with `id`.
pub fn shipment(id: &str) -> Result<Option<Shipment>, Error> {
    db::query(
        &format!("SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE id = $1"),
        &[id.into()],
    )?
    .parse_first()
}

/// The order's shipment (`order_id` is unique).
pub fn shipment_for_order(order_id: &str) -> Result<Option<Shipment>, Error> {
    db::query(
        &format!("SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE order_id = $1"),
        &[order_id.into()],
    )?
    .parse_first()
}

/// Moves the shipment to `status` with these label fields if it is still at
/// the version it was read at. A concurrent writer got there first otherwise:
/// the error rolls the whole call back (HTTP 409 `conflict`; an event
/// handler is retried).
pub fn update_shipment(
    s: &Shipment,
    status: Status,
    tracking_number: Option<&str>,
    label_id: Option<&str>,
    now: &str,
) -> Result<(), Error> {
    let changed = db::execute(
        "UPDATE shipments SET status = $1, tracking_number = $2, label_id = $3, \
         version = version + 1, updated_at = $4 WHERE id = $5 AND version = $6",
        &[
            status.as_str().into(),
            tracking_number.into(),
            label_id.into(),
            now.into(),
            s.id.as_str().into(),
            s.version.into(),
        ],
    )?;
    if changed == 1 {
        Ok(())
    } else {
        Err(Error::Conflict(format!(
            "shipment {} changed concurrently; retry",
            s.id
        )))
    }
}

/// One history row to append.
pub struct NewEntry<'a> {
    /// `None` for rows the host makes (creation, label, cancellation).
    pub carrier_event_id: Option<&'a str>,
    /// The status reported or reached.
    pub status: Status,
    pub occurred_at: &'a str,
    pub location: Option<&'a str>,
    pub applied: bool,
    pub note: Option<&'a str>,
}

/// Appends a history row as the shipment's next `seq`. Two writers picking
/// the same `seq`, or the same carrier event, break a UNIQUE constraint and
/// the later call rolls back.
pub fn append_entry(shipment_id: &str, entry: &NewEntry<'_>, now: &str) -> Result<(), Error> {
    db::execute(
        "INSERT INTO shipment_events (id, shipment_id, seq, carrier_event_id, status, \
         occurred_at, location, applied, note, recorded_at) \
         SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, CAST($3 AS TEXT), $4, $5, CAST($6 AS TEXT), \
         $7, CAST($8 AS TEXT), $9 FROM shipment_events WHERE shipment_id = $2",
        &[
            new_id().into(),
            shipment_id.into(),
            entry.carrier_event_id.into(),
            entry.status.as_str().into(),
            entry.occurred_at.into(),
            entry.location.into(),
            entry.applied.into(),
            entry.note.into(),
            now.into(),
        ],
    )?;
    Ok(())
}

/// A history row as shown.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Entry {
    pub seq: i64,
    pub carrier_event_id: Option<String>,
    pub status: String,
    pub occurred_at: String,
    pub location: Option<String>,
    #[serde(deserialize_with = "flag")]
    pub applied: bool,
    pub note: Option<String>,
    pub recorded_at: String,
}

/// The shipment's history in `seq` order.
pub fn history(shipment_id: &str) -> Result<Vec<Entry>, Error> {
    db::query(
        "SELECT seq, carrier_event_id, status, occurred_at, location, applied, note, recorded_at \
         FROM shipment_events WHERE shipment_id = $1 ORDER BY seq",
        &[shipment_id.into()],
    )?
    .parse_all()
}

/// Whether the carrier event was applied, if it was recorded before.
pub fn carrier_event_applied(
    shipment_id: &str,
    carrier_event_id: &str,
) -> Result<Option<bool>, Error> {
    let rows = db::query(
        "SELECT applied FROM shipment_events WHERE shipment_id = $1 AND carrier_event_id = $2",
        &[shipment_id.into(), carrier_event_id.into()],
    )?;
    rows.first()
        .map(|row| Ok(row.int("applied")? != 0))
        .transpose()
}

/// How many carrier reports the shipment has recorded.
pub fn carrier_report_count(shipment_id: &str) -> Result<i64, Error> {
    let rows = db::query(
        "SELECT COUNT(*) AS n FROM shipment_events \
         WHERE shipment_id = $1 AND carrier_event_id IS NOT NULL",
        &[shipment_id.into()],
    )?;
    rows.first().map_or(Ok(0), |row| row.int("n"))
}
