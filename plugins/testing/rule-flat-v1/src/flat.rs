//! The rule `flat`, shared by `rule-flat-v1` and `rule-flat-v2`: each crate sets
//! `FACTOR`, and its package version is the rule's version.
use super::FACTOR;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

wit_bindgen::generate!({
    path: "../../../wit/coupon-rule.wit",
    world: "coupon-rule",
});

use mercato::plugin::rule_types::{Adjustment, Cart};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    percent: u32,
}

rule_kit::rule! {
    name: "flat",
    description: format!("{FACTOR} × the configured percentage off the subtotal."),
    evaluate: evaluate,
}

/// Like a rule written before `validate-config`, `flat` trusts its config: one
/// it cannot read panics (a trap, which the host's dry run at coupon creation
/// catches), while a percentage over 100 is declined (which a dry run lets
/// through: a decline is no verdict on the config).
fn evaluate(cart: Cart, config: String) -> Result<Adjustment, String> {
    let Config { percent } = serde_json::from_str(&config).expect("config is {\"percent\": N}");
    if percent > 100 {
        return Err("invalid config: percent must be 0-100".to_owned());
    }
    let percent = FACTOR * percent;
    let discount = (Decimal::from(cart.subtotal) * Decimal::from(percent) / Decimal::ONE_HUNDRED)
        .floor()
        .to_i64()
        .ok_or("the subtotal is too large")?
        .min(cart.subtotal);
    Ok(Adjustment {
        discount,
        lines: Vec::new(),
        reason: format!("flat v{}: {percent}% off", env!("CARGO_PKG_VERSION_MAJOR")),
    })
}
