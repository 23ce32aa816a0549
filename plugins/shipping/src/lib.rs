//! The shipping bounded context: one shipment per paid order, made from
//! `orders.OrderPaid` (never from the orders tables), labelled by its carrier,
//! moved forward by carrier updates and cancelled by a full refund before it
//! leaves. History is append-only; a shipment never moves backwards.
//!
//! Routes (mounted at `/shipping`): `GET|POST /carriers`, `GET
//! /shipments[?order_id=&status=]`, `GET /shipments/{id}`, `POST /shipments/{id}/events`.
//! Events and tables: the shipping section of
//! `docs/architecture/database-design.md`.
mod domain;
mod store;

use domain::input::{CarrierBody, CarrierEventBody};
use domain::order_paid::{OrderPaid, PaidOrder};
use domain::{Decision, Emit, Status, Update};
use mercato_sdk::list::{self, ListQuery};
use mercato_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::{NewEntry, Shipment};

/// `ShipmentCancelled.reason`: the only thing that cancels a shipment.
const CANCEL_REASON: &str = "order_refunded";
/// Most carrier reports one shipment records. A real parcel gets a few dozen;
/// the cap stops a caller from growing one history without bound.
const MAX_CARRIER_REPORTS: i64 = 1_000;

/// The plugin; other components can wrap it (see `plugins/testing/`).
pub struct Shipping;

impl Plugin for Shipping {
    fn manifest() -> Manifest {
        Manifest::new("shipping", env!("CARGO_PKG_VERSION"))
            .subscribe("orders.OrderPaid")
            .subscribe("payments.PaymentRefunded")
            .migration(
                "0001_create_shipping.sql",
                include_str!("../../../migrations/shipping/0001_create_shipping.sql"),
            )
            .migration(
                "0002_guard_history.sqlite.sql",
                include_str!("../../../migrations/shipping/0002_guard_history.sqlite.sql"),
            )
            .migration(
                "0002_guard_history.postgres.sql",
                include_str!("../../../migrations/shipping/0002_guard_history.postgres.sql"),
            )
            .migration(
                "0003_list_indexes.sql",
                include_str!("../../../migrations/shipping/0003_list_indexes.sql"),
            )
            .openapi(include_str!("../openapi.json"))
    }

    fn handle_request(req: Request) -> Response {
        Router::new()
            .get("/carriers", list_carriers)
            .post("/carriers", create_carrier)
            .get("/shipments", list_shipments)
            .get("/shipments/{id}", get_shipment)
            .post("/shipments/{id}/events", record_carrier_event)
            .dispatch(req)
    }

    fn handle_event(event: Event) -> Result<(), Error> {
        match (event.source.as_str(), event.event_type.as_str()) {
            ("orders", "OrderPaid") => on_order_paid(&event),
            ("payments", "PaymentRefunded") => on_payment_refunded(&event),
            // Not subscribed; acknowledging keeps the subscription moving.
            (source, kind) => {
                log::warn(&format!("ignoring unexpected event {source}.{kind}"));
                Ok(())
            }
        }
    }
}

// ---------------------------------------------------------------- HTTP

