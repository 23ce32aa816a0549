//! The orders bounded context: the system of record for orders and the hub of
//! the order saga (docs/architecture/saga.md). Prices come from a local
//! projection of the catalog; status history is append-only; every update of an
//! order checks its version.
mod domain;

use domain::{Coupon, Decision, Emit, Fact, Offer, Order, PlaceOrder, Refusal, Status, Stock};
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
        ] {
            m = m.subscribe(pattern);
        }
        m
    }

    fn handle_request(req: Request) -> Response {
        Router::new()
            .post("/", place)
            .get("/", list)
            .get("/{id}", get)
            .post("/{id}/cancel", cancel)
            .dispatch(req)
    }

    fn handle_event(event: Event) -> Result<(), Error> {
        match (event.source.as_str(), event.event_type.as_str()) {
            ("products", "ProductPublished") => project_product(&events::payload(&event)?),
            ("products", "ProductPriceChanged") => project_price(&events::payload(&event)?),
            _ => saga(&event),
        }
    }
}

impl From<Refusal> for HttpError {
    fn from(r: Refusal) -> Self {
        HttpError::new(r.status, r.code, &r.message)
    }
}

// ---- HTTP ----

#[derive(Deserialize)]
struct PlaceBody {
    buyer_id: String,
    currency: String,
    items: Vec<ItemBody>,
    #[serde(default)]
    coupon_code: Option<String>,
}

#[derive(Deserialize)]
struct ItemBody {
    sku: String,
    quantity: i64,
}

fn place(req: &Request) -> HttpResult {
    let body: PlaceBody = req.json()?;
    let id = new_id();
    let cmd = PlaceOrder {
        buyer_id: body.buyer_id,
        currency: body.currency,
        lines: body
            .items
            .into_iter()
            .map(|i| (i.sku, i.quantity))
            .collect(),
        coupon_code: body.coupon_code,
    };
    let mut offers = Vec::new();
    for (sku, _) in &cmd.lines {
        if let Some(offer) = load_offer(sku)? {
            offers.push(offer);
        }
    }
    let (order, lines) = domain::place(&id, cmd, |sku| {
        offers.iter().find(|o| o.sku == sku).cloned()
    })?;
    let now = clock::now();
    db::execute(
        "INSERT INTO orders (id, buyer_id, currency, status, stock_status, coupon_status, coupon_code, \
         subtotal_minor, discount_minor, total_minor, captured_minor, refunded_minor, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $8, 0, 0, 1, $9, $9)",
        &[
            id.as_str().into(),
            order.buyer_id.as_str().into(),
            order.currency.as_str().into(),
            order.status.as_str().into(),
            order.stock.as_str().into(),
            order.coupon.as_str().into(),
            order.coupon_code.clone().into(),
            order.subtotal_minor.into(),
            now.as_str().into(),
        ],
    )?;
    for (n, line) in lines.iter().enumerate() {
        db::execute(
            "INSERT INTO order_items (id, order_id, line_no, sku, product_id, quantity, unit_price_minor, line_total_minor, product_snapshot_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                new_id().into(),
                id.as_str().into(),
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
    append_history(&id, None, Status::Pending, "placed", &now)?;
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
        }),
    )?;
    Ok(Response::json(
        201,
        &json!({ "id": id, "status": order.status.as_str() }),
    ))
}

fn get(req: &Request) -> HttpResult {
    let id = req.param("id");
    let (order, version) = load(id)?
        .ok_or_else(|| HttpError::not_found("unknown_order", &format!("no order {id}")))?;
    Ok(Response::json(200, &view(&order, version)?))
}

