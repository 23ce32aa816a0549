//! The list endpoints (`GET /items`, `GET /reservations`): the SDK's list
//! convention (`limit`, `starting_after` / `ending_before`, newest first,
//! `{"object": "list", "data", "has_more"}`) over inventory's tables. Kept
//! apart from the stock-moving handlers in `lib.rs`: a list only reads.
use crate::domain::{ReservationStatus, StockLevel};
use crate::item_json;
use mercato_sdk::list::{self, ListQuery, Listing};
use mercato_sdk::prelude::*;
use serde_json::Value;

/// `GET /items[?sku=…]`: every stock item, newest first. An item's id is its
/// SKU (the table's key), so the order is `(created_at, sku)` and the cursors
/// are SKUs.
pub fn list_items(req: &Request) -> HttpResult {
    let query = ListQuery::parse(req, &["sku"])?;
    let mut listing = Listing::new("stock_items", "sku, on_hand, reserved, committed")
        .sorted_by("created_at", "sku");
    if let Some(sku) = query.filter("sku") {
        listing = listing.condition("sku = $?", sku_filter(sku)?.into());
    }
    let (rows, has_more) = query.fetch(listing)?;
    let items = rows
        .into_iter()
        .map(item_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(list::page(items, has_more))
}

/// A `stock_items` row as the API shows an item, `available` included (the
/// domain derives it, so the list and `GET /items/{sku}` cannot disagree).
fn item_from_row(row: Value) -> Result<Value, Error> {
    let sku = row["sku"].as_str().unwrap_or_default().to_owned();
    let level: StockLevel = serde_json::from_value(row)
        .map_err(|e| Error::Internal(format!("stock item {sku} is unreadable: {e}")))?;
    Ok(item_json(&sku, level))
}

/// `GET /reservations[?order_id=…&sku=…&status=…]`: reservations newest first
/// by `(created_at, id)`. The reservations of one order share `created_at`,
/// so within an order they come by id.
pub fn list_reservations(req: &Request) -> HttpResult {
    let query = ListQuery::parse(req, &["order_id", "sku", "status"])?;
    let mut listing = Listing::new(
        "stock_reservations",
        "id, order_id, sku, quantity, status, expires_at, created_at",
    );
    if let Some(order_id) = query.filter("order_id") {
        listing = listing.condition("order_id = $?", order_id.into());
    }
    if let Some(sku) = query.filter("sku") {
        listing = listing.condition("sku = $?", sku_filter(sku)?.into());
    }
    if let Some(status) = query.filter("status") {
        listing = listing.condition("status = $?", reservation_status(status)?.as_str().into());
    }
    query.respond(listing)
}

/// The `sku` filter: a SKU no item can have is a 400 `invalid_sku`, as the
/// schema promises, not an empty page.
fn sku_filter(raw: &str) -> Result<&str, HttpError> {
    mercato_sdk::validate::check_sku(raw)
        .map_err(|e| HttpError::bad_request(e.code, &e.message))?;
    Ok(raw)
}

/// The `status` filter: one of the stored spellings, or a 400 naming them
/// (a misspelt status would otherwise list nothing, silently).
fn reservation_status(raw: &str) -> Result<ReservationStatus, HttpError> {
    const ALL: [ReservationStatus; 3] = [
        ReservationStatus::Reserved,
        ReservationStatus::Committed,
        ReservationStatus::Released,
    ];
    ALL.into_iter().find(|s| s.as_str() == raw).ok_or_else(|| {
        HttpError::bad_request(
            "invalid_status",
            &format!(
                "status must be one of {}, got `{raw}`",
                ALL.map(ReservationStatus::as_str).join(", ")
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_status_filter_takes_the_stored_spellings_only() {
        assert_eq!(
            reservation_status("RELEASED"),
            Ok(ReservationStatus::Released)
        );
        for raw in ["", "released", "EXPIRED", "RESERVED "] {
            let e = reservation_status(raw).unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (400, "invalid_status"));
            assert!(
                e.message.contains("RESERVED, COMMITTED, RELEASED"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn a_listed_item_reads_like_a_single_one() {
        let row = json!({"sku": "MUG", "on_hand": 10, "reserved": 3, "committed": 2});
        assert_eq!(
            item_from_row(row).unwrap(),
            json!({"sku": "MUG", "on_hand": 10, "available": 5, "reserved": 3, "committed": 2})
        );
        assert!(item_from_row(json!({"sku": "MUG"})).is_err());
    }
}