/// `GET /carriers`: every carrier, newest first. A carrier's id is its code
/// (the table's key), so the order is `(created_at, code)` and the cursors
/// are codes.
fn list_carriers(req: &Request) -> HttpResult {
    let query = ListQuery::parse(req, &[])?;
    let (rows, has_more) = query.fetch(store::carrier_listing())?;
    let carriers = rows
        .into_iter()
        .map(|row| store::read_row::<store::Carrier>(row, "carrier").map(|c| c.to_json()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(list::page(carriers, has_more))
}

fn create_carrier(req: &Request) -> HttpResult {
    let new = req.json::<CarrierBody>()?.validated()?;
    // Cleared first for the one-default index; a duplicate code below rolls
    // the clearing back with the rest of the call.
    if new.is_default {
        store::clear_default_carrier()?;
    }
    let carrier = store::insert_carrier(&new, &clock::now())?.ok_or_else(|| {
        HttpError::conflict(
            "carrier_exists",
            &format!("a carrier with code {} already exists", new.code),
        )
    })?;
    Ok(Response::json(201, &carrier.to_json()))
}

fn load_shipment(id: &str) -> Result<Shipment, HttpError> {
    store::shipment(id)?
        .ok_or_else(|| HttpError::not_found("unknown_shipment", &format!("no shipment {id}")))
}

/// The shipment with its history.
fn view(shipment: &Shipment) -> Result<Value, Error> {
    let mut json = shipment.to_json();
    json["events"] = serde_json::to_value(store::history(&shipment.id)?)
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(json)
}

/// `GET /shipments[?order_id=…&status=…]`: shipments (without their
/// history) newest first by `(created_at, id)`; an order has at most one.
fn list_shipments(req: &Request) -> HttpResult {
    let query = ListQuery::parse(req, &["order_id", "status"])?;
    let mut listing = store::shipment_listing();
    if let Some(order_id) = query.filter("order_id") {
        listing = listing.condition("order_id = $?", order_id.into());
    }
    if let Some(status) = query.filter("status") {
        listing = listing.condition("status = $?", status_filter(status)?.as_str().into());
    }
    let (rows, has_more) = query.fetch(listing)?;
    let shipments = rows
        .into_iter()
        .map(|row| store::read_row::<Shipment>(row, "shipment").map(|s| s.to_json()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(list::page(shipments, has_more))
}

/// The `status` filter: a stored status, or a 400 naming them (a misspelt
/// status would otherwise list nothing, silently).
fn status_filter(raw: &str) -> Result<Status, HttpError> {
    Status::parse(raw).ok_or_else(|| {
        let all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        HttpError::bad_request(
            "invalid_status",
            &format!("status must be one of {}, got `{raw}`", all.join(", ")),
        )
    })
}

fn get_shipment(req: &Request) -> HttpResult {
    Ok(Response::json(
        200,
        &view(&load_shipment(req.param("id"))?)?,
    ))
}

/// A carrier's report. Idempotent by `carrier_event_id`: a repeat answers
/// with the shipment as it is. Otherwise the report is recorded whatever the
/// decider says, and applied only when it moves the shipment forward.
fn record_carrier_event(req: &Request) -> HttpResult {
    let report = req.json::<CarrierEventBody>()?.validated()?;
    let shipment = load_shipment(req.param("id"))?;
    let answer = |shipment: &Shipment, applied: bool, duplicate: bool| -> HttpResult {
        let mut json = view(shipment)?;
        json["applied"] = applied.into();
        json["duplicate"] = duplicate.into();
        Ok(Response::json(200, &json))
    };
    if let Some(applied) = store::carrier_event_applied(&shipment.id, &report.carrier_event_id)? {
        return answer(&shipment, applied, true);
    }
    if store::carrier_report_count(&shipment.id)? >= MAX_CARRIER_REPORTS {
        return Err(HttpError::conflict(
            "too_many_reports",
            &format!(
                "shipment {} already has {MAX_CARRIER_REPORTS} carrier reports",
                shipment.id
            ),
        ));
    }
    // A report about another parcel is refused before it enters this history.
    let tracking_number = || {
        domain::label::reconcile_tracking(
            shipment.tracking_number.as_deref(),
            report.tracking_number.as_deref(),
        )
        .map_err(|m| {
            HttpError::conflict(
                "tracking_number_mismatch",
                &format!(
                    "the shipment's tracking number is {}, not {}",
                    m.current, m.reported
                ),
            )
        })
    };
    let mut entry = NewEntry {
        carrier_event_id: Some(&report.carrier_event_id),
        status: report.status,
        occurred_at: &report.occurred_at,
        location: report.location.as_deref(),
        applied: false,
        note: None,
    };
    let now = clock::now();
    let shipment = match domain::decide(shipment.status, Update::Carrier(report.status)) {
        Decision::Refuse(invalid) => return Err(invalid.into()),
        Decision::Ignore(why) => {
            tracking_number()?;
            let note = why.note();
            entry.note = Some(&note);
            store::append_entry(&shipment.id, &entry, &now)?;
            return answer(&shipment, false, false);
        }
        Decision::Apply { to, emit } => {
            entry.applied = true;
            let change = Change {
                to,
                tracking_number: tracking_number()?,
                label_id: shipment.label_id.as_deref(),
            };
            transition(&shipment, change, &entry, &emit, &now)?
        }
    };
    answer(&shipment, true, false)
}

// ---------------------------------------------------------------- transitions

/// A shipment's new state.
struct Change<'a> {
    to: Status,
    tracking_number: Option<&'a str>,
    label_id: Option<&'a str>,
}

/// Persists an applied update: the version-checked row update first (so a
/// concurrent writer loses before anything is appended), the history row,
/// then the events in order, each announcing its own state at the entry's
/// time. Returns the shipment as it now is.
fn transition(
    before: &Shipment,
    change: Change<'_>,
    entry: &NewEntry<'_>,
    emit: &[Emit],
    now: &str,
) -> Result<Shipment, Error> {
    store::update_shipment(
        before,
        change.to,
        change.tracking_number,
        change.label_id,
        now,
    )?;
    store::append_entry(&before.id, entry, now)?;
    let after = Shipment {
        status: change.to,
        tracking_number: change.tracking_number.map(str::to_owned),
        label_id: change.label_id.map(str::to_owned),
        version: before.version + 1,
        updated_at: now.to_owned(),
        ..before.clone()
    };
    for event in emit {
        let mut payload = event_payload(&after, event.status(), entry.occurred_at);
        if *event == Emit::Cancelled {
            payload["reason"] = CANCEL_REASON.into();
        }
        events::emit(event.event_type(), &after.id, &payload)?;
    }
    Ok(after)
}

/// The fields every shipping event carries.
fn event_payload(s: &Shipment, status: Status, occurred_at: &str) -> Value {
    json!({
        "shipment_id": s.id,
        "order_id": s.order_id,
        "buyer_id": s.buyer_id,
        "status": status.as_str(),
        "carrier": s.carrier,
        "tracking_number": s.tracking_number,
        "occurred_at": occurred_at,
    })
}

// ---------------------------------------------------------------- events

/// `orders.OrderPaid`: one shipment per order with the default carrier. An
/// order without a shipping address (placed before orders carried one) gets
/// none; a payload breaking the contract is an error, retried and then
/// dead-lettered where an operator sees it, rather than a wrong parcel.
fn on_order_paid(event: &Event) -> Result<(), Error> {
    let paid: OrderPaid = events::payload(event)?;
    let order_id = paid.order_id.clone();
    let Some(order) = paid
        .into_paid_order()
        .map_err(|e| Error::Invalid(e.message))?
    else {
        log::warn(&format!(
            "OrderPaid {order_id} has no shipping_address; no shipment created"
        ));
        return Ok(());
    };
    let carrier = store::default_carrier()?
        .ok_or_else(|| Error::Internal("no default carrier is configured".to_owned()))?;
    let now = clock::now();
    let shipment = new_shipment(order, &carrier.code, &now)?;
    if !store::insert_shipment(&shipment)? {
        log::info(&format!("order {order_id} already has a shipment"));
        return Ok(());
    }
    let created = NewEntry {
        carrier_event_id: None,
        status: Status::Pending,
        occurred_at: &now,
        location: None,
        applied: true,
        note: Some("created for the paid order"),
    };
    store::append_entry(&shipment.id, &created, &now)?;
    let shipment = match carrier.kind.label_at_creation(&order_id) {
        None => shipment,
        Some(label) => {
            let note = format!("label created by carrier {}", carrier.code);
            let labelled = NewEntry {
                status: Status::LabelCreated,
                note: Some(&note),
                ..created
            };
            let change = Change {
                to: Status::LabelCreated,
                tracking_number: Some(&label.tracking_number),
                label_id: Some(&label.label_id),
            };
            transition(&shipment, change, &labelled, &[], &now)?
        }
    };
    let mut payload = event_payload(&shipment, shipment.status, &now);
    payload["items"] = shipment.items();
    payload["shipping_address"] = shipment.shipping_address();
    payload["label_id"] = shipment.label_id.clone().into();
    events::emit("ShipmentCreated", &shipment.id, &payload)
}

/// A new PENDING shipment of `order` with `carrier`, not yet stored.
fn new_shipment(order: PaidOrder, carrier: &str, now: &str) -> Result<Shipment, Error> {
    Ok(Shipment {
        id: new_id(),
        order_id: order.order_id,
        buyer_id: order.buyer_id,
        status: Status::Pending,
        carrier: carrier.to_owned(),
        tracking_number: None,
        label_id: None,
        items_json: json_text(&order.items)?,
        shipping_address_json: json_text(&order.shipping_address)?,
        version: 1,
        created_at: now.to_owned(),
        updated_at: now.to_owned(),
    })
}

fn json_text<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Internal(e.to_string()))
}

/// `payments.PaymentRefunded`: only what the decision needs.
#[derive(Deserialize)]
struct PaymentRefunded {
    order_id: String,
    refund_id: String,
    refunded_total_minor: i64,
    captured_minor: i64,
}

/// A full refund cancels the order's shipment if it has not left. A refund
/// for an order without a shipment (none yet, or none ever) records nothing.
fn on_payment_refunded(event: &Event) -> Result<(), Error> {
    let refund: PaymentRefunded = events::payload(event)?;
    let Some(shipment) = store::shipment_for_order(&refund.order_id)? else {
        return Ok(());
    };
    match domain::decide_refund(
        shipment.status,
        refund.refunded_total_minor,
        refund.captured_minor,
    ) {
        Decision::Apply { to, emit } => {
            let now = clock::now();
            let note = format!(
                "cancelled: order refunded in full (refund {})",
                refund.refund_id
            );
            let entry = NewEntry {
                carrier_event_id: None,
                status: to,
                occurred_at: &now,
                location: None,
                applied: true,
                note: Some(&note),
            };
            let change = Change {
                to,
                tracking_number: shipment.tracking_number.as_deref(),
                label_id: shipment.label_id.as_deref(),
            };
            transition(&shipment, change, &entry, &emit, &now).map(drop)
        }
        Decision::Ignore(why) => {
            log::info(&format!("shipment {}: {}", shipment.id, why.note()));
            Ok(())
        }
        Decision::Refuse(invalid) => Err(Error::Internal(invalid.to_string())),
    }
}

#[cfg(feature = "export")]
mercato_sdk::export_plugin!(Shipping);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_filter_takes_the_stored_spellings_only() {
        for status in Status::ALL {
            assert_eq!(status_filter(status.as_str()), Ok(status));
        }
        for raw in ["", "delivered", "SHIPPED"] {
            let e = status_filter(raw).unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (400, "invalid_status"));
            assert!(
                e.message.contains("PENDING, LABEL_CREATED"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn listed_rows_read_back_as_the_single_reads_show_them() {
        let carrier = json!({"code": "dhl", "name": "DHL", "kind": "manual", "is_default": 0,
            "created_at": "2026-12-01T00:00:00.000Z"});
        let carrier = store::read_row::<store::Carrier>(carrier, "carrier").unwrap();
        assert_eq!(carrier.to_json()["default"], false);
        let shipment = json!({"id": "s", "order_id": "o", "buyer_id": "b", "status": "PENDING",
            "carrier": "test", "tracking_number": null, "label_id": null,
            "items_json": "[{\"sku\":\"MUG\",\"quantity\":1}]",
            "shipping_address_json": "{}", "version": 1,
            "created_at": "2026-12-01T00:00:00.000Z", "updated_at": "2026-12-01T00:00:00.000Z"});
        let shown = store::read_row::<Shipment>(shipment, "shipment")
            .unwrap()
            .to_json();
        assert_eq!(shown["items"][0]["sku"], "MUG");
        assert_eq!(shown["status"], "PENDING");
        let e = store::read_row::<Shipment>(json!({"id": "s"}), "shipment").unwrap_err();
        assert!(
            matches!(e, Error::Internal(ref m) if m.contains("shipment s")),
            "{e:?}"
        );
    }

    #[test]
    fn openapi_documents_every_route_and_every_reference_resolves() {
        let doc: Value = serde_json::from_str(include_str!("../openapi.json")).unwrap();
        for (path, method) in [
            ("/carriers", "get"),
            ("/carriers", "post"),
            ("/shipments", "get"),
            ("/shipments/{id}", "get"),
            ("/shipments/{id}/events", "post"),
        ] {
            let op = &doc["paths"][path][method];
            assert!(
                op["responses"]["200"].is_object() || op["responses"]["201"].is_object(),
                "{method} {path}"
            );
            assert_eq!(op["tags"][0], "shipping", "{method} {path}");
        }
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"#/components/").skip(1) {
            let target = reference.split('"').next().unwrap();
            let (kind, name) = target.split_once('/').unwrap();
            assert!(
                doc["components"][kind][name].is_object(),
                "dangling $ref {target}"
            );
        }
    }
}
