//! What an event means for a view row: copies of what the events say, read
//! the way their emitters document them (docs/architecture/saga.md).
use mercato_sdk::time::Instant;

/// The order status an orders event reports, as orders documents each event
/// (`OrderPlaced`: PENDING, `OrderConfirmed`: AWAITING_PAYMENT, …); `None`
/// for an event that reports no status (`RefundRequested`, `CheckoutRejected`,
/// anything new). `OrderRefunded` carries its status in the payload
/// ([`refund_status`]).
pub fn order_status_of(event_type: &str) -> Option<&'static str> {
    Some(match event_type {
        "OrderPlaced" => "PENDING",
        "OrderConfirmed" => "AWAITING_PAYMENT",
        "OrderPaid" => "PAID",
        "OrderRejected" => "REJECTED",
        "OrderCancelled" => "CANCELLED",
        _ => return None,
    })
}

/// The status an `orders.OrderRefunded` payload may report.
pub fn refund_status(status: &str) -> Option<&'static str> {
    match status {
        "PARTIALLY_REFUNDED" => Some("PARTIALLY_REFUNDED"),
        "REFUNDED" => Some("REFUNDED"),
        _ => None,
    }
}

/// An order's fulfillment as orders derives it from its shipments (saga.md):
/// `DELIVERED` when every shipment not cancelled (at least one) is delivered,
/// `SHIPPED` when one has left (in transit or delivered; returned and lost
/// parcels had left, and orders keeps them in transit), else `UNFULFILLED`.
/// Orders announces no fulfillment event, so the view applies its rule to
/// the same shipping events orders does.
pub fn fulfillment_status(shipment_statuses: &[&str]) -> &'static str {
    let live: Vec<&str> = shipment_statuses
        .iter()
        .copied()
        .filter(|s| *s != "CANCELLED")
        .collect();
    if !live.is_empty() && live.iter().all(|s| *s == "DELIVERED") {
        "DELIVERED"
    } else if live
        .iter()
        .any(|s| matches!(*s, "IN_TRANSIT" | "DELIVERED" | "RETURNED" | "LOST"))
    {
        "SHIPPED"
    } else {
        "UNFULFILLED"
    }
}

/// An event's time in the host clock's format (`…T12:00:00.000Z`), so
/// stored times compare as text; text that is not RFC 3339 is kept as it is.
pub fn normalize_time(raw: &str) -> String {
    Instant::parse(raw).map_or_else(|| raw.to_owned(), |t| t.to_string())
}

/// The UTC day (`YYYY-MM-DD`) of an event's time.
pub fn day_of(raw: &str) -> String {
    normalize_time(raw).chars().take(10).collect()
}

/// An order line as `OrderPlaced` carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct PlacedLine {
    pub sku: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
}

/// One SKU of an order: its lines summed (quantity, quantity × unit price).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuTotal {
    pub sku: String,
    pub quantity: i64,
    pub line_total_minor: i64,
}

/// The order's lines summed per SKU, in first-seen order, and its units.
/// `None` when a line breaks orders' contract (a quantity below 1, a negative
/// price, or totals beyond `i64`): the event is then refused.
pub fn sku_totals(lines: &[PlacedLine]) -> Option<(Vec<SkuTotal>, i64)> {
    let mut out: Vec<SkuTotal> = Vec::new();
    let mut units: i64 = 0;
    for l in lines {
        if l.quantity < 1 || l.unit_price_minor < 0 {
            return None;
        }
        let total = l.quantity.checked_mul(l.unit_price_minor)?;
        units = units.checked_add(l.quantity)?;
        match out.iter_mut().find(|t| t.sku == l.sku) {
            Some(t) => {
                t.quantity = t.quantity.checked_add(l.quantity)?;
                t.line_total_minor = t.line_total_minor.checked_add(total)?;
            }
            None => out.push(SkuTotal {
                sku: l.sku.clone(),
                quantity: l.quantity,
                line_total_minor: total,
            }),
        }
    }
    Some((out, units))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_orders_event_reports_the_status_orders_documents() {
        for (event, status) in [
            ("OrderPlaced", Some("PENDING")),
            ("OrderConfirmed", Some("AWAITING_PAYMENT")),
            ("OrderPaid", Some("PAID")),
            ("OrderRejected", Some("REJECTED")),
            ("OrderCancelled", Some("CANCELLED")),
            ("RefundRequested", None),
            ("CheckoutRejected", None),
            ("OrderTeleported", None),
        ] {
            assert_eq!(order_status_of(event), status, "{event}");
        }
    }

    #[test]
    fn fulfillment_follows_orders_rule() {
        assert_eq!(fulfillment_status(&[]), "UNFULFILLED");
        assert_eq!(fulfillment_status(&["PENDING"]), "UNFULFILLED");
        assert_eq!(fulfillment_status(&["LABEL_CREATED"]), "UNFULFILLED");
        assert_eq!(fulfillment_status(&["CANCELLED"]), "UNFULFILLED");
        assert_eq!(fulfillment_status(&["IN_TRANSIT"]), "SHIPPED");
        assert_eq!(fulfillment_status(&["RETURNED"]), "SHIPPED");
        assert_eq!(fulfillment_status(&["LOST"]), "SHIPPED");
        assert_eq!(fulfillment_status(&["DELIVERED"]), "DELIVERED");
        assert_eq!(fulfillment_status(&["DELIVERED", "CANCELLED"]), "DELIVERED");
        assert_eq!(
            fulfillment_status(&["DELIVERED", "LABEL_CREATED"]),
            "SHIPPED"
        );
    }

    #[test]
    fn times_are_stored_in_the_host_format_and_days_are_utc() {
        assert_eq!(
            normalize_time("2026-03-01T00:30:00+01:00"),
            "2026-02-28T23:30:00.000Z"
        );
        assert_eq!(day_of("2026-03-01T00:30:00+01:00"), "2026-02-28");
        assert_eq!(day_of("2026-03-01T12:00:00.123Z"), "2026-03-01");
        assert_eq!(normalize_time("not a time"), "not a time");
    }

    #[test]
    fn lines_of_one_sku_are_summed() {
        let line = |sku: &str, quantity, unit_price_minor| PlacedLine {
            sku: sku.into(),
            quantity,
            unit_price_minor,
        };
        let (totals, units) = sku_totals(&[
            line("MUG", 2, 1250),
            line("TEE", 1, 1999),
            line("MUG", 1, 1250),
        ])
        .unwrap();
        assert_eq!(units, 4);
        assert_eq!(
            totals,
            [
                SkuTotal {
                    sku: "MUG".into(),
                    quantity: 3,
                    line_total_minor: 3750
                },
                SkuTotal {
                    sku: "TEE".into(),
                    quantity: 1,
                    line_total_minor: 1999
                },
            ]
        );
        assert_eq!(sku_totals(&[line("A", 0, 1)]), None);
        assert_eq!(sku_totals(&[line("A", 1, -1)]), None);
        assert_eq!(sku_totals(&[line("A", i64::MAX, 2)]), None);
    }
}
