//! The inventory bounded context: stock per SKU, reservations held for orders
//! until they are paid, called off or expire, and an append-only ledger of
//! stock movements. Its part of the order saga is in
//! `docs/architecture/saga.md`.
mod domain;
mod levels;
mod lists;
mod store;

use domain::{
    DomainError, InvalidOrder, InventoryEvent, OrderLine, Payment, Placement, Release, Reservation,
    ReservationStatus, StockLevel,
};
use mercato_sdk::prelude::*;
use mercato_sdk::time::Instant;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use store::MovementKind;

struct Inventory;

impl Plugin for Inventory {
    fn manifest() -> Manifest {
        Manifest::new("inventory", env!("CARGO_PKG_VERSION"))
            .subscribe("orders.OrderPlaced")
            .subscribe("orders.OrderRejected")
            .subscribe("orders.OrderCancelled")
            .subscribe("orders.OrderPaid")
            .subscribe("inventory.ReservationExpiryDue")
            .migration(
                "0001_create_inventory.sql",
                include_str!("../../../migrations/inventory/0001_create_inventory.sql"),
            )
            .migration(
                "0002_stock_movements_append_only.sqlite.sql",
                include_str!(
                    "../../../migrations/inventory/0002_stock_movements_append_only.sqlite.sql"
                ),
            )
            .migration(
                "0002_stock_movements_append_only.postgres.sql",
                include_str!(
                    "../../../migrations/inventory/0002_stock_movements_append_only.postgres.sql"
                ),
            )
            .openapi(include_str!("../openapi.json"))
    }

    fn handle_request(req: Request) -> Response {
        Router::new()
            .post("/items", create_item)
            .get("/items", lists::list_items)
            .get("/items/{sku}", get_item)
            .post("/items/{sku}/adjustments", adjust_item)
            .get("/reservations", lists::list_reservations)
            .get("/settings", get_settings)
            .put("/settings", put_settings)
            .dispatch(req)
    }

    fn handle_event(event: Event) -> Result<(), Error> {
        match (event.source.as_str(), event.event_type.as_str()) {
            ("orders", "OrderPlaced") => on_order_placed(events::payload(&event)?),
            ("orders", "OrderRejected") => {
                on_order_called_off(events::payload(&event)?, "order_rejected")
            }
            ("orders", "OrderCancelled") => {
                on_order_called_off(events::payload(&event)?, "order_cancelled")
            }
            ("orders", "OrderPaid") => on_order_paid(events::payload(&event)?),
            ("inventory", "ReservationExpiryDue") => on_expiry_due(events::payload(&event)?),
            _ => Ok(()),
        }
    }
}

impl From<DomainError> for HttpError {
    fn from(e: DomainError) -> Self {
        let status = match e {
            DomainError::InsufficientStock { .. } => 409,
            _ => 422,
        };
        HttpError::new(status, e.code(), &e.to_string())
    }
}

impl From<InvalidOrder> for Error {
    fn from(e: InvalidOrder) -> Self {
        Error::Invalid(format!("orders.OrderPlaced breaks the contract: {}", e.0))
    }
}

fn item_json(sku: &str, level: StockLevel) -> Value {
    json!({
        "sku": sku,
        "on_hand": level.on_hand,
        "available": level.available(),
        "reserved": level.reserved,
        "committed": level.committed,
    })
}

fn unknown_sku(sku: &str) -> HttpError {
    HttpError::not_found("unknown_sku", &format!("no stock item {sku}"))
}

fn insufficient_stock(sku: &str) -> HttpError {
    HttpError::conflict(
        "insufficient_stock",
        &format!("stock of {sku} changed meanwhile and can no longer cover the adjustment"),
    )
}

// --- HTTP ------------------------------------------------------------------

#[derive(Deserialize)]
struct NewItem {
    sku: String,
    on_hand: i64,
}

