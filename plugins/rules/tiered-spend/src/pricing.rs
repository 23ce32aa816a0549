//! The tiered-spend rule as a pure function of the cart's subtotal and the
//! coupon's config: no bindings, no I/O, so it is unit-tested natively
//! (`cargo test -p tiered-spend`).
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Deserialize;
use serde_json::Value;
use std::str::FromStr;

/// An order-level discount and the reason shown to the buyer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discount {
    /// Minor units of the cart's currency, between 1 and the subtotal.
    pub amount: i64,
    pub reason: String,
}

/// The coupon's config as written:
/// `{"tiers":[{"min_subtotal":10000,"percent":5},{"min_subtotal":20000,"percent":"7.5"}]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    tiers: Vec<RawTier>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    min_subtotal: i64,
    /// An integer or a decimal string: JSON fractions are floats, and money
    /// never goes through a float.
    percent: Value,
}

struct Tier {
    min_subtotal: i64,
    percent: Decimal,
}

/// Prices a cart with `subtotal` minor units of `currency`: the highest tier
/// whose `min_subtotal` the subtotal reaches applies, rounded down to whole
/// minor units. `Err` declines the coupon (or reports a bad config).
pub fn price(subtotal: i64, currency: &str, config: &str) -> Result<Discount, String> {
    let tiers = parse_config(config)?;
    let Some(tier) = tiers.iter().rev().find(|t| t.min_subtotal <= subtotal) else {
        return Err(format!(
            "subtotal {} is below the lowest tier {}",
            money(subtotal, currency),
            money(tiers[0].min_subtotal, currency)
        ));
    };
    let amount = Decimal::from(subtotal)
        .checked_mul(tier.percent)
        .map(|d| (d / Decimal::ONE_HUNDRED).floor())
        .and_then(|d| d.to_i64())
        .ok_or_else(|| format!("subtotal {subtotal} is too large to price"))?;
    let percent = tier.percent.normalize();
    if amount == 0 {
        return Err(format!(
            "{percent}% of {} rounds down to nothing",
            money(subtotal, currency)
        ));
    }
    Ok(Discount {
        amount,
        reason: format!(
            "{percent}% off orders of {} or more",
            money(tier.min_subtotal, currency)
        ),
    })
}

/// Checks a coupon's config when the coupon is created (the rule's
/// `validate-config`): the same checks as pricing a cart makes.
pub fn validate_config(config: &str) -> Result<(), String> {
    parse_config(config).map(|_| ())
}

