//! Rule test component `hostile-rule`: misbehaves as its coupon's config says,
//! `{"mode": "loop" | "alloc" | "panic" | "big-output" | "overdiscount" | "decline"}`;
//! any other config grants 1 minor unit ("one off"). Tests prove the host
//! contains each breach and the next evaluation still works.
//!
//! Its `validate-config` accepts every config, so coupons with each mode can
//! be created and misbehave at checkout, unless the config also says
//! `{"validate": "loop" | "alloc" | "panic" | "big-output" | "refuse"}`: then
//! the check itself misbehaves (or refuses), and the coupon is never created.
wit_bindgen::generate!({
    path: "../../../wit/coupon-rule.wit",
    world: "coupon-rule-with-config",
});

use mercato::plugin::rule_types::{Adjustment, Cart};
use std::hint::black_box;

rule_kit::rule! {
    name: "hostile-rule",
    description: "Misbehaves on request, for the host's rule tests.",
    evaluate: evaluate,
    validate_config: validate_config,
}

fn validate_config(config: String) -> Result<(), String> {
    let config: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
    match config["validate"].as_str().unwrap_or_default() {
        "loop" => spin(),
        "alloc" => match touch_a_gibibyte() {
            0 => Ok(()),
            _ => Err("allocated".to_owned()),
        },
        "panic" => panic!("hostile rule panics while validating"),
        "big-output" => Err("x".repeat(1 << 20)),
        "refuse" => Err("hostile rule refuses this config".to_owned()),
        _ => Ok(()),
    }
}

fn evaluate(cart: Cart, config: String) -> Result<Adjustment, String> {
    let config: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
    match config["mode"].as_str().unwrap_or_default() {
        "loop" => spin(),
        "alloc" => Ok(adjustment(touch_a_gibibyte(), "allocated")),
        "panic" => panic!("hostile rule panics on purpose"),
        "big-output" => Ok(adjustment(1, &"x".repeat(1 << 20))),
        "overdiscount" => Ok(adjustment(cart.subtotal.saturating_add(1), "too much")),
        "decline" => Err("hostile rule declines".to_owned()),
        _ => Ok(adjustment(1, "one off")),
    }
}

/// Never returns: the counter goes through `black_box`, so the optimizer can
/// neither prove the loop endless nor remove it.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Allocates 1 GiB and writes every byte; returns 0 if it ever gets that far.
fn touch_a_gibibyte() -> i64 {
    let mut v: Vec<u8> = Vec::with_capacity(1 << 30);
    v.resize(1 << 30, 1);
    i64::from(black_box(&v)[v.len() - 1]) - 1
}

fn adjustment(discount: i64, reason: &str) -> Adjustment {
    Adjustment {
        discount,
        lines: Vec::new(),
        reason: reason.to_owned(),
    }
}
