//! The coupons bounded context: coupon definitions, quotes, and redemptions
//! driven by the order saga (`docs/architecture/saga.md`).
//!
//! Usage is recorded, not recalculated: `coupons.used` moves by conditional
//! updates in the same transaction as the redemption row it counts.
mod domain;
mod lifecycle;
mod lists;
mod store;

use domain::{Cart, Code, Coupon, Decision, Discount, Line, Reason, RuleRef};
use mercato_sdk::prelude::*;
use mercato_sdk::rules;
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
            .migration(
                "0002_rule_coupons.sqlite.sql",
                include_str!("../../../migrations/coupons/0002_rule_coupons.sqlite.sql"),
            )
            .migration(
                "0002_rule_coupons.postgres.sql",
                include_str!("../../../migrations/coupons/0002_rule_coupons.postgres.sql"),
            )
            .migration(
                "0003_coupon_status.sql",
                include_str!("../../../migrations/coupons/0003_coupon_status.sql"),
            )
            .migration(
                "0004_coupon_status_check.sqlite.sql",
                include_str!("../../../migrations/coupons/0004_coupon_status_check.sqlite.sql"),
            )
            .migration(
                "0004_coupon_status_check.postgres.sql",
                include_str!("../../../migrations/coupons/0004_coupon_status_check.postgres.sql"),
            )
            .openapi(include_str!("../openapi.json"))
    }

    fn handle_request(req: Request) -> Response {
        Router::new()
            .post("/", create)
            .get("/", lists::list_coupons)
            .get("/{code}", get)
            .post("/{code}", lifecycle::update)
            .post("/{code}/disable", lifecycle::disable)
            .post("/{code}/enable", lifecycle::enable)
            .post("/{code}/archive", lifecycle::archive)
            .post("/{code}/quote", quote)
            .get("/{code}/redemptions", lists::list_redemptions)
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

fn unknown_coupon(raw: &str) -> HttpError {
    HttpError::not_found("unknown_coupon", &format!("no coupon {raw}"))
}

/// A code that cannot be well-formed cannot exist either: 404 without a query.
fn find(raw: &str) -> Result<Coupon, HttpError> {
    let code = Code::parse(raw).ok_or_else(|| unknown_coupon(raw))?;
    store::find_coupon(&code)?.ok_or_else(|| unknown_coupon(raw))
}

fn view(coupon: &Coupon, status: lifecycle::Status) -> Value {
    let d = &coupon.definition;
    let (kind, percent, amount_minor, rule) = match &d.discount {
        Discount::Percent(p) => ("percent", Some(*p), None, None),
        Discount::Fixed(a) => ("fixed", None, Some(*a), None),
        Discount::Rule(rule) => ("rule", None, None, Some(rule)),
    };
    json!({
        "code": d.code.as_str(),
        "kind": kind,
        "percent": percent,
        "amount_minor": amount_minor,
        "rule": rule.map(|r| r.name.as_str()),
        "config": rule.map(|r| serde_json::from_str::<Value>(&r.config).unwrap_or(Value::Null)),
        "currency": d.currency.as_str(),
        "min_subtotal_minor": d.min_subtotal_minor,
        "valid_from": d.valid_from.map(|t| t.to_string()),
        "valid_until": d.valid_until.map(|t| t.to_string()),
        "usage_limit": d.usage_limit,
        "per_customer_limit": d.per_customer_limit,
        "used": coupon.used,
        "status": status.as_str(),
    })
}

/// `POST /coupons`: creates a coupon (201), 409 `coupon_exists`, 422 otherwise
/// (a rule coupon also when its rule is not deployed or refuses its config).
fn create(req: &Request) -> HttpResult {
    let body: Value = req.json()?;
    let definition = domain::validate_definition(&body)?;
    check_rule_config(&definition)?;
    if !store::insert_coupon(&definition, clock::instant())? {
        return Err(HttpError::conflict(
            "coupon_exists",
            &format!("coupon {} exists", definition.code.as_str()),
        ));
    }
    Ok(Response::json(
        201,
        &view(
            &Coupon {
                definition,
                used: 0,
            },
            lifecycle::Status::Active,
        ),
    ))
}

/// Asks the host whether a rule coupon's rule is deployed and accepts its
/// config (the rule's `validate-config`, or a dry run on a sample cart), so a
/// coupon that could never apply is refused when it is written, not at
/// checkout. Other coupons pass.
fn check_rule_config(definition: &domain::Definition) -> Result<(), HttpError> {
    let Discount::Rule(rule) = &definition.discount else {
        return Ok(());
    };
    rules::validate(&rule.name, &rule.config, definition.currency.as_str()).map_err(|r| {
        let refusal = domain::ConfigRefusal::of(&r.code);
        HttpError::new(refusal.status, refusal.code, &r.message)
    })
}

/// `GET /coupons/{code}`.
fn get(req: &Request) -> HttpResult {
    let coupon = find(req.param("code"))?;
    let status = status_of(&coupon)?;
    Ok(Response::json(200, &view(&coupon, status)))
}

/// The stored status of a coupon just read.
fn status_of(coupon: &Coupon) -> Result<lifecycle::Status, Error> {
    store::status_of(&coupon.definition.code)?.ok_or_else(|| {
        Error::Internal(format!(
            "coupon {} vanished while read",
            coupon.definition.code.as_str()
        ))
    })
}

/// `POST /coupons/{code}/quote`: what the coupon would do for a cart right
/// now. It redeems nothing; the order saga does that. A rule coupon's rule
/// runs on the quoted cart (its `lines`, when given).
fn quote(req: &Request) -> HttpResult {
    let body: Value = req.json()?;
    let request = domain::validate_quote(&body)?;
    let coupon = find(req.param("code"))?;
    let code = &coupon.definition.code;
    let customer_redemptions = match (&request.buyer_id, coupon.definition.per_customer_limit) {
        (Some(buyer_id), Some(_)) => Some(store::active_redemptions_of_buyer(code, buyer_id)?),
        _ => None,
    };
    let buyer_id = request.buyer_id.as_deref().unwrap_or("");
    let decision = match status_of(&coupon)?.refusal() {
        Some(reason) => Decision::Reject(reason),
        None => domain::decide(
            &coupon,
            &request.cart,
            customer_redemptions,
            clock::instant(),
        ),
    };
    let priced = price(&coupon, &request.cart, buyer_id, decision);
    let subtotal = request.cart.subtotal_minor;
    let body = match &priced {
        Priced::Apply {
            discount_minor,
            rule,
        } => json!({
            "code": code.as_str(),
            "applicable": true,
            "discount_minor": discount_minor,
            "total_minor": subtotal - discount_minor,
            "reason": null,
            "rule": rule.as_ref().map(applied_view),
        }),
        Priced::Reject { reason, rule } => json!({
            "code": code.as_str(),
            "applicable": false,
            "discount_minor": 0,
            "total_minor": subtotal,
            "reason": reason.as_str(),
            "rule": rule.as_ref().map(rejected_view),
        }),
    };
    Ok(Response::json(200, &body))
}

/// What pricing a cart came to, with the rule's answer when a rule ran.
enum Priced {
    Apply {
        discount_minor: i64,
        rule: Option<rules::Evaluation>,
    },
    Reject {
        reason: Reason,
        rule: Option<rules::Rejection>,
    },
}

/// Turns a decision into a price, asking the host to run the coupon's rule
/// when the decision says so. A rule's failure of any kind (it declined,
/// broke a limit, trapped, or is not deployed) rejects this coupon only.
fn price(coupon: &Coupon, cart: &Cart, buyer_id: &str, decision: Decision) -> Priced {
    match (decision, &coupon.definition.discount) {
        (Decision::Apply { discount_minor }, _) => Priced::Apply {
            discount_minor,
            rule: None,
        },
        (Decision::Reject(reason), _) => Priced::Reject { reason, rule: None },
        (Decision::AskRule, Discount::Rule(rule)) => match evaluate(rule, cart, buyer_id) {
            Ok(evaluation) => Priced::Apply {
                // The host checked 0 <= discount <= subtotal.
                discount_minor: evaluation.adjustment.discount,
                rule: Some(evaluation),
            },
            Err(rejection) => Priced::Reject {
                reason: Reason::RuleRejected,
                rule: Some(rejection),
            },
        },
        (Decision::AskRule, _) => Priced::Reject {
            reason: Reason::RuleRejected,
            rule: None,
        },
    }
}

fn evaluate(
    rule: &RuleRef,
    cart: &Cart,
    buyer_id: &str,
) -> Result<rules::Evaluation, rules::Rejection> {
    let lines = cart
        .lines
        .iter()
        .map(|l| rules::CartLine {
            sku: l.sku.clone(),
            quantity: l.quantity,
            unit_price: l.unit_price_minor,
        })
        .collect();
    let cart = rules::Cart {
        currency: cart.currency.clone(),
        buyer_id: buyer_id.to_owned(),
        subtotal: cart.subtotal_minor,
        lines,
    };
    rules::evaluate(&rule.name, &cart, &rule.config)
}

fn applied_view(e: &rules::Evaluation) -> Value {
    json!({
        "version": e.rule_version,
        "reason": e.adjustment.reason,
        "lines": e.adjustment.lines.iter().map(|l| json!({ "sku": l.sku, "discount_minor": l.amount })).collect::<Vec<_>>(),
        "fuel": e.fuel,
        "micros": e.micros,
    })
}

fn rejected_view(r: &rules::Rejection) -> Value {
    json!({ "version": r.rule_version, "code": r.code, "message": r.message })
}

/// The part of `orders.OrderPlaced` this context needs.
#[derive(Deserialize)]
struct OrderPlaced {
    order_id: String,
    buyer_id: String,
    currency: String,
    subtotal_minor: i64,
    coupon_code: Option<String>,
    #[serde(default)]
    items: Vec<OrderItem>,
}

#[derive(Deserialize)]
struct OrderItem {
    sku: String,
    quantity: u32,
    unit_price_minor: i64,
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
        return reject(order, raw_code, None, Reason::UnknownCoupon, None);
    };
    if let Some(reason) = status_of(&coupon)?.refusal() {
        return reject(order, raw_code, Some(&coupon), reason, None);
    }
    let code = &coupon.definition.code;
    let customer_redemptions = match coupon.definition.per_customer_limit {
        Some(_) => Some(store::active_redemptions_of_buyer(code, &order.buyer_id)?),
        None => None,
    };
    let cart = Cart {
        currency: order.currency.clone(),
        subtotal_minor: order.subtotal_minor,
        lines: order
            .items
            .iter()
            .map(|i| Line {
                sku: i.sku.clone(),
                quantity: i.quantity,
                unit_price_minor: i.unit_price_minor,
            })
            .collect(),
    };
    let now = clock::instant();
    let decision = domain::decide(&coupon, &cart, customer_redemptions, now);
    let (discount_minor, rule) = match price(&coupon, &cart, &order.buyer_id, decision) {
        Priced::Apply {
            discount_minor,
            rule,
        } => (discount_minor, rule),
        Priced::Reject { reason, rule } => {
            return reject(order, raw_code, Some(&coupon), reason, rule.as_ref());
        }
    };
    // The decision saw `used` as read; the conditional update is what holds
    // the limit.
    if !store::claim_use(code, now)? {
        // Disabled meanwhile, or the last use was taken.
        let reason = status_of(&coupon)?
            .refusal()
            .unwrap_or(Reason::UsageLimitReached);
        return reject(order, raw_code, Some(&coupon), reason, None);
    }
    let rule_name = match &coupon.definition.discount {
        Discount::Rule(r) => Some(r.name.as_str()),
        _ => None,
    };
    let recorded = store::insert_redemption(
        &NewRedemption {
            code,
            order_id: &order.order_id,
            buyer_id: &order.buyer_id,
            discount_minor,
            currency: &coupon.definition.currency,
            rule: rule_name.zip(rule.as_ref().map(|e| e.rule_version.as_str())),
            reason: rule.as_ref().map(|e| e.adjustment.reason.as_str()),
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
            "rule": rule_name,
            "rule_version": rule.as_ref().map(|e| e.rule_version.as_str()),
            "reason": rule.as_ref().map(|e| e.adjustment.reason.as_str()),
            "lines": rule.as_ref().map(|e| e.adjustment.lines.iter().map(|l| json!({ "sku": l.sku, "discount_minor": l.amount })).collect::<Vec<_>>()),
        }),
    )
}

