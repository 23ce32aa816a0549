//! The orders bounded context: the system of record for orders and the hub of
//! the order saga (docs/architecture/saga.md). Prices come from a local
//! projection of the catalog; status history is append-only; every update of an
//! order checks its version. Orders come from `POST /orders` and from checkout's
//! submissions, by one path; shipping's events tell how far they have got.
mod domain;
mod settings;
mod shipments;
mod store;

use domain::{Decision, Emit, Fact, Offer, Order, OrderRequest, PlaceOrder, Refusal, Status};
use mercato_sdk::list::ListQuery;
use mercato_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

/// The plugin; other components can wrap it (see `plugins/testing/`).
pub struct Orders;

impl Plugin for Orders {
    fn manifest() -> Manifest {
        let mut m = Manifest::new("orders", env!("CARGO_PKG_VERSION"))
            .migration(
                "0001_orders.sql",
                include_str!("../../../migrations/orders/0001_orders.sql"),
            )
            .migration(
                "0002_append_only.sqlite.sql",
                include_str!("../../../migrations/orders/0002_append_only.sqlite.sql"),
            )
            .migration(
                "0002_append_only.postgres.sql",
                include_str!("../../../migrations/orders/0002_append_only.postgres.sql"),
            )
            .migration(
                "0003_shipping.sql",
                include_str!("../../../migrations/orders/0003_shipping.sql"),
            )
            .migration(
                "0004_shipping_checks.sqlite.sql",
                include_str!("../../../migrations/orders/0004_shipping_checks.sqlite.sql"),
            )
            .migration(
                "0004_shipping_checks.postgres.sql",
                include_str!("../../../migrations/orders/0004_shipping_checks.postgres.sql"),
            )
            .migration(
                "0006_client_secrets.sql",
                include_str!("../../../migrations/orders/0006_client_secrets.sql"),
            )
            .migration(
                "0007_coupon_not_applicable.sql",
                include_str!("../../../migrations/orders/0007_coupon_not_applicable.sql"),
            )
            .migration(
                "0008_coupon_not_applicable_checks.sqlite.sql",
                include_str!(
                    "../../../migrations/orders/0008_coupon_not_applicable_checks.sqlite.sql"
                ),
            )
            .migration(
                "0008_coupon_not_applicable_checks.postgres.sql",
                include_str!(
                    "../../../migrations/orders/0008_coupon_not_applicable_checks.postgres.sql"
                ),
            )
            .openapi(include_str!("../openapi.json"));
        for pattern in [
            "products.*",
            "inventory.StockReserved",
            "inventory.StockReservationRejected",
            "inventory.StockReservationExpired",
            "inventory.StockCommitFailed",
            "coupons.CouponApplied",
            "coupons.CouponRejected",
            "payments.*",
            "checkout.CheckoutSubmitted",
            "shipping.ShipmentCreated",
            "shipping.ShipmentDispatched",
            "shipping.ShipmentDelivered",
            "shipping.ShipmentCancelled",
        ] {
            m = m.subscribe(pattern);
        }
        m
    }

    fn handle_request(req: Request) -> Response {
        Router::new()
            .post("/", place)
            .get("/", list)
            .get("/settings", settings::get)
            .put("/settings", settings::put)
            .get("/{id}", get)
            .post("/{id}/cancel", cancel)
            .dispatch(req)
    }

    fn handle_event(event: Event) -> Result<(), Error> {
        match (event.source.as_str(), event.event_type.as_str()) {
            ("products", "ProductPublished") => {
                store::upsert_offer(&events::payload::<Offer>(&event)?, &clock::now())
            }
            ("products", "ProductPriceChanged") => project_price(&events::payload(&event)?),
            ("checkout", "CheckoutSubmitted") => checkout_submitted(&event),
            ("shipping", _) => shipments::reported(&event),
            _ => saga(&event),
        }
    }
}

impl From<Refusal> for HttpError {
    fn from(r: Refusal) -> Self {
        HttpError::new(r.status, r.code, &r.message)
    }
}

/// Why placing an order failed.
enum PlaceError {
    /// The order breaks a rule: nothing was written, and the caller hears why.
    Refused(Refusal),
    /// The host failed: the call rolls back (an event is retried).
    Host(Error),
}

impl From<Refusal> for PlaceError {
    fn from(r: Refusal) -> Self {
        PlaceError::Refused(r)
    }
}

