//! Rule test component `flat` 2.0.0: the source of `rule-flat-v1`, granting twice
//! the configured percentage (capped at the subtotal).
#[path = "../../rule-flat-v1/src/flat.rs"]
mod flat;

/// How many times the configured percentage this version grants.
const FACTOR: u32 = 2;