/// Longest message carried in an event (a rule's own decline text can be
/// long; the whole of it is in the host's log).
const MAX_EVENT_MESSAGE: usize = 500;

/// Emits `CouponRejected` with the reason and a message for the buyer: the
/// rule's own when a rule rejected the coupon, else what failed it.
fn reject(
    order: &OrderPlaced,
    raw_code: &str,
    coupon: Option<&Coupon>,
    reason: Reason,
    rule: Option<&rules::Rejection>,
) -> Result<(), Error> {
    // The canonical form when the code is well-formed, so the event names the
    // coupon as `GET /coupons/{code}` does.
    let code = raw_code.to_ascii_uppercase();
    let mut message = match rule {
        Some(r) => r.message.clone(),
        None => domain::explain(
            reason,
            &code,
            coupon.map(|c| &c.definition),
            &order.currency,
            order.subtotal_minor,
        ),
    };
    log::info(&format!(
        "order {}: coupon {code} rejected ({}: {message})",
        order.order_id,
        reason.as_str(),
    ));
    if message.len() > MAX_EVENT_MESSAGE {
        let mut end = MAX_EVENT_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    let mut payload = json!({ "order_id": order.order_id, "code": code, "reason": reason.as_str(), "message": message });
    if let Some(r) = rule {
        payload["rule_code"] = json!(r.code);
        payload["rule_version"] = json!(r.rule_version);
    }
    events::emit("CouponRejected", &order.order_id, &payload)
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
    let now = clock::instant();
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
            ("get", "/", "200", false),
            ("get", "/{code}", "200", false),
            ("post", "/{code}/quote", "200", true),
            ("get", "/{code}/redemptions", "200", false),
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