impl From<Error> for PlaceError {
    fn from(e: Error) -> Self {
        PlaceError::Host(e)
    }
}

impl From<PlaceError> for HttpError {
    fn from(e: PlaceError) -> Self {
        match e {
            PlaceError::Refused(r) => r.into(),
            PlaceError::Host(e) => e.into(),
        }
    }
}

/// Prices, validates and records a new order and emits `OrderPlaced`: the one
/// path of `POST /orders` and of a checkout submission. A refusal writes nothing.
fn place_order(cmd: PlaceOrder) -> Result<Order, PlaceError> {
    let id = new_id();
    let mut offers = Vec::new();
    for (sku, _) in &cmd.lines {
        if let Some(offer) = store::offer(sku)? {
            offers.push(offer);
        }
    }
    let (order, lines) = domain::place(&id, cmd, |sku| {
        offers.iter().find(|o| o.sku == sku).cloned()
    })?;
    let now = clock::now();
    store::insert_order(&order, &lines, &now)?;
    store::append_history(&id, None, Status::Pending, "placed", &now)?;
    events::emit(
        "OrderPlaced",
        &id,
        &json!({
            "order_id": id,
            "buyer_id": order.buyer_id,
            "currency": order.currency,
            "items": lines.iter().map(|l| json!({ "sku": l.sku, "quantity": l.quantity, "unit_price_minor": l.unit_price_minor })).collect::<Vec<_>>(),
            "subtotal_minor": order.subtotal_minor,
            "coupon_code": order.coupon_code,
            "shipping_address": order.shipping_address,
            "checkout_session_id": order.checkout_session_id,
        }),
    )?;
    Ok(order)
}

// ---- HTTP ----

fn place(req: &Request) -> HttpResult {
    let body: OrderRequest = req.json()?;
    let order = place_order(body.into_command(None))?;
    // The storefront reads the order back with it (`GET /orders/{id}?client_secret=`).
    let secret = mercato_sdk::role::new_client_secret(&order.id);
    store::insert_client_secret(&order.id, &secret)?;
    Ok(Response::json(
        201,
        &json!({ "id": order.id, "status": order.status.as_str(), "client_secret": secret }),
    ))
}

/// The merchant reads any order; a buyer one whose client secret they hold.
fn get(req: &Request) -> HttpResult {
    let id = req.param("id");
    req.authorize_client_secret(store::client_secret(id)?.as_deref(), "order")?;
    let (order, version) = store::order(id)?
        .ok_or_else(|| HttpError::not_found("unknown_order", &format!("no order {id}")))?;
    Ok(Response::json(200, &view(&order, version)?))
}

/// `GET /orders[?buyer_id=…&status=…]`: order summaries newest first by
/// `(created_at, id)`.
fn list(req: &Request) -> HttpResult {
    let query = ListQuery::parse(req, &["buyer_id", "status"])?;
    let mut listing = store::order_listing();
    if let Some(buyer_id) = query.filter("buyer_id") {
        listing = listing.condition("buyer_id = $?", buyer_id.into());
    }
    if let Some(status) = query.filter("status") {
        listing = listing.condition("status = $?", status_filter(status)?.as_str().into());
    }
    query.respond(listing)
}

/// The `status` filter: an order status, or a 400 naming them (a misspelt
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

fn cancel(req: &Request) -> HttpResult {
    let id = req.param("id");
    let (order, version) = store::order(id)?
        .ok_or_else(|| HttpError::not_found("unknown_order", &format!("no order {id}")))?;
    let decision = domain::decide(&order, Fact::CancelRequested)?;
    apply(&order, version, decision)?;
    let (order, version) =
        store::order(id)?.ok_or_else(|| HttpError::not_found("unknown_order", id))?;
    Ok(Response::json(200, &view(&order, version)?))
}

// ---- events ----

/// Places the order a checkout session submitted, exactly as `POST /orders`
/// would, once per session. A refusal creates no order and is answered with
/// `CheckoutRejected` (the event was handled); only a host failure is an error.
fn checkout_submitted(event: &Event) -> Result<(), Error> {
    let submission = domain::read_submission(&event.payload).map_err(Error::Invalid)?;
    let session_id = submission.session_id;
    // Whatever the redelivery, and should checkout submit a session twice,
    // the session's first order stands (the unique index backs this up).
    if store::order_of_session(&session_id)?.is_some() {
        return Ok(());
    }
    let refusal = match submission.command.map(place_order) {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(PlaceError::Host(e))) => return Err(e),
        Ok(Err(PlaceError::Refused(r))) | Err(r) => r,
    };
    events::emit(
        "CheckoutRejected",
        &session_id,
        &json!({ "session_id": session_id, "code": refusal.code, "message": refusal.message }),
    )
}

