//! Example coupon rule `buy-x-get-y`: of every `buy + get` eligible units in the
//! cart, the `get` cheapest are free. Config: `{"buy":2,"get":1,"skus":["TEE","MUG"]}`
//! (`skus` optional: without it every line is eligible).
//!
//! A partner copies this crate and `wit/coupon-rule.wit`, nothing else (see
//! `docs/coupon-rules.md`). The bindings glue lives here; the pricing is pure, in
//! `pricing.rs`, and unit-tested natively.
pub mod pricing;

// `coupon-rule-with-config`: `rule` plus `rule-config`, so a coupon with a
// config this rule cannot use is refused when it is created.
wit_bindgen::generate!({
    path: "../../../wit/coupon-rule.wit",
    world: "coupon-rule-with-config",
});

use exports::mercato::plugin::rule::Guest;
use mercato::plugin::rule_types::{Adjustment, Cart, LineDiscount, RuleManifest};

struct BuyXGetY;

impl Guest for BuyXGetY {
    fn describe() -> RuleManifest {
        RuleManifest {
            name: "buy-x-get-y".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Buy X eligible units, get the Y cheapest free.".to_owned(),
        }
    }

    fn evaluate(cart: Cart, config: String) -> Result<Adjustment, String> {
        let lines: Vec<pricing::Line<'_>> = cart
            .lines
            .iter()
            .map(|line| pricing::Line {
                sku: &line.sku,
                quantity: line.quantity,
                unit_price: line.unit_price,
            })
            .collect();
        let discount = pricing::price(&lines, &config)?;
        Ok(Adjustment {
            discount: discount.amount,
            lines: discount
                .lines
                .into_iter()
                .map(|(sku, amount)| LineDiscount { sku, amount })
                .collect(),
            reason: discount.reason,
        })
    }
}

impl exports::mercato::plugin::rule_config::Guest for BuyXGetY {
    fn validate_config(config: String) -> Result<(), String> {
        pricing::validate_config(&config)
    }
}

// Natively (unit tests) the exported symbols cannot be linked into the cdylib:
// their names are not valid in a linker version script.
#[cfg(target_arch = "wasm32")]
export!(BuyXGetY);