fn list(req: &Request) -> HttpResult {
    let buyer = req
        .query_param("buyer_id")
        .ok_or_else(|| HttpError::bad_request("missing_buyer_id", "pass ?buyer_id=…"))?;
    let rows = db::query(
        "SELECT id, status, currency, total_minor, created_at FROM orders WHERE buyer_id = $1 ORDER BY created_at, id LIMIT 1000",
        &[buyer.into()],
    )?;
    let orders = rows
        .iter()
        .map(|r| {
            Ok(json!({
                "id": r.text("id")?,
                "status": r.text("status")?,
                "currency": r.text("currency")?,
                "total_minor": r.int("total_minor")?,
                "created_at": r.text("created_at")?,
            }))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Response::json(200, &json!({ "orders": orders })))
}

fn cancel(req: &Request) -> HttpResult {
    let id = req.param("id");
    let (order, version) = load(id)?
        .ok_or_else(|| HttpError::not_found("unknown_order", &format!("no order {id}")))?;
    let decision = domain::decide(&order, Fact::CancelRequested)?;
    apply(&order, version, decision)?;
    let (order, version) = load(id)?.ok_or_else(|| HttpError::not_found("unknown_order", id))?;
    Ok(Response::json(200, &view(&order, version)?))
}

// ---- events ----

#[derive(Deserialize)]
struct Published {
    product_id: String,
    sku: String,
    name: String,
    price_minor: i64,
    currency: String,
    version: i64,
    #[serde(default)]
    attributes: Value,
}

fn project_product(p: &Published) -> Result<(), Error> {
    db::execute(
        "INSERT INTO catalog_prices (sku, product_id, name, price_minor, currency, version, attributes_json, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (sku) DO UPDATE SET product_id = excluded.product_id, name = excluded.name, \
         price_minor = excluded.price_minor, currency = excluded.currency, version = excluded.version, \
         attributes_json = excluded.attributes_json, updated_at = excluded.updated_at \
         WHERE catalog_prices.version < excluded.version",
        &[
            p.sku.as_str().into(),
            p.product_id.as_str().into(),
            p.name.as_str().into(),
            p.price_minor.into(),
            p.currency.as_str().into(),
            p.version.into(),
            p.attributes.to_string().into(),
            clock::now().into(),
        ],
    )?;
    Ok(())
}

#[derive(Deserialize)]
struct PriceChanged {
    sku: String,
    price_minor: i64,
    currency: String,
    version: i64,
}

fn project_price(p: &PriceChanged) -> Result<(), Error> {
    // Versions only move forward: a late or repeated event changes nothing.
    db::execute(
        "UPDATE catalog_prices SET price_minor = $1, currency = $2, version = $3, updated_at = $4 \
         WHERE sku = $5 AND version < $3",
        &[
            p.price_minor.into(),
            p.currency.as_str().into(),
            p.version.into(),
            clock::now().into(),
            p.sku.as_str().into(),
        ],
    )?;
    Ok(())
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
}

/// Translates another context's event into a fact about an order.
fn fact(event: &Event, p: &SagaPayload) -> Option<Fact> {
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
        ("coupons", "CouponRejected") => Fact::CouponRejected { reason: reason() },
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
    let Some(fact) = fact(event, &payload) else {
        return Ok(());
    };
    // Events about orders this context never recorded concern nobody here.
    let Some((order, version)) = load(&payload.order_id)? else {
        return Ok(());
    };
    let now = clock::now();
    if let (
        Fact::IntentCreated { .. } | Fact::PaymentCaptured { .. } | Fact::PaymentFailed { .. },
        Some(intent),
    ) = (&fact, payload.intent_id.as_deref())
    {
        db::execute(
            "INSERT INTO order_payments (id, order_id, intent_id, event, amount_minor, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                new_id().into(),
                order.id.as_str().into(),
                intent.into(),
                event.event_type.as_str().into(),
                payload.amount_minor.unwrap_or(0).into(),
                now.as_str().into(),
            ],
        )?;
    }
    if let (Fact::PaymentRefunded { .. }, Some(refund_id), Some(amount)) = (
        &fact,
        payload.refund_id.as_deref(),
        payload.amount_minor.filter(|a| *a > 0),
    ) {
        db::execute(
            "INSERT INTO order_refunds (id, order_id, refund_id, amount_minor, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (refund_id) DO NOTHING",
            &[
                new_id().into(),
                order.id.as_str().into(),
                refund_id.into(),
                amount.into(),
                now.as_str().into(),
            ],
        )?;
    }
    let decision = domain::decide(&order, fact).map_err(|r| Error::Invalid(r.message))?;
    apply(&order, version, decision)
}

// ---- persistence ----

