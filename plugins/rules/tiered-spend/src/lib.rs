//! Example coupon rule `tiered-spend`: a percentage off the whole order that
//! grows with its subtotal. Config:
//! `{"tiers":[{"min_subtotal":10000,"percent":5},{"min_subtotal":20000,"percent":10}]}`.
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
use mercato::plugin::rule_types::{Adjustment, Cart, RuleManifest};

struct TieredSpend;

impl Guest for TieredSpend {
    fn describe() -> RuleManifest {
        RuleManifest {
            name: "tiered-spend".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "A percentage off the whole order, growing with its subtotal.".to_owned(),
        }
    }

    fn evaluate(cart: Cart, config: String) -> Result<Adjustment, String> {
        let discount = pricing::price(cart.subtotal, &cart.currency, &config)?;
        Ok(Adjustment {
            discount: discount.amount,
            lines: Vec::new(),
            reason: discount.reason,
        })
    }
}

impl exports::mercato::plugin::rule_config::Guest for TieredSpend {
    fn validate_config(config: String) -> Result<(), String> {
        pricing::validate_config(&config)
    }
}

// Natively (unit tests) the exported symbols cannot be linked into the cdylib:
// their names are not valid in a linker version script.
#[cfg(target_arch = "wasm32")]
export!(TieredSpend);