fn create_item(req: &Request) -> HttpResult {
    let new: NewItem = req.json()?;
    let level = domain::receive_new_item(&new.sku, new.on_hand)?;
    let now = clock::now();
    if !store::insert_item(&new.sku, level.on_hand, &now)? {
        return Err(HttpError::conflict(
            "sku_exists",
            &format!("stock item {} already exists", new.sku),
        ));
    }
    store::record_movement(
        &new.sku,
        MovementKind::Received,
        level.on_hand,
        None,
        "initial_stock",
        &now,
    )?;
    levels::publish(&new.sku, level)?;
    Ok(Response::json(201, &item_json(&new.sku, level)))
}

fn get_item(req: &Request) -> HttpResult {
    let sku = req.param("sku");
    let level = store::item(sku)?.ok_or_else(|| unknown_sku(sku))?;
    Ok(Response::json(200, &item_json(sku, level)))
}

#[derive(Deserialize)]
struct Adjustment {
    delta: i64,
    reason: String,
}

fn adjust_item(req: &Request) -> HttpResult {
    let adjustment: Adjustment = req.json()?;
    let sku = req.param("sku");
    let level = store::item(sku)?.ok_or_else(|| unknown_sku(sku))?;
    domain::adjust(level, adjustment.delta, &adjustment.reason)?;
    let now = clock::now();
    if !store::adjust_on_hand(sku, adjustment.delta, &now)? {
        return Err(insufficient_stock(sku));
    }
    store::record_movement(
        sku,
        MovementKind::Adjusted,
        adjustment.delta,
        None,
        &adjustment.reason,
        &now,
    )?;
    // Re-read: a concurrent reservation may have moved the other columns.
    let level = store::item(sku)?.ok_or_else(|| unknown_sku(sku))?;
    levels::publish(sku, level)?;
    Ok(Response::json(200, &item_json(sku, level)))
}

fn get_settings(_req: &Request) -> HttpResult {
    let ttl = store::reservation_ttl_ms()?;
    Ok(Response::json(200, &json!({ "reservation_ttl_ms": ttl })))
}

#[derive(Deserialize)]
struct Settings {
    reservation_ttl_ms: i64,
}

fn put_settings(req: &Request) -> HttpResult {
    let settings: Settings = req.json()?;
    let ttl = domain::validate_reservation_ttl(settings.reservation_ttl_ms)?;
    store::set_reservation_ttl_ms(ttl)?;
    Ok(Response::json(200, &json!({ "reservation_ttl_ms": ttl })))
}

// --- events ------------------------------------------------------------------

#[derive(Deserialize)]
struct OrderPlaced {
    order_id: String,
    items: Vec<OrderLine>,
}

