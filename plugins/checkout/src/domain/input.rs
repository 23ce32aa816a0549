//! `POST /sessions`: the body and its rules. The rules on buyer, items,
//! quantities and coupon code are the ones orders applies when it places an
//! order, so a session orders would refuse is refused here, before the buyer
//! waits for a saga; prices are not checked (orders prices from its own
//! catalog projection when it places the order).
use mercato_sdk::address::ShippingAddress;
use mercato_sdk::time::Instant;
use mercato_sdk::validate::{CouponCode, Invalid, check_currency, check_sku};
use serde::{Deserialize, Serialize};

/// Most lines in a session (as in an order).
pub const MAX_LINES: usize = 100;
/// Largest quantity of a line (as in an order).
pub const MAX_QUANTITY: i64 = 1_000;
/// Longest buyer id, in bytes (as in an order).
pub const MAX_BUYER_ID_LEN: usize = 64;
/// A session's time to live when the body names none: 30 minutes.
pub const DEFAULT_TTL_SECONDS: i64 = 1_800;
/// Shortest time to live a body may choose (a one-second hold is odd but
/// harmless; it is what lets a test watch a session expire).
pub const MIN_TTL_SECONDS: i64 = 1;
/// Longest time to live a body may choose: a day.
pub const MAX_TTL_SECONDS: i64 = 86_400;

/// The body of `POST /sessions`. Unknown fields are refused so a misspelt
/// optional field (`coupon`, `ttl`) is an error, not silently ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenSession {
    pub buyer_id: String,
    pub currency: String,
    pub items: Vec<Item>,
    #[serde(default)]
    pub coupon_code: Option<String>,
    pub shipping_address: ShippingAddress,
    #[serde(default)]
    pub ttl_seconds: Option<i64>,
}

/// One line: a SKU and how many. Stored and emitted in this form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub sku: String,
    pub quantity: i64,
}

/// A validated session, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// Trimmed.
    pub buyer_id: String,
    pub currency: String,
    pub items: Vec<Item>,
    /// Canonical (upper-case); `None` when absent or blank.
    pub coupon_code: Option<String>,
    /// Trimmed by the shared address rule.
    pub shipping_address: ShippingAddress,
    /// The expiry timer's delay.
    pub ttl_ms: u64,
}

impl OpenSession {
    /// Checks every rule, in the order orders checks them, then the address
    /// and the time to live. The first broken rule is the refusal (422).
    pub fn validate(self) -> Result<NewSession, Invalid> {
        let buyer_id = self.buyer_id.trim();
        if buyer_id.is_empty() || buyer_id.len() > MAX_BUYER_ID_LEN {
            return Err(Invalid::new(
                "invalid_buyer",
                format!("buyer_id must be 1-{MAX_BUYER_ID_LEN} characters"),
            ));
        }
        check_currency(&self.currency)?;
        if self.items.is_empty() {
            return Err(Invalid::new(
                "no_items",
                "a checkout needs at least one item",
            ));
        }
        if self.items.len() > MAX_LINES {
            return Err(Invalid::new(
                "too_many_items",
                format!("a checkout has at most {MAX_LINES} lines"),
            ));
        }
        let coupon_code = match self.coupon_code.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(
                CouponCode::parse(raw)
                    .ok_or_else(|| {
                        Invalid::new(
                            "invalid_coupon_code",
                            "coupon_code must be 3-32 letters, digits, '_' or '-'",
                        )
                    })?
                    .into_string(),
            ),
        };
        for (n, item) in self.items.iter().enumerate() {
            check_sku(&item.sku)
                .map_err(|e| Invalid::new(e.code, format!("items[{n}]: {}", e.message)))?;
            if !(1..=MAX_QUANTITY).contains(&item.quantity) {
                return Err(Invalid::new(
                    "invalid_quantity",
                    format!(
                        "quantity of {} must be between 1 and {MAX_QUANTITY}",
                        item.sku
                    ),
                ));
            }
        }
        let shipping_address = self.shipping_address.validated()?;
        let ttl_seconds = self.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
        if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl_seconds) {
            return Err(Invalid::new(
                "invalid_ttl",
                format!(
                    "ttl_seconds must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}, got {ttl_seconds}"
                ),
            ));
        }
        Ok(NewSession {
            buyer_id: buyer_id.to_owned(),
            currency: self.currency,
            items: self.items,
            coupon_code,
            shipping_address,
            // In range just above, so positive and small.
            ttl_ms: ttl_seconds.unsigned_abs() * 1_000,
        })
    }
}