fn load_offer(sku: &str) -> Result<Option<Offer>, Error> {
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

fn corrupt(what: &str) -> Error {
    Error::Internal(format!("stored order has an unknown {what}"))
}

/// The order and its version, if it exists.
fn load(id: &str) -> Result<Option<(Order, i64)>, Error> {
    let rows = db::query(
        "SELECT id, buyer_id, currency, status, stock_status, coupon_status, coupon_code, subtotal_minor, \
         discount_minor, payment_intent_id, captured_minor, refunded_minor, version FROM orders WHERE id = $1",
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
    };
    Ok(Some((order, r.int("version")?)))
}

fn append_history(
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

/// Persists a decision: never a blind update (the version must still match),
/// then the history row and the events.
fn apply(before: &Order, version: i64, d: Decision) -> Result<(), Error> {
    let o = &d.order;
    if *o == *before && d.emit.is_empty() {
        return Ok(());
    }
    let now = clock::now();
    let changed = db::execute(
        "UPDATE orders SET status = $1, stock_status = $2, coupon_status = $3, discount_minor = $4, total_minor = $5, \
         payment_intent_id = $6, captured_minor = $7, refunded_minor = $8, version = version + 1, updated_at = $9 \
         WHERE id = $10 AND version = $11",
        &[
            o.status.as_str().into(),
            o.stock.as_str().into(),
            o.coupon.as_str().into(),
            o.discount_minor.into(),
            o.total_minor().into(),
            o.payment_intent_id.clone().into(),
            o.captured_minor.into(),
            o.refunded_minor.into(),
            now.as_str().into(),
            o.id.as_str().into(),
            version.into(),
        ],
    )?;
    if changed == 0 {
        return Err(Error::Conflict(format!(
            "order {} changed concurrently; retry",
            o.id
        )));
    }
    if let Some(t) = &d.transition {
        append_history(&o.id, Some(t.from), t.to, &t.reason, &now)?;
    }
    for emit in &d.emit {
        let (event_type, payload) = match emit {
            Emit::Confirmed => (
                "OrderConfirmed",
                json!({
                    "order_id": o.id, "buyer_id": o.buyer_id, "currency": o.currency,
                    "subtotal_minor": o.subtotal_minor, "discount_minor": o.discount_minor, "total_minor": o.total_minor(),
                }),
            ),
            Emit::Rejected { reason } => (
                "OrderRejected",
                json!({ "order_id": o.id, "reason": reason, "coupon_code": o.coupon_code }),
            ),
            Emit::Cancelled { reason } => (
                "OrderCancelled",
                json!({ "order_id": o.id, "reason": reason, "coupon_code": o.coupon_code }),
            ),
            Emit::Paid {
                intent_id,
                amount_minor,
            } => (
                "OrderPaid",
                json!({ "order_id": o.id, "intent_id": intent_id, "amount_minor": amount_minor, "currency": o.currency }),
            ),
            Emit::RefundRequested {
                intent_id,
                amount_minor,
                reason,
            } => (
                "RefundRequested",
                json!({ "order_id": o.id, "intent_id": intent_id, "amount_minor": amount_minor, "reason": reason }),
            ),
        };
        events::emit(event_type, &o.id, &payload)?;
    }
    Ok(())
}

fn view(o: &Order, version: i64) -> Result<Value, HttpError> {
    let items = db::query(
        "SELECT sku, product_id, quantity, unit_price_minor, line_total_minor, product_snapshot_json \
         FROM order_items WHERE order_id = $1 ORDER BY line_no",
        &[o.id.as_str().into()],
    )?;
    let items = items
        .iter()
        .map(|r| {
            Ok(json!({
                "sku": r.text("sku")?,
                "product_id": r.text("product_id")?,
                "quantity": r.int("quantity")?,
                "unit_price_minor": r.int("unit_price_minor")?,
                "line_total_minor": r.int("line_total_minor")?,
                "product": serde_json::from_str::<Value>(r.text("product_snapshot_json")?).unwrap_or(Value::Null),
            }))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let history = db::query(
        "SELECT from_status, to_status, reason, created_at FROM order_status_history WHERE order_id = $1 ORDER BY seq",
        &[o.id.as_str().into()],
    )?;
    let history = history
        .iter()
        .map(|r| {
            Ok(json!({
                "from": r.opt_text("from_status")?,
                "to": r.text("to_status")?,
                "reason": r.text("reason")?,
                "at": r.text("created_at")?,
            }))
        })
        .collect::<Result<Vec<_>, Error>>()?;
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
        "stock_status": o.stock.as_str(),
        "payment_intent_id": o.payment_intent_id,
        "captured_minor": o.captured_minor,
        "refunded_minor": o.refunded_minor,
        "status_history": history,
        "version": version,
    }))
}

#[cfg(feature = "export")]
mercato_sdk::export_plugin!(Orders);
