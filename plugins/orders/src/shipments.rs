//! Shipping's events: each shipment is recorded on its order, and the order's
//! fulfillment status follows (the deciders are in `domain/shipments.rs`).
// `super`, not `crate`: plugins/testing/orders-v2 compiles this crate's source as a module.
use super::domain::{self, Fact, Shipment, ShipmentStatus};
use super::{apply, store};
use mercato_sdk::prelude::*;
use mercato_sdk::time::Instant;
use serde::Deserialize;

/// The fields of `shipping.Shipment*` payloads orders reads; the rest is ignored.
#[derive(Deserialize)]
struct Report {
    shipment_id: String,
    order_id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    carrier: Option<String>,
    #[serde(default)]
    tracking_number: Option<String>,
    #[serde(default)]
    occurred_at: Option<String>,
}

/// Records what shipping reported about a shipment, then derives the order's
/// fulfillment status and stores it through the order's version check (as
/// every update of an order). A report that changes nothing writes nothing.
pub fn reported(event: &Event) -> Result<(), Error> {
    let p: Report = events::payload(event)?;
    let Some(status) = ShipmentStatus::reported(&event.event_type, p.status.as_deref()) else {
        return Ok(());
    };
    // Shipping ships paid orders, which are recorded here; any other is none
    // of this context's business.
    let Some((order, version)) = store::order(&p.order_id)? else {
        return Ok(());
    };
    let reported = Shipment {
        status,
        carrier: p.carrier.filter(|c| !c.trim().is_empty()),
        tracking_number: p.tracking_number.filter(|t| !t.trim().is_empty()),
    };
    // When the shipment changed, as shipping saw it; the event's commit time
    // if the payload's is missing or not RFC 3339.
    let at = p
        .occurred_at
        .filter(|t| Instant::parse(t).is_some())
        .unwrap_or_else(|| event.occurred_at.clone());
    match store::shipment(&p.shipment_id)? {
        None => store::insert_shipment(&order.id, &p.shipment_id, &reported, &at, &clock::now())?,
        Some((owner, _)) if owner != order.id => {
            // A shipment belongs to one order; a report naming another is
            // shipping's mistake and must not move either order.
            log::warn(&format!(
                "shipment {} is recorded for order {owner}, not {}; report ignored",
                p.shipment_id, order.id
            ));
            return Ok(());
        }
        Some((_, current)) => match domain::advance(Some(&current), reported) {
            Some(next) => store::update_shipment(&p.shipment_id, &next, &at)?,
            None => return Ok(()),
        },
    }
    let statuses = store::shipment_statuses(&order.id)?;
    let decision = domain::decide(&order, Fact::ShipmentsChanged { statuses })
        .map_err(|r| Error::Invalid(r.message))?;
    apply(&order, version, decision)
}
