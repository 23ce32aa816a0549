//! Pure checks on what goes into and comes out of a rule: sizes (counted as
//! the bytes of every string plus 8 per number, close to what crosses the
//! sandbox boundary) and the consistency of an adjustment with its cart.
use crate::bindings::{Adjustment, Cart};
use std::collections::BTreeMap;

/// Longest reason a rule may give, in bytes (it is shown to buyers).
pub const MAX_REASON_BYTES: usize = 500;

/// Size of a rule's input: the coupon config plus the cart.
pub fn input_size(cart: &Cart, config: &str) -> usize {
    config.len()
        + cart.currency.len()
        + cart.buyer_id.len()
        + 8
        + cart
            .lines
            .iter()
            .map(|l| l.sku.len() + 8 + 8)
            .sum::<usize>()
}

/// Size of a rule's answer: the adjustment or the decline message.
pub fn output_size(answer: &Result<Adjustment, String>) -> usize {
    match answer {
        Ok(a) => 8 + a.reason.len() + a.lines.iter().map(|l| l.sku.len() + 8).sum::<usize>(),
        Err(message) => message.len(),
    }
}

/// Checks that `adjustment` is a discount `cart` can take: between 0 and the
/// subtotal, with a reason, and per-line amounts (if any) on SKUs of the cart,
/// each within its line's total and together equal to the discount.
pub fn check_adjustment(cart: &Cart, adjustment: &Adjustment) -> Result<(), String> {
    if adjustment.discount < 0 {
        return Err(format!("discount {} is negative", adjustment.discount));
    }
    if adjustment.discount > cart.subtotal {
        return Err(format!(
            "discount {} exceeds the cart subtotal {}",
            adjustment.discount, cart.subtotal
        ));
    }
    let reason = adjustment.reason.trim();
    if reason.is_empty() || adjustment.reason.len() > MAX_REASON_BYTES {
        return Err(format!("reason must be 1-{MAX_REASON_BYTES} bytes of text"));
    }
    if adjustment.lines.is_empty() {
        return Ok(());
    }
    let mut line_totals: BTreeMap<&str, i128> = BTreeMap::new();
    for line in &cart.lines {
        *line_totals.entry(line.sku.as_str()).or_default() +=
            i128::from(line.quantity) * i128::from(line.unit_price);
    }
    let mut per_sku: BTreeMap<&str, i128> = BTreeMap::new();
    for line in &adjustment.lines {
        if line.amount < 0 {
            return Err(format!("line {} has a negative amount", line.sku));
        }
        if !line_totals.contains_key(line.sku.as_str()) {
            return Err(format!("line {} is not in the cart", line.sku));
        }
        *per_sku.entry(line.sku.as_str()).or_default() += i128::from(line.amount);
    }
    for (sku, amount) in &per_sku {
        if *amount > line_totals[sku] {
            return Err(format!(
                "line {sku} is discounted by {amount}, more than its total {}",
                line_totals[sku]
            ));
        }
    }
    let sum: i128 = per_sku.values().sum();
    if sum != i128::from(adjustment.discount) {
        return Err(format!(
            "line amounts add up to {sum}, not to the discount {}",
            adjustment.discount
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{CartLine, LineDiscount};

    fn cart() -> Cart {
        Cart {
            currency: "EUR".into(),
            buyer_id: "b1".into(),
            subtotal: 3_500,
            lines: vec![
                CartLine {
                    sku: "TEE".into(),
                    quantity: 1,
                    unit_price: 2_500,
                },
                CartLine {
                    sku: "MUG".into(),
                    quantity: 2,
                    unit_price: 500,
                },
            ],
        }
    }

    fn adjustment(discount: i64, lines: &[(&str, i64)]) -> Adjustment {
        Adjustment {
            discount,
            lines: lines
                .iter()
                .map(|(sku, amount)| LineDiscount {
                    sku: (*sku).into(),
                    amount: *amount,
                })
                .collect(),
            reason: "a reason".into(),
        }
    }

    #[test]
    fn a_discount_within_the_subtotal_with_matching_lines_passes() {
        assert_eq!(check_adjustment(&cart(), &adjustment(0, &[])), Ok(()));
        assert_eq!(check_adjustment(&cart(), &adjustment(3_500, &[])), Ok(()));
        assert_eq!(
            check_adjustment(&cart(), &adjustment(600, &[("MUG", 500), ("TEE", 100)])),
            Ok(())
        );
    }

    #[test]
    fn negative_or_excessive_discounts_are_refused() {
        assert!(check_adjustment(&cart(), &adjustment(-1, &[])).is_err());
        let err = check_adjustment(&cart(), &adjustment(3_501, &[])).unwrap_err();
        assert!(err.contains("exceeds the cart subtotal 3500"), "{err}");
    }

    #[test]
    fn lines_must_name_cart_skus_stay_within_their_totals_and_add_up() {
        let unknown = check_adjustment(&cart(), &adjustment(100, &[("HAT", 100)])).unwrap_err();
        assert!(unknown.contains("HAT is not in the cart"), "{unknown}");
        let over = check_adjustment(&cart(), &adjustment(1_001, &[("MUG", 1_001)])).unwrap_err();
        assert!(over.contains("more than its total 1000"), "{over}");
        let sum = check_adjustment(&cart(), &adjustment(600, &[("MUG", 500)])).unwrap_err();
        assert!(sum.contains("add up to 500"), "{sum}");
        assert!(check_adjustment(&cart(), &adjustment(0, &[("MUG", -1), ("TEE", 1)])).is_err());
    }

    #[test]
    fn an_empty_or_huge_reason_is_refused() {
        let mut a = adjustment(10, &[]);
        a.reason = "  ".into();
        assert!(check_adjustment(&cart(), &a).is_err());
        a.reason = "x".repeat(MAX_REASON_BYTES + 1);
        assert!(check_adjustment(&cart(), &a).is_err());
    }

    #[test]
    fn the_dry_run_cart_adds_up_in_the_coupons_currency() {
        let cart = crate::rules::sample_cart("USD");
        let lines: i64 = cart
            .lines
            .iter()
            .map(|l| i64::from(l.quantity) * l.unit_price)
            .sum();
        assert_eq!((cart.subtotal, lines), (12_500, 12_500));
        assert_eq!(cart.currency, "USD");
        // Almost all of a rule's input budget is left to the config.
        assert!(input_size(&cart, "") < 100);
    }

    #[test]
    fn sizes_count_strings_and_eight_bytes_per_number() {
        // config 2 + "EUR" 3 + "b1" 2 + subtotal 8 + (3+16) + (3+16)
        assert_eq!(input_size(&cart(), "{}"), 2 + 3 + 2 + 8 + 19 + 19);
        assert_eq!(
            output_size(&Ok(adjustment(600, &[("MUG", 500)]))),
            8 + 8 + 3 + 8
        );
        assert_eq!(output_size(&Err("no".into())), 2);
    }
}
