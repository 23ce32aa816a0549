//! The orders tables: every SQL statement of the context lives here.
//!
//! `orders` is updated only with a version check; a shipment's row only as
//! its status moves forward; items, status history, payments and refunds are
//! append-only.
// `super`, not `crate`: plugins/testing/orders-v2 compiles this crate's source as a module.
use super::domain::{
    Coupon, CouponOutcome, CouponRejection, Fulfillment, Line, Offer, OnCouponNotApplicable, Order,
    Settings, Shipment, ShipmentStatus, Status, Stock,
};
use mercato_sdk::address::ShippingAddress;
use mercato_sdk::list::Listing;
use mercato_sdk::prelude::*;
use serde_json::Value;

/// Records a new order at version 1 with its priced lines. A second order
/// for one checkout session breaks the unique index: an error, never a
/// second order.
pub fn insert_order(order: &Order, lines: &[Line], now: &str) -> Result<(), Error> {
    let id = order.id.as_str();
    let address = order
        .shipping_address
        .as_ref()
        .map(|a| serde_json::to_string(a).map_err(|e| Error::Internal(e.to_string())))
        .transpose()?;
    db::execute(
        "INSERT INTO orders (id, buyer_id, currency, status, stock_status, coupon_status, coupon_code, \
         subtotal_minor, discount_minor, total_minor, captured_minor, refunded_minor, version, created_at, updated_at, \
         shipping_address_json, checkout_session_id, fulfillment_status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $8, 0, 0, 1, $9, $9, $10, $11, $12)",
        &[
            id.into(),
            order.buyer_id.as_str().into(),
            order.currency.as_str().into(),
            order.status.as_str().into(),
            order.stock.as_str().into(),
            order.coupon.as_str().into(),
            order.coupon_code.clone().into(),
            order.subtotal_minor.into(),
            now.into(),
            address.into(),
            order.checkout_session_id.clone().into(),
            order.fulfillment.as_str().into(),
        ],
    )?;
    for (n, line) in lines.iter().enumerate() {
        db::execute(
            "INSERT INTO order_items (id, order_id, line_no, sku, product_id, quantity, unit_price_minor, line_total_minor, product_snapshot_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                new_id().into(),
                id.into(),
                (n as i64 + 1).into(),
                line.sku.as_str().into(),
                line.product_id.as_str().into(),
                line.quantity.into(),
                line.unit_price_minor.into(),
                line.line_total_minor.into(),
                line.snapshot.to_string().into(),
            ],
        )?;
    }
    Ok(())
}

fn corrupt(what: &str) -> Error {
    Error::Internal(format!("stored order has an unknown {what}"))
}

/// The order and its version, if it exists.
pub fn order(id: &str) -> Result<Option<(Order, i64)>, Error> {
    let rows = db::query(
        "SELECT id, buyer_id, currency, status, stock_status, coupon_status, coupon_code, subtotal_minor, \
         discount_minor, payment_intent_id, captured_minor, refunded_minor, version, \
         shipping_address_json, checkout_session_id, fulfillment_status, coupon_rejection_code, \
         coupon_rejection_rule_code, coupon_rejection_message, coupon_rejection_outcome \
         FROM orders WHERE id = $1",
        &[id.into()],
    )?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let order = Order {
        id: r.text("id")?.to_owned(),
        buyer_id: r.text("buyer_id")?.to_owned(),
        currency: r.text("currency")?.to_owned(),
        status: Status::parse(r.text("status")?).ok_or_else(|| corrupt("status"))?,
        stock: Stock::parse(r.text("stock_status")?).ok_or_else(|| corrupt("stock status"))?,
        coupon: Coupon::parse(r.text("coupon_status")?).ok_or_else(|| corrupt("coupon status"))?,
        coupon_code: r.opt_text("coupon_code")?.map(str::to_owned),
        subtotal_minor: r.int("subtotal_minor")?,
        discount_minor: r.int("discount_minor")?,
        payment_intent_id: r.opt_text("payment_intent_id")?.map(str::to_owned),
        captured_minor: r.int("captured_minor")?,
        refunded_minor: r.int("refunded_minor")?,
        shipping_address: r
            .opt_text("shipping_address_json")?
            .map(serde_json::from_str::<ShippingAddress>)
            .transpose()
            .map_err(|_| corrupt("shipping address"))?,
        checkout_session_id: r.opt_text("checkout_session_id")?.map(str::to_owned),
        fulfillment: Fulfillment::parse(r.text("fulfillment_status")?)
            .ok_or_else(|| corrupt("fulfillment status"))?,
        coupon_rejection: match r.opt_text("coupon_rejection_code")? {
            None => None,
            Some(code) => Some(CouponRejection {
                code: code.to_owned(),
                rule_code: r.opt_text("coupon_rejection_rule_code")?.map(str::to_owned),
                message: r
                    .opt_text("coupon_rejection_message")?
                    .unwrap_or_default()
                    .to_owned(),
                outcome: r
                    .opt_text("coupon_rejection_outcome")?
                    .and_then(CouponOutcome::parse)
                    .ok_or_else(|| corrupt("coupon rejection outcome"))?,
            }),
        },
    };
    Ok(Some((order, r.int("version")?)))
}