/// `OrderRejected` and `OrderCancelled`.
#[derive(Deserialize)]
struct OrderCalledOff {
    order_id: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `OrderPaid` and `ReservationExpiryDue`: only the order matters here.
#[derive(Deserialize)]
struct OrderRef {
    order_id: String,
}

fn publish(event: &InventoryEvent) -> Result<(), Error> {
    events::emit(event.event_type(), event.order_id(), event)
}

/// A stock row refused a change the reservations say must fit: retry, the
/// state will be re-read.
fn stock_moved(sku: &str, order_id: &str) -> Error {
    Error::Conflict(format!(
        "stock of {sku} no longer matches the reservations of order {order_id}"
    ))
}

fn on_order_placed(placed: OrderPlaced) -> Result<(), Error> {
    let order_id = placed.order_id.as_str();
    let existing = store::reservations(order_id)?;
    let skus: BTreeSet<&str> = placed.items.iter().map(|l| l.sku.as_str()).collect();
    let mut stock = BTreeMap::new();
    for sku in skus {
        if let Some(level) = store::item(sku)? {
            stock.insert(sku.to_owned(), level);
        }
    }
    let ttl_ms = store::reservation_ttl_ms()?;
    let now_ms = clock::now_millis();
    match domain::decide_placement(order_id, &placed.items, &existing, &stock, now_ms, ttl_ms)? {
        Placement::AlreadyHandled => Ok(()),
        Placement::Rejected(event) => publish(&event),
        Placement::Reserved {
            lines,
            expires_at,
            event,
        } => {
            let now = Instant::from_unix_millis(now_ms).to_string();
            for line in &lines {
                if !store::reserve_stock(&line.sku, line.quantity, &now)? {
                    return Err(stock_moved(&line.sku, order_id));
                }
                store::insert_reservation(order_id, &line.sku, line.quantity, &expires_at, &now)?;
                store::record_movement(
                    &line.sku,
                    MovementKind::Reserved,
                    line.quantity,
                    Some(order_id),
                    "order_placed",
                    &now,
                )?;
                levels::publish_current(&line.sku)?;
            }
            publish(&event)?;
            let timer = InventoryEvent::ReservationExpiryDue {
                order_id: order_id.to_owned(),
            };
            events::emit_after(timer.event_type(), order_id, &timer, ttl_ms)
        }
    }
}

fn on_order_called_off(order: OrderCalledOff, default_reason: &str) -> Result<(), Error> {
    let reason = order.reason.as_deref().unwrap_or(default_reason);
    let reservations = store::reservations(&order.order_id)?;
    match domain::decide_release(&order.order_id, &reservations, reason) {
        Some(release) => apply_release(&order.order_id, &release),
        None => Ok(()),
    }
}

fn on_expiry_due(due: OrderRef) -> Result<(), Error> {
    let reservations = store::reservations(&due.order_id)?;
    match domain::decide_expiry(&due.order_id, &reservations) {
        Some(release) => apply_release(&due.order_id, &release),
        None => Ok(()),
    }
}

fn apply_release(order_id: &str, release: &Release) -> Result<(), Error> {
    settle(
        order_id,
        &release.reservations,
        Settlement::Release,
        &release.reason,
    )?;
    publish(&release.event)
}

fn on_order_paid(paid: OrderRef) -> Result<(), Error> {
    let order_id = paid.order_id.as_str();
    let reservations = store::reservations(order_id)?;
    match domain::decide_payment(order_id, &reservations) {
        Payment::Ignore => Ok(()),
        Payment::Fail(event) => publish(&event),
        Payment::Commit {
            reservations,
            event,
        } => {
            settle(order_id, &reservations, Settlement::Commit, "order_paid")?;
            publish(&event)
        }
    }
}

/// The two ways a held reservation leaves RESERVED.
#[derive(Debug, Clone, Copy)]
enum Settlement {
    /// The units go back to available stock.
    Release,
    /// The units are sold.
    Commit,
}

/// Settles each reservation: its status, its item's stock (told as
/// `StockLevelChanged`), and a ledger entry with `reason`. A row that refuses
/// the change means another call moved it.
fn settle(
    order_id: &str,
    reservations: &[Reservation],
    how: Settlement,
    reason: &str,
) -> Result<(), Error> {
    let now = clock::now();
    type MoveStock = fn(&str, i64, &str) -> Result<bool, Error>;
    let (status, kind, move_stock): (_, _, MoveStock) = match how {
        Settlement::Release => (
            ReservationStatus::Released,
            MovementKind::Released,
            store::release_stock,
        ),
        Settlement::Commit => (
            ReservationStatus::Committed,
            MovementKind::Committed,
            store::commit_stock,
        ),
    };
    for r in reservations {
        if !store::settle_reservation(&r.id, status, &now)?
            || !move_stock(&r.sku, r.quantity, &now)?
        {
            return Err(stock_moved(&r.sku, order_id));
        }
        store::record_movement(&r.sku, kind, r.quantity, Some(order_id), reason, &now)?;
        levels::publish_current(&r.sku)?;
    }
    Ok(())
}

mercato_sdk::export_plugin!(Inventory);

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> mercato_sdk::bindings::exports::mercato::plugin::plugin::Manifest {
        Inventory::manifest().into_wit()
    }

