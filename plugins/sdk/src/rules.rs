//! Coupon rules (`world coupon-rule`), run by the host in a sandbox of their
//! own under fuel, memory, size and time limits; a plugin gets back either the
//! rule's adjustment or a rejection that says which limit or answer failed.
use crate::bindings::mercato::plugin::rules;

pub use crate::bindings::mercato::plugin::rule_types::{Adjustment, Cart, CartLine, LineDiscount};
pub use crate::bindings::mercato::plugin::rules::{Evaluation, Rejection};

/// Prices `cart` with rule `rule` and the coupon's JSON `config`.
pub fn evaluate(rule: &str, cart: &Cart, config: &str) -> Result<Evaluation, Rejection> {
    rules::evaluate(rule, cart, config)
}

/// Checks that rule `rule` is deployed and accepts `config` for a coupon in
/// `currency` (its `validate-config`, or a dry run on a sample cart).
pub fn validate(rule: &str, config: &str, currency: &str) -> Result<(), Rejection> {
    rules::validate(rule, config, currency)
}