/// Stores the order's new state if it is still at `version` (never a blind
/// update); a concurrent writer got there first otherwise, and the error
/// rolls the whole call back.
pub fn update_order(o: &Order, version: i64, now: &str) -> Result<(), Error> {
    let rejection = o.coupon_rejection.as_ref();
    let changed = db::execute(
        "UPDATE orders SET status = $1, stock_status = $2, coupon_status = $3, discount_minor = $4, total_minor = $5, \
         payment_intent_id = $6, captured_minor = $7, refunded_minor = $8, fulfillment_status = $12, \
         coupon_rejection_code = $13, coupon_rejection_rule_code = $14, coupon_rejection_message = $15, \
         coupon_rejection_outcome = $16, version = version + 1, updated_at = $9 WHERE id = $10 AND version = $11",
        &[
            o.status.as_str().into(),
            o.stock.as_str().into(),
            o.coupon.as_str().into(),
            o.discount_minor.into(),
            o.total_minor().into(),
            o.payment_intent_id.clone().into(),
            o.captured_minor.into(),
            o.refunded_minor.into(),
            now.into(),
            o.id.as_str().into(),
            version.into(),
            o.fulfillment.as_str().into(),
            rejection.map(|r| r.code.as_str()).into(),
            rejection.and_then(|r| r.rule_code.as_deref()).into(),
            rejection.map(|r| r.message.as_str()).into(),
            rejection.map(|r| r.outcome.as_str()).into(),
        ],
    )?;
    if changed == 0 {
        return Err(Error::Conflict(format!(
            "order {} changed concurrently; retry",
            o.id
        )));
    }
    Ok(())
}

/// The order placed for a checkout session, if there is one.
pub fn order_of_session(session_id: &str) -> Result<Option<String>, Error> {
    let rows = db::query(
        "SELECT id FROM orders WHERE checkout_session_id = $1",
        &[session_id.into()],
    )?;
    rows.first()
        .map(|r| Ok(r.text("id")?.to_owned()))
        .transpose()
}

/// Appends a status change to the order's history (the next `seq`).
pub fn append_history(
    id: &str,
    from: Option<Status>,
    to: Status,
    reason: &str,
    now: &str,
) -> Result<(), Error> {
    db::execute(
        "INSERT INTO order_status_history (id, order_id, seq, from_status, to_status, reason, created_at) \
         SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, CAST($3 AS TEXT), $4, $5, $6 FROM order_status_history WHERE order_id = $2",
        &[
            new_id().into(),
            id.into(),
            from.map(Status::as_str).into(),
            to.as_str().into(),
            reason.into(),
            now.into(),
        ],
    )?;
    Ok(())
}

/// Records a payment event about the order (`event` is its type).
pub fn record_payment(
    order_id: &str,
    intent_id: &str,
    event: &str,
    amount_minor: i64,
    now: &str,
) -> Result<(), Error> {
    db::execute(
        "INSERT INTO order_payments (id, order_id, intent_id, event, amount_minor, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            new_id().into(),
            order_id.into(),
            intent_id.into(),
            event.into(),
            amount_minor.into(),
            now.into(),
        ],
    )?;
    Ok(())
}

/// Records a refund of the order once (a redelivered event adds nothing).
pub fn record_refund(
    order_id: &str,
    refund_id: &str,
    amount_minor: i64,
    now: &str,
) -> Result<(), Error> {
    db::execute(
        "INSERT INTO order_refunds (id, order_id, refund_id, amount_minor, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (refund_id) DO NOTHING",
        &[
            new_id().into(),
            order_id.into(),
            refund_id.into(),
            amount_minor.into(),
            now.into(),
        ],
    )?;
    Ok(())
}

