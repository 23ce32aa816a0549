//! The order a buyer asks for, read the same way from the two places it comes
//! from: the body of `POST /orders` and checkout's `CheckoutSubmitted`
//! payload, which carries the same fields plus the session. Both then go
//! through [`super::place`], so checkout gets exactly the orders the API
//! would accept.
use super::{PlaceOrder, Refusal, refuse};
use mercato_sdk::address::ShippingAddress;
use serde::Deserialize;

/// An order as asked for (the body of `POST /orders`). Unknown fields are
/// ignored, so a checkout submission reads as one too.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderRequest {
    pub buyer_id: String,
    pub currency: String,
    pub items: Vec<ItemRequest>,
    #[serde(default)]
    pub coupon_code: Option<String>,
    pub shipping_address: ShippingAddress,
}

/// One line asked for.
#[derive(Debug, Clone, Deserialize)]
pub struct ItemRequest {
    pub sku: String,
    pub quantity: i64,
}

impl OrderRequest {
    /// The command to place; `checkout_session_id` only for a checkout
    /// submission.
    pub fn into_command(self, checkout_session_id: Option<String>) -> PlaceOrder {
        PlaceOrder {
            buyer_id: self.buyer_id,
            currency: self.currency,
            lines: self
                .items
                .into_iter()
                .map(|i| (i.sku, i.quantity))
                .collect(),
            coupon_code: self.coupon_code,
            shipping_address: self.shipping_address,
            checkout_session_id,
        }
    }
}

/// A `checkout.CheckoutSubmitted` payload as orders reads it.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The session to place an order for, and to answer if it is refused.
    pub session_id: String,
    /// The order to place, or why the submission does not even read as one:
    /// refused as `POST /orders` refuses a body that does not parse (400
    /// `invalid_json`), so checkout hears the same code either way.
    pub command: Result<PlaceOrder, Refusal>,
}

/// Reads a submission. `Err` only when it names no session: there is nobody
/// to answer, so the event itself is malformed.
pub fn read_submission(payload: &str) -> Result<Submission, String> {
    #[derive(Deserialize)]
    struct Session {
        session_id: String,
    }
    let Session { session_id } = serde_json::from_str(payload)
        .map_err(|e| format!("checkout.CheckoutSubmitted payload: {e}"))?;
    if session_id.trim().is_empty() {
        return Err("checkout.CheckoutSubmitted payload: session_id is empty".into());
    }
    let command = serde_json::from_str::<OrderRequest>(payload)
        .map(|order| order.into_command(Some(session_id.clone())))
        .map_err(|e| refuse(400, "invalid_json", format!("checkout submission: {e}")));
    Ok(Submission {
        session_id,
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::offer;
    use super::super::{Coupon, Fulfillment, Status, place};
    use super::*;
    use serde_json::{Value, json};

    fn payload() -> Value {
        json!({
            "session_id": "cs-1",
            "buyer_id": "buyer-1",
            "currency": "EUR",
            "items": [{ "sku": "TEE", "quantity": 2 }],
            "coupon_code": null,
            "shipping_address": {
                "name": " Ada Lovelace ", "line1": "12 St James's Square",
                "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"
            },
            "total_minor": 3000,
        })
    }

    /// Breaks one field of a payload.
    type Breaker = fn(&mut Value);

    fn read(p: &Value) -> Submission {
        read_submission(&p.to_string()).unwrap()
    }

    #[test]
    fn a_submission_places_the_order_post_orders_would_for_its_session() {
        let s = read(&payload());
        assert_eq!(s.session_id, "cs-1");
        let (order, lines) = place("o1", s.command.unwrap(), offer).unwrap();
        assert_eq!(order.checkout_session_id.as_deref(), Some("cs-1"));
        assert_eq!(order.status, Status::Pending);
        assert_eq!(order.coupon, Coupon::None);
        assert_eq!(order.fulfillment, Fulfillment::Unfulfilled);
        assert_eq!(order.subtotal_minor, 3_000);
        assert_eq!(lines.len(), 1);
        let address = order.shipping_address.unwrap();
        assert_eq!(address.name, "Ada Lovelace", "validated, so trimmed");
        assert_eq!(address.line2, None);
    }

    #[test]
    fn the_api_body_reads_the_same_without_a_session() {
        let mut body = payload();
        body.as_object_mut().unwrap().remove("session_id");
        let request: OrderRequest = serde_json::from_value(body).unwrap();
        let (order, _) = place("o1", request.into_command(None), offer).unwrap();
        assert_eq!(order.checkout_session_id, None);
        assert_eq!(order.subtotal_minor, 3_000);
    }

    #[test]
    fn a_coupon_in_a_submission_is_checked_like_any_other() {
        let mut p = payload();
        p["coupon_code"] = json!("save10");
        let (order, _) = place("o1", read(&p).command.unwrap(), offer).unwrap();
        assert_eq!(order.coupon_code.as_deref(), Some("SAVE10"));
        p["coupon_code"] = json!("x");
        let refusal = place("o1", read(&p).command.unwrap(), offer).unwrap_err();
        assert_eq!(refusal.code, "invalid_coupon_code");
    }

    #[test]
    fn a_submission_place_refuses_is_refused_with_the_same_code() {
        // The code is what checkout hears; the status is POST /orders'.
        let cases: [(Breaker, u16, &str); 5] = [
            (|p| p["items"][0]["sku"] = json!("NOPE"), 404, "unknown_sku"),
            (
                |p| p["items"][0]["sku"] = json!("bad sku"),
                422,
                "invalid_sku",
            ),
            (|p| p["items"] = json!([]), 422, "no_items"),
            (
                |p| p["shipping_address"]["country"] = json!("XX"),
                422,
                "invalid_shipping_address",
            ),
            (
                |p| p["shipping_address"]["city"] = json!("  "),
                422,
                "invalid_shipping_address",
            ),
        ];
        for (break_it, status, code) in cases {
            let mut p = payload();
            break_it(&mut p);
            let s = read(&p);
            assert_eq!(s.session_id, "cs-1");
            let refusal = place("o1", s.command.unwrap(), offer).unwrap_err();
            assert_eq!((refusal.status, refusal.code), (status, code));
        }
    }

    #[test]
    fn a_submission_that_does_not_parse_is_refused_as_invalid_json() {
        let cases: [Breaker; 4] = [
            |p| {
                p.as_object_mut().unwrap().remove("shipping_address");
            },
            |p| {
                p["shipping_address"]
                    .as_object_mut()
                    .unwrap()
                    .remove("city");
            },
            |p| p["shipping_address"]["planet"] = json!("Mars"),
            |p| p["items"][0]["quantity"] = json!("two"),
        ];
        for break_it in cases {
            let mut p = payload();
            break_it(&mut p);
            let s = read(&p);
            assert_eq!(s.session_id, "cs-1");
            let refusal = s.command.unwrap_err();
            assert_eq!((refusal.status, refusal.code), (400, "invalid_json"));
        }
    }

    #[test]
    fn a_submission_without_a_session_is_a_malformed_event() {
        for p in [
            json!({ "buyer_id": "b" }),
            json!({ "session_id": " " }),
            json!({ "session_id": 7 }),
        ] {
            assert!(read_submission(&p.to_string()).is_err(), "{p}");
        }
        assert!(read_submission("not json").is_err());
    }
}
