//! `order_list_view` and the shipments it follows (`order_list_shipments`).
use super::later_of_updated_at;
use crate::domain::query::OrderFilters;
use mercato_sdk::list::Listing;
use mercato_sdk::prelude::*;

/// An order as `OrderPlaced` tells it, with what the view derives on insert.
pub struct Placed<'a> {
    pub order_id: &'a str,
    pub buyer_id: &'a str,
    pub currency: &'a str,
    pub subtotal_minor: i64,
    pub item_count: i64,
    pub coupon_code: Option<&'a str>,
    pub fulfillment_status: &'a str,
    pub sequence: i64,
    pub at: &'a str,
}

/// Inserts the order (PENDING, no discount yet); `false` if the view has it.
/// Its `updated_at` is the later of its own time and that of shipments
/// reported before it arrived: the row must not depend on which source's
/// event came first.
pub fn insert_order(o: &Placed) -> Result<bool, Error> {
    let changed = db::execute(
        "INSERT INTO order_list_view (order_id, buyer_id, status, fulfillment_status, currency, \
         subtotal_minor, discount_minor, total_minor, item_count, coupon_code, created_at, updated_at, orders_sequence) \
         VALUES ($1, $2, 'PENDING', $3, $4, $5, 0, $5, $6, $7, $8, \
           CASE WHEN (SELECT MAX(updated_at) FROM order_list_shipments WHERE order_id = $1) > $8 \
                THEN (SELECT MAX(updated_at) FROM order_list_shipments WHERE order_id = $1) ELSE $8 END, \
           $9) ON CONFLICT (order_id) DO NOTHING",
        &[
            o.order_id.into(),
            o.buyer_id.into(),
            o.fulfillment_status.into(),
            o.currency.into(),
            o.subtotal_minor.into(),
            o.item_count.into(),
            o.coupon_code.into(),
            o.at.into(),
            o.sequence.into(),
        ],
    )?;
    Ok(changed == 1)
}

/// The amounts `OrderConfirmed` settles.
pub struct Amounts {
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub total_minor: i64,
}

/// Sets the status an orders event reports (and the amounts it carries), if
/// the event is newer than the last one applied to the order; `false`
/// otherwise, or when the view does not hold the order.
pub fn set_status(
    order_id: &str,
    status: &str,
    amounts: Option<&Amounts>,
    sequence: i64,
    at: &str,
) -> Result<bool, Error> {
    let mut params: Vec<SqlValue> =
        vec![order_id.into(), status.into(), sequence.into(), at.into()];
    let mut set = format!(
        "status = $2, orders_sequence = $3, {}",
        later_of_updated_at("$4")
    );
    if let Some(a) = amounts {
        params.extend([
            a.subtotal_minor.into(),
            a.discount_minor.into(),
            a.total_minor.into(),
        ]);
        set.push_str(", subtotal_minor = $5, discount_minor = $6, total_minor = $7");
    }
    let changed = db::execute(
        &format!("UPDATE order_list_view SET {set} WHERE order_id = $1 AND orders_sequence < $3"),
        &params,
    )?;
    Ok(changed == 1)
}

/// Records a shipment's status if `sequence` is newer than the one recorded.
pub fn set_shipment(
    shipment_id: &str,
    order_id: &str,
    status: &str,
    sequence: i64,
    at: &str,
) -> Result<bool, Error> {
    let changed = db::execute(
        "INSERT INTO order_list_shipments (shipment_id, order_id, status, sequence, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (shipment_id) DO UPDATE SET status = excluded.status, sequence = excluded.sequence, \
         updated_at = excluded.updated_at WHERE order_list_shipments.sequence < excluded.sequence",
        &[
            shipment_id.into(),
            order_id.into(),
            status.into(),
            sequence.into(),
            at.into(),
        ],
    )?;
    Ok(changed == 1)
}

/// The statuses of the order's shipments.
pub fn shipment_statuses(order_id: &str) -> Result<Vec<String>, Error> {
    let rows = db::query(
        "SELECT status FROM order_list_shipments WHERE order_id = $1",
        &[order_id.into()],
    )?;
    rows.iter()
        .map(|r| r.text("status").map(str::to_owned))
        .collect()
}

/// Sets the order's fulfillment status after a shipment report, and moves its
/// `updated_at` to the report's time if later: an order's `updated_at` is
/// the latest of its own events and its shipments' reports, however they
/// interleave (nothing changes when the view does not hold the order yet;
/// its insert takes the reports' times).
pub fn set_fulfillment(order_id: &str, fulfillment: &str, at: &str) -> Result<(), Error> {
    db::execute(
        &format!(
            "UPDATE order_list_view SET fulfillment_status = $2, {} \
             WHERE order_id = $1",
            later_of_updated_at("$3")
        ),
        &[order_id.into(), fulfillment.into(), at.into()],
    )?;
    Ok(())
}

/// The order list with `f`'s conditions, newest first by (created_at, order_id).
pub fn listing(f: &OrderFilters) -> Listing {
    let mut l = Listing::new(
        "order_list_view",
        // `id` too: every listed object has one, and it is the cursor.
        "order_id AS id, order_id, buyer_id, status, fulfillment_status, currency, subtotal_minor, \
         discount_minor, total_minor, item_count, coupon_code, created_at, updated_at",
    )
    .sorted_by("created_at", "order_id");
    if let Some(v) = &f.status {
        l = l.condition("status = $?", v.into());
    }
    if let Some(v) = &f.buyer_id {
        l = l.condition("buyer_id = $?", v.into());
    }
    if let Some(v) = &f.created_gte {
        l = l.condition("created_at >= $?", v.into());
    }
    if let Some(v) = &f.created_lt {
        l = l.condition("created_at < $?", v.into());
    }
    if let Some(v) = f.total_gte_minor {
        l = l.condition("total_minor >= $?", v.into());
    }
    if let Some(v) = f.total_lte_minor {
        l = l.condition("total_minor <= $?", v.into());
    }
    l
}