/// Every order as a list of summaries, newest first by `(created_at, id)`;
/// the handler adds its filters.
pub fn order_listing() -> Listing {
    Listing::new(
        "orders",
        "id, buyer_id, status, fulfillment_status, currency, total_minor, created_at",
    )
}

/// The order's lines as the API shows them, each with its product snapshot.
pub fn items(order_id: &str) -> Result<Vec<Value>, Error> {
    let rows = db::query(
        "SELECT sku, product_id, quantity, unit_price_minor, line_total_minor, product_snapshot_json AS product \
         FROM order_items WHERE order_id = $1 ORDER BY line_no",
        &[order_id.into()],
    )?;
    let mut items = rows.to_json();
    for item in &mut items {
        let snapshot = item["product"]
            .as_str()
            .and_then(|t| serde_json::from_str(t).ok());
        item["product"] = snapshot.unwrap_or(Value::Null);
    }
    Ok(items)
}

/// The order's lines as events carry them: `{sku, quantity, unit_price_minor}`.
pub fn event_items(order_id: &str) -> Result<Vec<Value>, Error> {
    let rows = db::query(
        "SELECT sku, quantity, unit_price_minor FROM order_items WHERE order_id = $1 ORDER BY line_no",
        &[order_id.into()],
    )?;
    Ok(rows.to_json())
}

/// The recorded shipment and the order it belongs to, if shipping reported it before.
pub fn shipment(shipment_id: &str) -> Result<Option<(String, Shipment)>, Error> {
    let rows = db::query(
        "SELECT order_id, status, carrier, tracking_number FROM order_shipments WHERE shipment_id = $1",
        &[shipment_id.into()],
    )?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let shipment = Shipment {
        status: ShipmentStatus::parse(r.text("status")?)
            .ok_or_else(|| corrupt("shipment status"))?,
        carrier: r.opt_text("carrier")?.map(str::to_owned),
        tracking_number: r.opt_text("tracking_number")?.map(str::to_owned),
    };
    Ok(Some((r.text("order_id")?.to_owned(), shipment)))
}

/// Records a shipment shipping reported for the first time; `at` is when it
/// changed.
pub fn insert_shipment(
    order_id: &str,
    shipment_id: &str,
    s: &Shipment,
    at: &str,
    now: &str,
) -> Result<(), Error> {
    db::execute(
        "INSERT INTO order_shipments (id, order_id, shipment_id, status, carrier, tracking_number, updated_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            new_id().into(),
            order_id.into(),
            shipment_id.into(),
            s.status.as_str().into(),
            s.carrier.clone().into(),
            s.tracking_number.clone().into(),
            at.into(),
            now.into(),
        ],
    )?;
    Ok(())
}

/// Stores a recorded shipment's new state (the decider moved it forward).
pub fn update_shipment(shipment_id: &str, s: &Shipment, at: &str) -> Result<(), Error> {
    db::execute(
        "UPDATE order_shipments SET status = $1, carrier = $2, tracking_number = $3, updated_at = $4 \
         WHERE shipment_id = $5",
        &[
            s.status.as_str().into(),
            s.carrier.clone().into(),
            s.tracking_number.clone().into(),
            at.into(),
            shipment_id.into(),
        ],
    )?;
    Ok(())
}

/// The statuses of all the order's shipments.
pub fn shipment_statuses(order_id: &str) -> Result<Vec<ShipmentStatus>, Error> {
    let rows = db::query(
        "SELECT status FROM order_shipments WHERE order_id = $1",
        &[order_id.into()],
    )?;
    rows.iter()
        .map(|r| ShipmentStatus::parse(r.text("status")?).ok_or_else(|| corrupt("shipment status")))
        .collect()
}

/// The order's shipments, first reported first, as the API shows them.
pub fn shipments(order_id: &str) -> Result<Vec<Value>, Error> {
    let rows = db::query(
        "SELECT shipment_id, status, carrier, tracking_number, COALESCE(updated_at, created_at) AS updated_at \
         FROM order_shipments WHERE order_id = $1 ORDER BY created_at, shipment_id",
        &[order_id.into()],
    )?;
    Ok(rows.to_json())
}

