//! The coupons bounded context: coupon definitions, quotes, and redemptions
//! driven by the order saga (`docs/architecture/saga.md`).
//!
//! Usage is recorded, not recalculated: `coupons.used` moves by conditional
//! updates in the same transaction as the redemption row it counts.
mod domain;
mod store;

use domain::{Cart, Code, Coupon, Decision, Discount, Instant, Invalid, Reason};
use mercato_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};
use store::NewRedemption;

struct Coupons;

impl Plugin for Coupons {
    fn manifest() -> Manifest {
        Manifest::new("coupons", env!("CARGO_PKG_VERSION"))
            .subscribe("orders.OrderPlaced")
            .subscribe("orders.OrderRejected")
            .subscribe("orders.OrderCancelled")
            .migration(
                "0001_create_coupons.sql",
                include_str!("../../../migrations/coupons/0001_create_coupons.sql"),
            )
            .openapi(include_str!("../openapi.json"))
    }

    fn handle_request(req: Request) -> Response {
        Router::new()
            .post("/", create)
            .get("/{code}", get)
            .post("/{code}/quote", quote)
            .dispatch(req)
    }

    fn handle_event(event: Event) -> Result<(), Error> {
        match (event.source.as_str(), event.event_type.as_str()) {
            ("orders", "OrderPlaced") => redeem(&events::payload(&event)?),
            ("orders", "OrderRejected" | "OrderCancelled") => revert(&events::payload(&event)?),
            // Only the subscriptions above are delivered; anything else is not ours.
            _ => Ok(()),
        }
    }
}

fn now() -> Instant {
    Instant::from_millis(i64::try_from(clock::now_millis()).unwrap_or(i64::MAX))
}

fn unprocessable(e: Invalid) -> HttpError {
    HttpError::unprocessable(e.code, &e.message)
}

fn unknown_coupon(raw: &str) -> HttpError {
    HttpError::not_found("unknown_coupon", &format!("no coupon {raw}"))
}

/// A code that cannot be well-formed cannot exist either: 404 without a query.
fn find(raw: &str) -> Result<Coupon, HttpError> {
    let code = Code::parse(raw).ok_or_else(|| unknown_coupon(raw))?;
    store::find_coupon(&code)?.ok_or_else(|| unknown_coupon(raw))
}

fn view(coupon: &Coupon) -> Value {
    let d = &coupon.definition;
    let (kind, percent, amount_minor) = match d.discount {
        Discount::Percent(p) => ("percent", Some(p), None),
        Discount::Fixed(a) => ("fixed", None, Some(a)),
    };
    json!({
        "code": d.code.as_str(),
        "kind": kind,
        "percent": percent,
        "amount_minor": amount_minor,
        "currency": d.currency.as_str(),
        "min_subtotal_minor": d.min_subtotal_minor,
        "valid_from": d.valid_from.map(|t| t.to_string()),
        "valid_until": d.valid_until.map(|t| t.to_string()),
        "usage_limit": d.usage_limit,
        "per_customer_limit": d.per_customer_limit,
        "used": coupon.used,
    })
}

/// `POST /coupons`: creates a coupon (201), 409 `coupon_exists`, 422 otherwise.
fn create(req: &Request) -> HttpResult {
    let body: Value = req.json()?;
    let definition = domain::validate_definition(&body).map_err(unprocessable)?;
    if !store::insert_coupon(&definition, now())? {
        return Err(HttpError::conflict(
            "coupon_exists",
            &format!("coupon {} exists", definition.code.as_str()),
        ));
    }
    Ok(Response::json(
        201,
        &view(&Coupon {
            definition,
            used: 0,
        }),
    ))
}

/// `GET /coupons/{code}`.
fn get(req: &Request) -> HttpResult {
    let coupon = find(req.param("code"))?;
    Ok(Response::json(200, &view(&coupon)))
}

/// `POST /coupons/{code}/quote`: what the coupon would do for a cart right
/// now. It redeems nothing; the order saga does that.
fn quote(req: &Request) -> HttpResult {
    let body: Value = req.json()?;
    let request = domain::validate_quote(&body).map_err(unprocessable)?;
    let coupon = find(req.param("code"))?;
    let code = &coupon.definition.code;
    let customer_redemptions = match (&request.buyer_id, coupon.definition.per_customer_limit) {
        (Some(buyer_id), Some(_)) => Some(store::active_redemptions_of_buyer(code, buyer_id)?),
        _ => None,
    };
    let decision = domain::decide(&coupon, &request.cart, customer_redemptions, now());
    let (discount_minor, reason) = match decision {
        Decision::Apply { discount_minor } => (discount_minor, None),
        Decision::Reject(reason) => (0, Some(reason.as_str())),
    };
    Ok(Response::json(
        200,
        &json!({
            "code": code.as_str(),
            "applicable": reason.is_none(),
            "discount_minor": discount_minor,
            "total_minor": request.cart.subtotal_minor - discount_minor,
            "reason": reason,
        }),
    ))
}

/// The part of `orders.OrderPlaced` this context needs.
#[derive(Deserialize)]
struct OrderPlaced {
    order_id: String,
    buyer_id: String,
    currency: String,
    subtotal_minor: i64,
    coupon_code: Option<String>,
}