#[derive(Deserialize)]
struct PriceChanged {
    sku: String,
    price_minor: i64,
    currency: String,
    version: i64,
}

/// Versions only move forward: a late or repeated event changes nothing.
fn project_price(p: &PriceChanged) -> Result<(), Error> {
    store::update_price(&p.sku, p.price_minor, &p.currency, p.version, &clock::now())
}

#[derive(Deserialize)]
struct SagaPayload {
    order_id: String,
    #[serde(default)]
    sku: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    discount_minor: Option<i64>,
    #[serde(default)]
    intent_id: Option<String>,
    #[serde(default)]
    amount_minor: Option<i64>,
    #[serde(default)]
    refunded_total_minor: Option<i64>,
    #[serde(default)]
    refund_id: Option<String>,
    #[serde(default)]
    rule_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Translates another context's event into a fact about an order; the
/// merchant's `settings` decide what a coupon that does not apply does.
fn fact(event: &Event, p: &SagaPayload, settings: domain::Settings) -> Option<Fact> {
    let reason = || p.reason.clone().unwrap_or_else(|| "unspecified".into());
    Some(match (event.source.as_str(), event.event_type.as_str()) {
        ("inventory", "StockReserved") => Fact::StockReserved,
        ("inventory", "StockReservationRejected") => Fact::StockRejected {
            sku: p.sku.clone().unwrap_or_default(),
            reason: reason(),
        },
        ("inventory", "StockReservationExpired") => Fact::StockExpired,
        ("inventory", "StockCommitFailed") => Fact::StockCommitFailed { reason: reason() },
        ("coupons", "CouponApplied") => Fact::CouponApplied {
            discount_minor: p.discount_minor.unwrap_or(0),
        },
        ("coupons", "CouponRejected") => Fact::CouponRejected {
            reason: reason(),
            rule_code: p.rule_code.clone(),
            // Older events carry no message for reasons other than a rule's.
            message: p.message.clone().unwrap_or_else(reason),
            setting: settings.on_coupon_not_applicable,
        },
        ("payments", "PaymentIntentCreated") => Fact::IntentCreated {
            intent_id: p.intent_id.clone()?,
        },
        ("payments", "PaymentCaptured") => Fact::PaymentCaptured {
            intent_id: p.intent_id.clone()?,
            amount_minor: p.amount_minor?,
        },
        ("payments", "PaymentFailed") => Fact::PaymentFailed { reason: reason() },
        ("payments", "PaymentRefunded") => Fact::PaymentRefunded {
            refunded_total_minor: p.refunded_total_minor?,
        },
        _ => return None,
    })
}

fn saga(event: &Event) -> Result<(), Error> {
    let payload: SagaPayload = events::payload(event)?;
    let settings = match (event.source.as_str(), event.event_type.as_str()) {
        ("coupons", "CouponRejected") => store::settings()?,
        _ => domain::Settings::default(),
    };
    let Some(fact) = fact(event, &payload, settings) else {
        return Ok(());
    };
    // Events about orders this context never recorded concern nobody here.
    let Some((order, version)) = store::order(&payload.order_id)? else {
        return Ok(());
    };
    let now = clock::now();
    if let (
        Fact::IntentCreated { .. } | Fact::PaymentCaptured { .. } | Fact::PaymentFailed { .. },
        Some(intent),
    ) = (&fact, payload.intent_id.as_deref())
    {
        store::record_payment(
            &order.id,
            intent,
            &event.event_type,
            payload.amount_minor.unwrap_or(0),
            &now,
        )?;
    }
    if let (Fact::PaymentRefunded { .. }, Some(refund_id), Some(amount)) = (
        &fact,
        payload.refund_id.as_deref(),
        payload.amount_minor.filter(|a| *a > 0),
    ) {
        store::record_refund(&order.id, refund_id, amount, &now)?;
    }
    let decision = domain::decide(&order, fact).map_err(|r| Error::Invalid(r.message))?;
    apply(&order, version, decision)
}

// ---- persistence ----

/// Persists a decision: never a blind update (the version must still match),
/// then the history row and the events.
fn apply(before: &Order, version: i64, d: Decision) -> Result<(), Error> {
    let o = &d.order;
    if *o == *before && d.emit.is_empty() {
        return Ok(());
    }
    let now = clock::now();
    store::update_order(o, version, &now)?;
    if let Some(t) = &d.transition {
        store::append_history(&o.id, Some(t.from), t.to, &t.reason, &now)?;
    }
    for emit in &d.emit {
        let (event_type, payload) = match emit {
            Emit::Confirmed => (
                "OrderConfirmed",
                json!({
                    "order_id": o.id, "buyer_id": o.buyer_id, "currency": o.currency,
                    "subtotal_minor": o.subtotal_minor, "discount_minor": o.discount_minor, "total_minor": o.total_minor(),
                    "coupon_rejection": o.coupon_rejection,
                }),
            ),
            Emit::Rejected { reason } => (
                "OrderRejected",
                json!({ "order_id": o.id, "buyer_id": o.buyer_id, "reason": reason, "coupon_code": o.coupon_code,
                    "subtotal_minor": o.subtotal_minor, "discount_minor": o.discount_minor, "total_minor": o.total_minor(),
                    "coupon_rejection": o.coupon_rejection }),
            ),
            Emit::Cancelled { reason } => (
                "OrderCancelled",
                json!({ "order_id": o.id, "buyer_id": o.buyer_id, "reason": reason, "coupon_code": o.coupon_code,
                    "subtotal_minor": o.subtotal_minor, "discount_minor": o.discount_minor, "total_minor": o.total_minor() }),
            ),
            Emit::Paid {
                intent_id,
                amount_minor,
            } => (
                "OrderPaid",
                json!({
                    "order_id": o.id, "buyer_id": o.buyer_id, "intent_id": intent_id, "amount_minor": amount_minor,
                    "currency": o.currency, "items": store::event_items(&o.id)?, "shipping_address": o.shipping_address,
                }),
            ),
            Emit::RefundRequested {
                intent_id,
                amount_minor,
                reason,
            } => (
                "RefundRequested",
                json!({ "order_id": o.id, "intent_id": intent_id, "amount_minor": amount_minor, "reason": reason }),
            ),
            Emit::Refunded => (
                "OrderRefunded",
                json!({ "order_id": o.id, "buyer_id": o.buyer_id, "status": o.status.as_str(), "refunded_minor": o.refunded_minor, "captured_minor": o.captured_minor }),
            ),
        };
        events::emit(event_type, &o.id, &payload)?;
    }
    Ok(())
}

fn view(o: &Order, version: i64) -> Result<Value, HttpError> {
    let items = store::items(&o.id)?;
    let history = store::history(&o.id)?;
    Ok(json!({
        "id": o.id,
        "buyer_id": o.buyer_id,
        "status": o.status.as_str(),
        "currency": o.currency,
        "items": items,
        "subtotal_minor": o.subtotal_minor,
        "discount_minor": o.discount_minor,
        "total_minor": o.total_minor(),
        "coupon_code": o.coupon_code,
        "coupon_status": o.coupon.as_str(),
        "coupon_rejection": o.coupon_rejection,
        "stock_status": o.stock.as_str(),
        "payment_intent_id": o.payment_intent_id,
        "captured_minor": o.captured_minor,
        "refunded_minor": o.refunded_minor,
        "status_history": history,
        "shipping_address": o.shipping_address,
        "checkout_session_id": o.checkout_session_id,
        "fulfillment_status": o.fulfillment.as_str(),
        "shipments": store::shipments(&o.id)?,
        "version": version,
    }))
}

#[cfg(feature = "export")]
mercato_sdk::export_plugin!(Orders);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_filter_takes_the_stored_spellings_only() {
        for status in Status::ALL {
            assert_eq!(status_filter(status.as_str()), Ok(status));
        }
        for raw in ["", "paid", "SHIPPED", "PAID "] {
            let e = status_filter(raw).unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (400, "invalid_status"));
            assert!(
                e.message.contains("PENDING, AWAITING_PAYMENT, PAID"),
                "{}",
                e.message
            );
        }
    }
}
