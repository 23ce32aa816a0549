//! Rule test component `flat` 1.0.0: config `{"percent": N}` (0-100), discount
//! N % of the subtotal rounded down. `rule-flat-v2` builds the same source with
//! twice the percentage, so the rule tests can tell which version priced a cart.
//! It exports no `validate-config` (world `coupon-rule`): the host checks its
//! coupons' configs by a dry run, and the rule tests prove that fallback.
mod flat;

/// How many times the configured percentage this version grants.
const FACTOR: u32 = 1;