/// Redeems the order's coupon, or says why not. Exactly one of
/// `CouponApplied` / `CouponRejected` per order that names a coupon.
fn redeem(order: &OrderPlaced) -> Result<(), Error> {
    let Some(raw_code) = order.coupon_code.as_deref() else {
        return Ok(());
    };
    if store::order_has_redemption(&order.order_id)? {
        return Ok(());
    }
    let found = match Code::parse(raw_code) {
        Some(code) => store::find_coupon(&code)?,
        None => None,
    };
    let Some(coupon) = found else {
        return reject(order, raw_code, Reason::UnknownCoupon);
    };
    let code = &coupon.definition.code;
    let customer_redemptions = match coupon.definition.per_customer_limit {
        Some(_) => Some(store::active_redemptions_of_buyer(code, &order.buyer_id)?),
        None => None,
    };
    let cart = Cart {
        currency: order.currency.clone(),
        subtotal_minor: order.subtotal_minor,
    };
    let now = now();
    let discount_minor = match domain::decide(&coupon, &cart, customer_redemptions, now) {
        Decision::Apply { discount_minor } => discount_minor,
        Decision::Reject(reason) => return reject(order, raw_code, reason),
    };
    // The decision saw `used` as read; the conditional update is what holds
    // the limit.
    if !store::claim_use(code, now)? {
        return reject(order, raw_code, Reason::UsageLimitReached);
    }
    let recorded = store::insert_redemption(
        &NewRedemption {
            code,
            order_id: &order.order_id,
            buyer_id: &order.buyer_id,
            discount_minor,
            currency: &coupon.definition.currency,
        },
        now,
    )?;
    if !recorded {
        // Checked at the top of this same transaction: roll the claim back.
        return Err(Error::Internal(format!(
            "order {} gained a redemption concurrently",
            order.order_id
        )));
    }
    events::emit(
        "CouponApplied",
        &order.order_id,
        &json!({
            "order_id": order.order_id,
            "code": code.as_str(),
            "discount_minor": discount_minor,
            "currency": coupon.definition.currency.as_str(),
        }),
    )
}

fn reject(order: &OrderPlaced, raw_code: &str, reason: Reason) -> Result<(), Error> {
    // The canonical form when the code is well-formed, so the event names the
    // coupon as `GET /coupons/{code}` does.
    let code = raw_code.to_ascii_uppercase();
    log::info(&format!(
        "order {}: coupon {code} rejected ({})",
        order.order_id,
        reason.as_str()
    ));
    events::emit(
        "CouponRejected",
        &order.order_id,
        &json!({ "order_id": order.order_id, "code": code, "reason": reason.as_str() }),
    )
}

/// The part of `orders.OrderRejected` / `orders.OrderCancelled` this context
/// needs. The redemption row, not the event's `coupon_code`, says what to undo.
#[derive(Deserialize)]
struct OrderEnded {
    order_id: String,
}

/// Compensation: gives the order's use of its coupon back.
fn revert(order: &OrderEnded) -> Result<(), Error> {
    let Some(redemption) = store::active_redemption_of_order(&order.order_id)? else {
        return Ok(());
    };
    let now = now();
    if !store::revert_redemption(&redemption.id, now)? {
        return Ok(());
    }
    if !store::release_use(&redemption.code, now)? {
        // `used` counts ACTIVE rows, so it cannot be 0 here; roll back rather
        // than let the count drift.
        return Err(Error::Internal(format!(
            "coupon {}: used is 0 with an ACTIVE redemption",
            redemption.code
        )));
    }
    events::emit(
        "CouponReverted",
        &order.order_id,
        &json!({ "order_id": order.order_id, "code": redemption.code }),
    )
}

mercato_sdk::export_plugin!(Coupons);

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn openapi() -> Value {
        serde_json::from_str(include_str!("../openapi.json")).expect("openapi.json is JSON")
    }

    #[test]
    fn every_route_is_documented_with_a_body_schema_and_a_success_response() {
        let doc = openapi();
        for (method, path, success, body) in [
            ("post", "/", "201", true),
            ("get", "/{code}", "200", false),
            ("post", "/{code}/quote", "200", true),
        ] {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path} is undocumented");
            assert!(op["responses"][success]["content"]["application/json"]["schema"].is_object());
            assert_eq!(
                op["requestBody"]["content"]["application/json"]["schema"].is_object(),
                body
            );
        }
    }

    #[test]
    fn every_error_response_is_the_error_schema_and_every_reference_resolves() {
        let doc = openapi();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        assert_eq!(
            schemas["Error"]["properties"]["error"]["required"],
            serde_json::json!(["code", "message"])
        );
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("operations") {
                for (status, response) in op["responses"].as_object().expect("responses") {
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    if status.starts_with('4') {
                        assert_eq!(
                            schema, "#/components/schemas/Error",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
        let text = include_str!("../openapi.json");
        for reference in text.split("\"$ref\": \"#/components/schemas/").skip(1) {
            let name = &reference[..reference.find('"').expect("closing quote")];
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
    }
}