/// The order's status history, oldest first, as the API shows it.
pub fn history(order_id: &str) -> Result<Vec<Value>, Error> {
    let rows = db::query(
        "SELECT from_status AS \"from\", to_status AS \"to\", reason, created_at AS \"at\" \
         FROM order_status_history WHERE order_id = $1 ORDER BY seq",
        &[order_id.into()],
    )?;
    Ok(rows.to_json())
}

/// The projection's offer for `sku`, if the catalog published one.
pub fn offer(sku: &str) -> Result<Option<Offer>, Error> {
    let rows = db::query(
        "SELECT sku, product_id, name, price_minor, currency, version, attributes_json FROM catalog_prices WHERE sku = $1",
        &[sku.into()],
    )?;
    rows.first()
        .map(|r| {
            Ok(Offer {
                sku: r.text("sku")?.to_owned(),
                product_id: r.text("product_id")?.to_owned(),
                name: r.text("name")?.to_owned(),
                price_minor: r.int("price_minor")?,
                currency: r.text("currency")?.to_owned(),
                version: r.int("version")?,
                attributes: serde_json::from_str(r.text("attributes_json")?).unwrap_or(Value::Null),
            })
        })
        .transpose()
}

/// Projects a published product. Versions only move forward: a late or
/// repeated event changes nothing.
pub fn upsert_offer(offer: &Offer, now: &str) -> Result<(), Error> {
    db::execute(
        "INSERT INTO catalog_prices (sku, product_id, name, price_minor, currency, version, attributes_json, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (sku) DO UPDATE SET product_id = excluded.product_id, name = excluded.name, \
         price_minor = excluded.price_minor, currency = excluded.currency, version = excluded.version, \
         attributes_json = excluded.attributes_json, updated_at = excluded.updated_at \
         WHERE catalog_prices.version < excluded.version",
        &[
            offer.sku.as_str().into(),
            offer.product_id.as_str().into(),
            offer.name.as_str().into(),
            offer.price_minor.into(),
            offer.currency.as_str().into(),
            offer.version.into(),
            offer.attributes.to_string().into(),
            now.into(),
        ],
    )?;
    Ok(())
}

/// Projects a price change, if it is newer than the projected one.
pub fn update_price(
    sku: &str,
    price_minor: i64,
    currency: &str,
    version: i64,
    now: &str,
) -> Result<(), Error> {
    db::execute(
        "UPDATE catalog_prices SET price_minor = $1, currency = $2, version = $3, updated_at = $4 \
         WHERE sku = $5 AND version < $3",
        &[
            price_minor.into(),
            currency.into(),
            version.into(),
            now.into(),
            sku.into(),
        ],
    )?;
    Ok(())
}

/// The key of [`Settings::on_coupon_not_applicable`] in `order_settings`.
const ON_COUPON_NOT_APPLICABLE: &str = "on_coupon_not_applicable";

/// The merchant's settings; the defaults for what was never set.
pub fn settings() -> Result<Settings, Error> {
    let rows = db::query(
        "SELECT value FROM order_settings WHERE key = $1",
        &[ON_COUPON_NOT_APPLICABLE.into()],
    )?;
    let on_coupon_not_applicable = match rows.first() {
        None => OnCouponNotApplicable::default(),
        Some(row) => {
            OnCouponNotApplicable::parse(row.text("value")?).ok_or_else(|| corrupt("setting"))?
        }
    };
    Ok(Settings {
        on_coupon_not_applicable,
    })
}

/// Stores the merchant's settings; orders decided before keep their outcome.
pub fn set_settings(settings: &Settings, now: &str) -> Result<(), Error> {
    db::execute(
        "INSERT INTO order_settings (key, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        &[
            ON_COUPON_NOT_APPLICABLE.into(),
            settings.on_coupon_not_applicable.as_str().into(),
            now.into(),
        ],
    )?;
    Ok(())
}

/// Keeps the client secret `POST /orders` answered for order `id`.
pub fn insert_client_secret(id: &str, secret: &str) -> Result<(), Error> {
    db::execute(
        "INSERT INTO order_client_secrets (order_id, client_secret) VALUES ($1, $2)",
        &[id.into(), secret.into()],
    )?;
    Ok(())
}

/// The client secret of order `id`, if it has one.
pub fn client_secret(id: &str) -> Result<Option<String>, Error> {
    let rows = db::query(
        "SELECT client_secret FROM order_client_secrets WHERE order_id = $1",
        &[id.into()],
    )?;
    rows.first()
        .map(|r| Ok(r.text("client_secret")?.to_owned()))
        .transpose()
}
