//! Placing a new order: validated and priced from the catalog projection,
//! never from what the buyer says a thing costs.
use super::{Coupon, Fulfillment, Order, Refusal, Status, Stock, refuse};
use mercato_sdk::address::ShippingAddress;
use mercato_sdk::validate::{self, CouponCode};
use serde::Deserialize;
use serde_json::{Value, json};

pub const MAX_LINES: usize = 100;
pub const MAX_QUANTITY: i64 = 1_000;
/// Largest order total, in minor units: the SDK's limit on any amount, so
/// payments accepts every intent an order can ask for.
pub const MAX_TOTAL_MINOR: i64 = validate::MAX_AMOUNT_MINOR;

/// The catalog's current offer for a sku (the orders' own projection), read
/// from `products.ProductPublished`, whose payload has exactly these fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Offer {
    pub product_id: String,
    pub sku: String,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub version: i64,
    #[serde(default)]
    pub attributes: Value,
}

/// An order to place, as `POST /orders` or a checkout submission asked for it.
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    pub buyer_id: String,
    pub currency: String,
    pub lines: Vec<(String, i64)>,
    pub coupon_code: Option<String>,
    /// As given; `place` validates it.
    pub shipping_address: ShippingAddress,
    /// Set only for a checkout submission: the buyer cannot choose it.
    pub checkout_session_id: Option<String>,
}

/// One priced line of a new order.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub sku: String,
    pub product_id: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
    pub line_total_minor: i64,
    pub snapshot: Value,
}

/// Validates and prices a new order from the catalog projection; the buyer
/// never sets a price.
pub fn place(
    id: &str,
    cmd: PlaceOrder,
    offer: impl Fn(&str) -> Option<Offer>,
) -> Result<(Order, Vec<Line>), Refusal> {
    let buyer = cmd.buyer_id.trim();
    if buyer.is_empty() || buyer.len() > 64 {
        return Err(refuse(
            422,
            "invalid_buyer",
            "buyer_id must be 1-64 characters",
        ));
    }
    validate::check_currency(&cmd.currency)?;
    // The one rule checkout applies too, so an address checkout accepted is
    // one orders accepts.
    let shipping_address = cmd.shipping_address.validated()?;
    if cmd.lines.is_empty() {
        return Err(refuse(422, "no_items", "an order needs at least one item"));
    }
    if cmd.lines.len() > MAX_LINES {
        return Err(refuse(
            422,
            "too_many_items",
            format!("an order has at most {MAX_LINES} lines"),
        ));
    }
    // Checked with the rule coupons creates codes by, so a code that cannot
    // exist is refused here rather than rejected later by the saga.
    let coupon_code = match cmd.coupon_code.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(
            CouponCode::parse(raw)
                .ok_or_else(|| {
                    refuse(
                        422,
                        "invalid_coupon_code",
                        "coupon_code must be 3-32 letters, digits, '_' or '-'",
                    )
                })?
                .into_string(),
        ),
    };
    let mut lines = Vec::with_capacity(cmd.lines.len());
    let mut subtotal: i64 = 0;
    for (sku, quantity) in cmd.lines {
        if !validate::is_sku(&sku) {
            return Err(refuse(
                422,
                "invalid_sku",
                format!("sku `{sku}` is malformed"),
            ));
        }
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            return Err(refuse(
                422,
                "invalid_quantity",
                format!("quantity of {sku} must be between 1 and {MAX_QUANTITY}"),
            ));
        }
        let offer = offer(&sku)
            .ok_or_else(|| refuse(404, "unknown_sku", format!("no product with sku {sku}")))?;
        if offer.currency != cmd.currency {
            // The body is well formed; the catalog's state refuses it.
            return Err(refuse(
                409,
                "currency_mismatch",
                format!(
                    "{sku} is sold in {}, the order is in {}",
                    offer.currency, cmd.currency
                ),
            ));
        }
        let line_total = offer
            .price_minor
            .checked_mul(quantity)
            .ok_or_else(|| refuse(422, "amount_too_large", "the order total is too large"))?;
        subtotal = subtotal
            .checked_add(line_total)
            .ok_or_else(|| refuse(422, "amount_too_large", "the order total is too large"))?;
        lines.push(Line {
            snapshot: json!({
                "product_id": offer.product_id,
                "sku": offer.sku,
                "name": offer.name,
                "price_minor": offer.price_minor,
                "currency": offer.currency,
                "price_version": offer.version,
                "attributes": offer.attributes,
            }),
            sku,
            product_id: offer.product_id,
            quantity,
            unit_price_minor: offer.price_minor,
            line_total_minor: line_total,
        });
    }
    if subtotal > MAX_TOTAL_MINOR {
        return Err(refuse(
            422,
            "amount_too_large",
            format!("the order total may not exceed {MAX_TOTAL_MINOR} minor units"),
        ));
    }
    let order = Order {
        id: id.to_owned(),
        buyer_id: buyer.to_owned(),
        currency: cmd.currency,
        status: Status::Pending,
        stock: Stock::Pending,
        coupon: if coupon_code.is_some() {
            Coupon::Pending
        } else {
            Coupon::None
        },
        coupon_code,
        subtotal_minor: subtotal,
        discount_minor: 0,
        payment_intent_id: None,
        captured_minor: 0,
        refunded_minor: 0,
        shipping_address: Some(shipping_address),
        checkout_session_id: cmd.checkout_session_id,
        fulfillment: Fulfillment::Unfulfilled,
        coupon_rejection: None,
    };
    Ok((order, lines))
}