    #[test]
    fn subscribes_to_exactly_the_saga_events() {
        assert_eq!(
            manifest().subscriptions,
            [
                "orders.OrderPlaced",
                "orders.OrderRejected",
                "orders.OrderCancelled",
                "orders.OrderPaid",
                "inventory.ReservationExpiryDue",
            ]
        );
    }

    #[test]
    fn migrations_cover_both_backends() {
        let files: Vec<String> = manifest().migrations.into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            files,
            [
                "0001_create_inventory.sql",
                "0002_stock_movements_append_only.sqlite.sql",
                "0002_stock_movements_append_only.postgres.sql",
            ]
        );
    }

    #[test]
    fn openapi_documents_every_route_with_resolvable_schemas() {
        let doc: Value = serde_json::from_str(&manifest().openapi).unwrap();
        // GET /settings cannot fail with a 4xx.
        let routes = [
            ("/items", "post", "201", true),
            ("/items", "get", "200", true),
            ("/items/{sku}", "get", "200", true),
            ("/items/{sku}/adjustments", "post", "200", true),
            ("/reservations", "get", "200", true),
            ("/settings", "get", "200", false),
            ("/settings", "put", "200", true),
        ];
        for (path, method, success, can_fail) in routes {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path} undocumented");
            assert!(
                op["responses"][success].is_object(),
                "{method} {path} {success}"
            );
            let documents_client_errors = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .any(|status| status.starts_with('4'));
            assert_eq!(documents_client_errors, can_fail, "{method} {path} 4xx");
            if method != "get" {
                assert!(op["requestBody"].is_object(), "{method} {path} body");
            }
        }
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().unwrap();
            let name = target.strip_prefix("#/components/schemas/").unwrap();
            assert!(schemas.contains_key(name), "dangling {target}");
        }
        assert_eq!(
            doc["components"]["schemas"]["Error"]["properties"]["error"]["required"],
            json!(["code", "message"])
        );
    }

    #[test]
    fn domain_errors_are_422_except_insufficient_stock_409() {
        let invalid: HttpError = DomainError::InvalidSku.into();
        assert_eq!(
            (invalid.status, invalid.code.as_str()),
            (422, "invalid_sku")
        );
        let short: HttpError = DomainError::InsufficientStock {
            on_hand: 1,
            delta: -1,
            promised: 1,
        }
        .into();
        assert_eq!(
            (short.status, short.code.as_str()),
            (409, "insufficient_stock")
        );
    }

    #[test]
    fn items_show_their_available_stock() {
        let level = StockLevel {
            on_hand: 10,
            reserved: 3,
            committed: 2,
        };
        assert_eq!(
            item_json("MUG", level),
            json!({"sku": "MUG", "on_hand": 10, "available": 5, "reserved": 3, "committed": 2})
        );
    }

    #[test]
    fn order_events_are_read_with_the_saga_payloads() {
        let placed: OrderPlaced = serde_json::from_value(json!({
            "order_id": "o", "buyer_id": "b", "currency": "EUR",
            "items": [{"sku": "MUG", "quantity": 2, "unit_price_minor": 1250}],
            "subtotal_minor": 2500, "coupon_code": null
        }))
        .unwrap();
        assert_eq!(
            placed.items,
            [OrderLine {
                sku: "MUG".into(),
                quantity: 2
            }]
        );
        let cancelled: OrderCalledOff = serde_json::from_value(
            json!({"order_id": "o", "reason": "payment_failed", "coupon_code": null}),
        )
        .unwrap();
        assert_eq!(cancelled.reason.as_deref(), Some("payment_failed"));
        let paid: OrderRef = serde_json::from_value(
            json!({"order_id": "o", "intent_id": "i", "amount_minor": 2500, "currency": "EUR"}),
        )
        .unwrap();
        assert_eq!(paid.order_id, "o");
    }
}