/// When a session opened at `now` with `ttl_ms` expires.
pub fn expires_at(now: Instant, ttl_ms: u64) -> Instant {
    let ttl = i64::try_from(ttl_ms).unwrap_or(i64::MAX);
    Instant::from_millis(now.millis().saturating_add(ttl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn body() -> Value {
        json!({
            "buyer_id": " buyer-1 ",
            "currency": "EUR",
            "items": [{"sku": "TEE", "quantity": 2}, {"sku": "MUG-1", "quantity": 1}],
            "coupon_code": "save10",
            "shipping_address": {
                "name": "Ada Lovelace",
                "line1": "12 St James's Square",
                "city": "London",
                "postal_code": "SW1Y 4JH",
                "country": "GB"
            }
        })
    }

    fn validate(body: Value) -> Result<NewSession, Invalid> {
        serde_json::from_value::<OpenSession>(body)
            .expect("well-formed body")
            .validate()
    }

    fn refused(change: impl FnOnce(&mut Value)) -> &'static str {
        let mut b = body();
        change(&mut b);
        validate(b).expect_err("refused").code
    }

    #[test]
    fn a_valid_body_is_trimmed_canonicalised_and_gets_the_default_ttl() {
        let s = validate(body()).unwrap();
        assert_eq!(s.buyer_id, "buyer-1");
        assert_eq!(s.coupon_code.as_deref(), Some("SAVE10"));
        assert_eq!(s.items.len(), 2);
        assert_eq!(s.ttl_ms, 1_800_000);
        assert_eq!(s.shipping_address.country, "GB");
    }

    #[test]
    fn a_blank_or_absent_coupon_is_none() {
        let mut b = body();
        b["coupon_code"] = json!("  ");
        assert_eq!(validate(b).unwrap().coupon_code, None);
        let mut b = body();
        b.as_object_mut().unwrap().remove("coupon_code");
        assert_eq!(validate(b).unwrap().coupon_code, None);
        let mut b = body();
        b["coupon_code"] = Value::Null;
        assert_eq!(validate(b).unwrap().coupon_code, None);
    }

    #[test]
    fn each_broken_rule_has_its_code() {
        assert_eq!(refused(|b| b["buyer_id"] = json!("  ")), "invalid_buyer");
        assert_eq!(
            refused(|b| b["buyer_id"] = json!("b".repeat(65))),
            "invalid_buyer"
        );
        assert_eq!(
            refused(|b| b["currency"] = json!("eur")),
            "invalid_currency"
        );
        assert_eq!(refused(|b| b["items"] = json!([])), "no_items");
        let many: Vec<Value> = (0..101)
            .map(|_| json!({"sku": "A", "quantity": 1}))
            .collect();
        assert_eq!(refused(|b| b["items"] = json!(many)), "too_many_items");
        assert_eq!(
            refused(|b| b["coupon_code"] = json!("no spaces")),
            "invalid_coupon_code"
        );
        assert_eq!(
            refused(|b| b["items"][1]["sku"] = json!("a/b")),
            "invalid_sku"
        );
        assert_eq!(
            refused(|b| b["items"][0]["quantity"] = json!(0)),
            "invalid_quantity"
        );
        assert_eq!(
            refused(|b| b["items"][0]["quantity"] = json!(1_001)),
            "invalid_quantity"
        );
        assert_eq!(
            refused(|b| b["shipping_address"]["country"] = json!("XX")),
            "invalid_shipping_address"
        );
        assert_eq!(refused(|b| b["ttl_seconds"] = json!(0)), "invalid_ttl");
        assert_eq!(refused(|b| b["ttl_seconds"] = json!(86_401)), "invalid_ttl");
    }

    #[test]
    fn the_sku_refusal_names_the_line() {
        let mut b = body();
        b["items"][1]["sku"] = json!("");
        assert!(validate(b).unwrap_err().message.starts_with("items[1]: "));
    }

    #[test]
    fn the_ttl_may_be_chosen_within_its_bounds() {
        for (seconds, ms) in [(1, 1_000), (86_400, 86_400_000)] {
            let mut b = body();
            b["ttl_seconds"] = json!(seconds);
            assert_eq!(validate(b).unwrap().ttl_ms, ms);
        }
    }

    #[test]
    fn missing_or_unknown_fields_do_not_parse() {
        for field in ["buyer_id", "currency", "items", "shipping_address"] {
            let mut b = body();
            b.as_object_mut().unwrap().remove(field);
            assert!(serde_json::from_value::<OpenSession>(b).is_err(), "{field}");
        }
        let mut b = body();
        b["coupon"] = json!("SAVE10");
        assert!(serde_json::from_value::<OpenSession>(b).is_err());
        let mut b = body();
        b["items"][0]["unit_price_minor"] = json!(1);
        assert!(serde_json::from_value::<OpenSession>(b).is_err());
    }

    #[test]
    fn a_session_expires_its_ttl_after_it_opened() {
        let now = Instant::parse("2026-01-31T23:59:00.000Z").unwrap();
        assert_eq!(
            expires_at(now, 1_800_000).to_string(),
            "2026-02-01T00:29:00.000Z"
        );
    }
}
