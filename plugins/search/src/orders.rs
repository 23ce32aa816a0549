//! `order_list_view` from orders' and shipping's events, and
//! `GET /search/orders`.
use crate::domain::query::{self, ORDER_FILTERS};
use crate::domain::views::{
    PlacedLine, fulfillment_status, normalize_time, order_status_of, refund_status, sku_totals,
};
use crate::store::orders::{self as store, Amounts, Placed};
use mercato_sdk::list::ListQuery;
use mercato_sdk::prelude::*;
use serde::Deserialize;

/// `orders.OrderPlaced`, the fields the views keep.
#[derive(Deserialize)]
pub struct OrderPlaced {
    pub order_id: String,
    pub buyer_id: String,
    pub currency: String,
    pub items: Vec<PlacedLine>,
    pub subtotal_minor: i64,
    #[serde(default)]
    pub coupon_code: Option<String>,
}

/// `orders.OrderConfirmed`'s amounts.
#[derive(Deserialize)]
struct OrderConfirmed {
    order_id: String,
    subtotal_minor: i64,
    discount_minor: i64,
    total_minor: i64,
}

/// Any other orders event: only the order matters.
#[derive(Deserialize)]
struct OrderRef {
    order_id: String,
    /// `OrderRejected` and `OrderCancelled` carry the amounts as they stood
    /// (a coupon may have been applied before the order failed).
    #[serde(default)]
    subtotal_minor: Option<i64>,
    #[serde(default)]
    discount_minor: Option<i64>,
    #[serde(default)]
    total_minor: Option<i64>,
}

/// A shipping event: every one carries the shipment, its order and status.
#[derive(Deserialize)]
struct ShipmentReport {
    shipment_id: String,
    order_id: String,
    status: String,
}

fn sequence(event: &Event) -> i64 {
    i64::try_from(event.sequence).unwrap_or(i64::MAX)
}

/// Inserts the order (with the fulfillment its already-known shipments give).
pub fn placed(event: &Event, o: &OrderPlaced) -> Result<(), Error> {
    // With the lock, a shipment reported meanwhile from shipping's stream is
    // either seen here or sees this order (see `store::lock_joins`).
    crate::store::lock_joins()?;
    let (_, units) = sku_totals(&o.items).ok_or_else(|| {
        Error::Invalid(format!(
            "orders.OrderPlaced {} has a line breaking the contract",
            o.order_id
        ))
    })?;
    let statuses = store::shipment_statuses(&o.order_id)?;
    let statuses: Vec<&str> = statuses.iter().map(String::as_str).collect();
    store::insert_order(&Placed {
        order_id: &o.order_id,
        buyer_id: &o.buyer_id,
        currency: &o.currency,
        subtotal_minor: o.subtotal_minor,
        item_count: units,
        coupon_code: o.coupon_code.as_deref(),
        fulfillment_status: fulfillment_status(&statuses),
        sequence: sequence(event),
        at: &normalize_time(&event.occurred_at),
    })?;
    Ok(())
}

#[derive(serde::Deserialize)]
struct OrderRefunded {
    order_id: String,
    status: String,
}

/// Copies the status an orders event reports (and `OrderConfirmed`'s final
/// amounts) onto the order; events that report none change nothing.
pub fn status_changed(event: &Event) -> Result<(), Error> {
    if event.event_type == "OrderRefunded" {
        // The one orders event whose status is in its payload.
        let r: OrderRefunded = events::payload(event)?;
        let status = refund_status(&r.status).ok_or_else(|| {
            Error::Invalid(format!("orders.OrderRefunded with status `{}`", r.status))
        })?;
        let at = normalize_time(&event.occurred_at);
        store::set_status(&r.order_id, status, None, sequence(event), &at)?;
        return Ok(());
    }
    let Some(status) = order_status_of(&event.event_type) else {
        return Ok(());
    };
    let at = normalize_time(&event.occurred_at);
    if event.event_type == "OrderConfirmed" {
        let c: OrderConfirmed = events::payload(event)?;
        let amounts = Amounts {
            subtotal_minor: c.subtotal_minor,
            discount_minor: c.discount_minor,
            total_minor: c.total_minor,
        };
        store::set_status(&c.order_id, status, Some(&amounts), sequence(event), &at)?;
    } else {
        let o: OrderRef = events::payload(event)?;
        let amounts = match (o.subtotal_minor, o.discount_minor, o.total_minor) {
            (Some(subtotal_minor), Some(discount_minor), Some(total_minor)) => Some(Amounts {
                subtotal_minor,
                discount_minor,
                total_minor,
            }),
            _ => None,
        };
        store::set_status(&o.order_id, status, amounts.as_ref(), sequence(event), &at)?;
    }
    Ok(())
}

/// Records the shipment's status and the order's fulfillment that follows.
pub fn shipment_reported(event: &Event) -> Result<(), Error> {
    let r: ShipmentReport = events::payload(event)?;
    crate::store::lock_joins()?;
    let at = normalize_time(&event.occurred_at);
    if store::set_shipment(&r.shipment_id, &r.order_id, &r.status, sequence(event), &at)? {
        let statuses = store::shipment_statuses(&r.order_id)?;
        let statuses: Vec<&str> = statuses.iter().map(String::as_str).collect();
        store::set_fulfillment(&r.order_id, fulfillment_status(&statuses), &at)?;
    }
    Ok(())
}

/// `GET /search/orders`: the list convention over `order_list_view`.
pub fn list(req: &Request) -> HttpResult {
    let list = ListQuery::parse(req, ORDER_FILTERS)?;
    let filters = query::order_filters(&list)?;
    list.respond(store::listing(&filters))
}