/// Validates the config; the tiers come back sorted by `min_subtotal`.
fn parse_config(config: &str) -> Result<Vec<Tier>, String> {
    let Config { tiers } =
        serde_json::from_str(config).map_err(|e| format!("invalid config: {e}"))?;
    if tiers.is_empty() {
        return Err(
            "invalid config: `tiers` is empty; give at least one {\"min_subtotal\", \"percent\"}"
                .to_owned(),
        );
    }
    let mut parsed = tiers
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            if raw.min_subtotal < 0 {
                return Err(format!(
                    "invalid config: tiers[{i}].min_subtotal must be 0 or more"
                ));
            }
            let percent = parse_percent(&raw.percent).ok_or_else(|| {
                format!(
                    "invalid config: tiers[{i}].percent must be an integer or a decimal \
                     string such as \"7.5\", more than 0 and at most 100 (got {})",
                    raw.percent
                )
            })?;
            Ok(Tier {
                min_subtotal: raw.min_subtotal,
                percent,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    parsed.sort_by_key(|t| t.min_subtotal);
    if let Some(pair) = parsed
        .windows(2)
        .find(|w| w[0].min_subtotal == w[1].min_subtotal)
    {
        return Err(format!(
            "invalid config: two tiers have min_subtotal {}",
            pair[0].min_subtotal
        ));
    }
    Ok(parsed)
}

fn parse_percent(value: &Value) -> Option<Decimal> {
    let percent = match value {
        Value::Number(n) => Decimal::from(n.as_i64()?),
        Value::String(s) => Decimal::from_str(s.trim()).ok()?,
        _ => return None,
    };
    (percent > Decimal::ZERO && percent <= Decimal::ONE_HUNDRED).then_some(percent)
}

/// `20000`, `EUR` → `200.00 EUR` (two decimals, whatever the currency).
fn money(minor: i64, currency: &str) -> String {
    format!("{} {currency}", Decimal::new(minor, 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIERS: &str = r#"{"tiers":[{"min_subtotal":10000,"percent":5},{"min_subtotal":20000,"percent":10},{"min_subtotal":50000,"percent":15}]}"#;

    fn discount(subtotal: i64, config: &str) -> i64 {
        price(subtotal, "EUR", config).unwrap().amount
    }

    #[test]
    fn a_config_is_checked_without_a_cart() {
        assert_eq!(validate_config(TIERS), Ok(()));
        for (config, word) in [
            (r#"{"tiers":[]}"#, "`tiers` is empty"),
            (r#"{"tier":[]}"#, "unknown field `tier`"),
            (r#"{"tiers":[{"min_subtotal":100,"percent":0}]}"#, "percent"),
            ("[]", "invalid config"),
        ] {
            let message = validate_config(config).unwrap_err();
            assert!(message.starts_with("invalid config: "), "{message}");
            assert!(message.contains(word), "{config}: {message}");
        }
    }

    #[test]
    fn the_highest_tier_reached_applies_from_its_boundary_on() {
        assert_eq!(discount(10_000, TIERS), 500);
        assert_eq!(discount(19_999, TIERS), 999);
        assert_eq!(discount(20_000, TIERS), 2_000);
        assert_eq!(discount(49_999, TIERS), 4_999);
        assert_eq!(discount(50_000, TIERS), 7_500);
        assert_eq!(discount(1_000_000, TIERS), 150_000);
    }

    #[test]
    fn the_reason_names_the_tier() {
        let d = price(25_000, "EUR", TIERS).unwrap();
        assert_eq!(d.reason, "10% off orders of 200.00 EUR or more");
        let d = price(
            25_000,
            "USD",
            r#"{"tiers":[{"min_subtotal":5,"percent":"7.50"}]}"#,
        );
        assert_eq!(d.unwrap().reason, "7.5% off orders of 0.05 USD or more");
    }

    #[test]
    fn a_subtotal_below_the_lowest_tier_is_declined() {
        assert_eq!(
            price(5_000, "EUR", TIERS),
            Err("subtotal 50.00 EUR is below the lowest tier 100.00 EUR".to_owned())
        );
        assert_eq!(
            price(9_999, "EUR", TIERS),
            Err("subtotal 99.99 EUR is below the lowest tier 100.00 EUR".to_owned())
        );
    }

    #[test]
    fn an_empty_cart_is_declined() {
        assert!(
            price(0, "EUR", TIERS)
                .unwrap_err()
                .contains("below the lowest tier")
        );
        let from_zero = r#"{"tiers":[{"min_subtotal":0,"percent":5}]}"#;
        assert_eq!(
            price(0, "EUR", from_zero),
            Err("5% of 0.00 EUR rounds down to nothing".to_owned())
        );
    }

    #[test]
    fn fractions_of_a_minor_unit_are_rounded_down() {
        // 12345 × 7.5 % = 925.875
        let config = r#"{"tiers":[{"min_subtotal":0,"percent":"7.5"}]}"#;
        assert_eq!(discount(12_345, config), 925);
        // 19 × 5 % = 0.95: nothing left to grant.
        let config = r#"{"tiers":[{"min_subtotal":0,"percent":5}]}"#;
        assert!(price(19, "EUR", config).is_err());
        assert_eq!(discount(20, config), 1);
        // 3333 × 33.333 % = 1110.98889
        let config = r#"{"tiers":[{"min_subtotal":0,"percent":"33.333"}]}"#;
        assert_eq!(discount(3_333, config), 1_110);
    }

    #[test]
    fn tiers_may_be_listed_in_any_order() {
        let shuffled = r#"{"tiers":[{"min_subtotal":50000,"percent":15},{"min_subtotal":10000,"percent":5},{"min_subtotal":20000,"percent":10}]}"#;
        for subtotal in [10_000, 19_999, 20_000, 50_000, 77_777] {
            assert_eq!(discount(subtotal, shuffled), discount(subtotal, TIERS));
        }
    }

    #[test]
    fn one_hundred_percent_of_the_largest_subtotal_is_the_subtotal() {
        let config = r#"{"tiers":[{"min_subtotal":0,"percent":100}]}"#;
        assert_eq!(discount(i64::MAX, config), i64::MAX);
    }

    #[test]
    fn a_bad_config_is_refused_with_what_is_wrong() {
        let refused = |config: &str, needle: &str| {
            let err = price(30_000, "EUR", config).unwrap_err();
            assert!(
                err.starts_with("invalid config: ") && err.contains(needle),
                "{config}: {err}"
            );
        };
        refused("", "EOF");
        refused("not json", "expected");
        refused("{}", "missing field `tiers`");
        refused(r#"{"tiers":[]}"#, "`tiers` is empty");
        refused(
            r#"{"tiers":[{"min_subtotal":0}]}"#,
            "missing field `percent`",
        );
        refused(
            r#"{"tiers":[{"min_subtotal":0,"percent":5,"max":9}]}"#,
            "unknown field `max`",
        );
        refused(
            r#"{"tiers":[{"min_subtotal":0,"percent":5}],"extra":1}"#,
            "unknown field `extra`",
        );
        refused(
            r#"{"tiers":[{"min_subtotal":0,"percent":0}]}"#,
            "tiers[0].percent",
        );
        refused(
            r#"{"tiers":[{"min_subtotal":0,"percent":-5}]}"#,
            "tiers[0].percent",
        );
        refused(
            r#"{"tiers":[{"min_subtotal":0,"percent":101}]}"#,
            "tiers[0].percent",
        );
        refused(
            r#"{"tiers":[{"min_subtotal":0,"percent":"100.01"}]}"#,
            "tiers[0].percent",
        );
        refused(
            r#"{"tiers":[{"min_subtotal":0,"percent":7.5}]}"#,
            "decimal string",
        );
        refused(
            r#"{"tiers":[{"min_subtotal":0,"percent":"abc"}]}"#,
            "got \"abc\"",
        );
        refused(
            r#"{"tiers":[{"min_subtotal":0,"percent":null}]}"#,
            "tiers[0].percent",
        );
        refused(
            r#"{"tiers":[{"min_subtotal":0,"percent":5},{"min_subtotal":-1,"percent":5}]}"#,
            "tiers[1].min_subtotal",
        );
        refused(
            r#"{"tiers":[{"min_subtotal":"100","percent":5}]}"#,
            "invalid type",
        );
        refused(
            r#"{"tiers":[{"min_subtotal":100,"percent":5},{"min_subtotal":100,"percent":9}]}"#,
            "two tiers have min_subtotal 100",
        );
    }

    #[test]
    fn one_hundred_percent_is_allowed() {
        let config = r#"{"tiers":[{"min_subtotal":0,"percent":"100"}]}"#;
        assert_eq!(discount(12_345, config), 12_345);
    }
}
