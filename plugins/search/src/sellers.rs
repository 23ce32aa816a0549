//! `seller_dashboard_view` from payments' money and the orders' lines, and
//! `GET /search/sellers/{seller_id}/dashboard`.
//!
//! Money comes only from `payments.PaymentCaptured` / `PaymentRefunded`.
//! Each amount is split between the sellers of its order in proportion to
//! their lines' totals (`OrderPlaced` lines, sellers from products' events),
//! once all of that is known: a payment that arrives before its order or
//! before one of its products waits in `seller_payments` and is split when
//! the last piece arrives.
use crate::domain::allocate::allocate;
use crate::domain::query::{self, is_seller_id};
use crate::domain::views::{day_of, normalize_time, sku_totals};
use crate::orders::OrderPlaced;
use crate::store::sellers::{self as store, Payment, Sums};
use mercato_sdk::prelude::*;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

/// `payments.PaymentCaptured`.
#[derive(Deserialize)]
struct PaymentCaptured {
    intent_id: String,
    order_id: String,
    amount_minor: i64,
    currency: String,
}

/// `payments.PaymentRefunded` (no currency: the capture's is used).
#[derive(Deserialize)]
struct PaymentRefunded {
    intent_id: String,
    order_id: String,
    refund_id: String,
    amount_minor: i64,
}

fn capture_key(intent_id: &str) -> String {
    format!("capture:{intent_id}")
}

/// Keeps the order's lines, then splits whatever payment waited for them.
pub fn order_placed(event: &Event, o: &OrderPlaced) -> Result<(), Error> {
    crate::store::lock_joins()?;
    let (lines, _) = sku_totals(&o.items).ok_or_else(|| {
        Error::Invalid(format!(
            "orders.OrderPlaced {} has a line breaking the contract",
            o.order_id
        ))
    })?;
    store::insert_lines(&o.order_id, &o.currency, &lines)?;
    split_pending(&o.order_id, &normalize_time(&event.occurred_at))
}

/// Records a captured amount and splits it if its order is known.
pub fn captured(event: &Event) -> Result<(), Error> {
    let p: PaymentCaptured = events::payload(event)?;
    record(
        event,
        &capture_key(&p.intent_id),
        "CAPTURE",
        &p.order_id,
        p.amount_minor,
        Some(&p.currency),
    )
}

/// Records a refunded amount and splits it if its order is known.
pub fn refunded(event: &Event) -> Result<(), Error> {
    let p: PaymentRefunded = events::payload(event)?;
    // Payments' events arrive in order, so the capture is recorded first.
    let currency = store::payment_currency(&capture_key(&p.intent_id))?;
    record(
        event,
        &format!("refund:{}", p.refund_id),
        "REFUND",
        &p.order_id,
        p.amount_minor,
        currency.as_deref(),
    )
}

fn record(
    event: &Event,
    key: &str,
    kind: &str,
    order_id: &str,
    amount_minor: i64,
    currency: Option<&str>,
) -> Result<(), Error> {
    if amount_minor < 0 {
        return Err(Error::Invalid(format!(
            "payments.{} {key}: a negative amount breaks the contract",
            event.event_type
        )));
    }
    let at = normalize_time(&event.occurred_at);
    crate::store::lock_joins()?;
    store::insert_payment(&Payment {
        key,
        kind,
        order_id,
        amount_minor,
        currency,
        occurred_at: &at,
        day: &day_of(&event.occurred_at),
    })?;
    split_pending(order_id, &at)
}

/// A product arrived: split the payments of orders that waited for its seller.
pub fn sku_known(sku: &str, at: &str) -> Result<(), Error> {
    crate::store::lock_joins()?;
    for order_id in store::orders_waiting_for(sku)? {
        split_pending(&order_id, at)?;
    }
    Ok(())
}

/// Splits the order's waiting payments between its sellers, each once, and
/// adds the parts to the sums: a capture to gross, orders, units and the
/// products' sales; a refund to refunds. Nothing happens until the order's
/// lines and every line's seller are known. `at` is the time of the event
/// that completed the picture: a read model takes its times from events, so
/// a replay writes the same rows.
fn split_pending(order_id: &str, at: &str) -> Result<(), Error> {
    let Some((lines, order_currency)) = store::allocatable_lines(order_id)? else {
        return Ok(());
    };
    for payment in store::pending_payments(order_id)? {
        if !store::mark_allocated(&payment.payment_key, at)? {
            continue;
        }
        let currency = payment.currency.as_deref().unwrap_or(&order_currency);
        let shares = allocate(payment.amount_minor, &lines);
        store::insert_shares(&payment.payment_key, &shares)?;
        let capture = payment.kind == "CAPTURE";
        let mut per_seller: BTreeMap<&str, Sums> = BTreeMap::new();
        for share in &shares {
            let sums = per_seller.entry(&share.seller_id).or_default();
            if capture {
                sums.gross_minor += share.amount_minor;
                sums.units += share.units;
                sums.orders = 1;
                store::add_product_sales(currency, &payment.day, share)?;
            } else {
                sums.refunds_minor += share.amount_minor;
            }
        }
        for (seller_id, sums) in &per_seller {
            store::add_sums(seller_id, currency, &payment.day, sums, at)?;
        }
    }
    Ok(())
}

/// `GET /search/sellers/{seller_id}/dashboard?from=&to=&currency=`.
pub fn dashboard(req: &Request) -> HttpResult {
    let seller_id = req.param("seller_id");
    if !is_seller_id(seller_id) {
        return Err(HttpError::bad_request(
            "invalid_seller_id",
            "seller_id must be 1-64 lower-case letters, digits, '_' or '-'",
        ));
    }
    let q = query::dashboard_query(&req.query)?;
    let currencies = store::currencies(seller_id)?;
    if currencies.is_empty() && !store::has_products(seller_id)? {
        return Err(HttpError::not_found(
            "unknown_seller",
            &format!("no products or sales of seller {seller_id}"),
        ));
    }
    let currency = match (q.currency, currencies.as_slice()) {
        (Some(c), _) => c,
        (None, [one]) => one.clone(),
        (None, []) => {
            // A seller with products but no sales yet: nothing to sum.
            return Ok(Response::json(
                200,
                &json!({
                    "seller_id": seller_id, "currency": null, "gross_minor": 0, "refunds_minor": 0,
                    "net_minor": 0, "orders": 0, "units": 0, "products": [], "days": [],
                }),
            ));
        }
        (None, many) => {
            return Err(HttpError::bad_request(
                "currency_required",
                &format!(
                    "seller {seller_id} has sales in {}; say which with ?currency=",
                    many.join(", ")
                ),
            ));
        }
    };
    let view = store::dashboard(seller_id, &currency, q.from.as_deref(), q.to.as_deref())?;
    Ok(Response::json(200, &view))
}
