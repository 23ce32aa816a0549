//! The buy-x-get-y rule as a pure function of the cart's lines and the
//! coupon's config: no bindings, no I/O, so it is unit-tested natively
//! (`cargo test -p buy-x-get-y`).
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Deserialize;

/// One line of the cart, as the rule sees it.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    pub sku: &'a str,
    pub quantity: u32,
    /// Minor units of the cart's currency.
    pub unit_price: i64,
}

/// The discount, split per SKU, and the reason shown to the buyer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discount {
    /// The sum of `lines`' amounts.
    pub amount: i64,
    /// (sku, amount) for each SKU with a free unit, cheapest first.
    pub lines: Vec<(String, i64)>,
    pub reason: String,
}

/// The coupon's config as written: `{"buy":2,"get":1,"skus":["TEE","MUG"]}`;
/// without `skus` every line is eligible.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    buy: u32,
    get: u32,
    skus: Option<Vec<String>>,
}

/// A SKU's share of the free units.
struct Free<'a> {
    sku: &'a str,
    units: u64,
    amount: Decimal,
}

/// Prices `lines`: of every `buy + get` eligible units, `get` are free, and
/// the free ones are the cheapest eligible units (equal prices: by SKU).
/// `Err` declines the coupon (or reports a bad config).
pub fn price(lines: &[Line<'_>], config: &str) -> Result<Discount, String> {
    let Config { buy, get, skus } = parse_config(config)?;
    let mut eligible: Vec<&Line<'_>> = lines
        .iter()
        .filter(|line| {
            skus.as_ref()
                .is_none_or(|skus| skus.iter().any(|s| s == line.sku))
        })
        .collect();
    if let Some(line) = eligible.iter().find(|line| line.unit_price < 0) {
        return Err(format!(
            "line {} has a negative unit price {}",
            line.sku, line.unit_price
        ));
    }
    let units: u64 = eligible.iter().map(|line| u64::from(line.quantity)).sum();
    let group = u64::from(buy) + u64::from(get);
    let mut left = units / group * u64::from(get);
    if left == 0 {
        let which = match &skus {
            Some(skus) => format!(" ({})", skus.join(", ")),
            None => String::new(),
        };
        return Err(format!(
            "buy {buy}, get {get} free needs {group} eligible units{which}; the cart has {units}"
        ));
    }

    eligible.sort_by(|a, b| a.unit_price.cmp(&b.unit_price).then(a.sku.cmp(b.sku)));
    let mut free: Vec<Free<'_>> = Vec::new();
    for line in eligible {
        if left == 0 {
            break;
        }
        let take = left.min(u64::from(line.quantity));
        left -= take;
        let amount = Decimal::from(take)
            .checked_mul(Decimal::from(line.unit_price))
            .ok_or_else(too_large)?;
        match free.iter_mut().find(|f| f.sku == line.sku) {
            Some(f) => {
                f.units += take;
                f.amount = f.amount.checked_add(amount).ok_or_else(too_large)?;
            }
            None => free.push(Free {
                sku: line.sku,
                units: take,
                amount,
            }),
        }
    }

    let mut total = Decimal::ZERO;
    let mut discount_lines = Vec::with_capacity(free.len());
    for f in &free {
        total = total.checked_add(f.amount).ok_or_else(too_large)?;
        discount_lines.push((f.sku.to_owned(), f.amount.to_i64().ok_or_else(too_large)?));
    }
    let what = free_units_text(&free);
    Ok(Discount {
        amount: total.to_i64().ok_or_else(too_large)?,
        lines: discount_lines,
        reason: format!("Buy {buy}, get {get} free: {what} free"),
    })
}

/// `1 × MUG, 2 × TEE`: the first few SKUs, so the reason stays short (the
/// host refuses reasons over 500 bytes).
fn free_units_text(free: &[Free<'_>]) -> String {
    const LISTED: usize = 3;
    let mut text = free
        .iter()
        .take(LISTED)
        .map(|f| format!("{} × {}", f.units, f.sku))
        .collect::<Vec<_>>()
        .join(", ");
    let more: u64 = free.iter().skip(LISTED).map(|f| f.units).sum();
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    if text.len() > 200 {
        let units: u64 = free.iter().map(|f| f.units).sum();
        text = format!("{units} unit{}", if units == 1 { "" } else { "s" });
    }
    text
}

fn too_large() -> String {
    "the free units are worth too much to price".to_owned()
}

/// Checks a coupon's config when the coupon is created (the rule's
/// `validate-config`): the same checks as pricing a cart makes.
pub fn validate_config(config: &str) -> Result<(), String> {
    parse_config(config).map(|_| ())
}

fn parse_config(config: &str) -> Result<Config, String> {
    let config: Config =
        serde_json::from_str(config).map_err(|e| format!("invalid config: {e}"))?;
    if config.buy == 0 {
        return Err("invalid config: buy must be at least 1".to_owned());
    }
    if config.get == 0 {
        return Err("invalid config: get must be at least 1".to_owned());
    }
    if config.skus.as_ref().is_some_and(Vec::is_empty) {
        return Err(
            "invalid config: `skus` is empty; omit it to make every line eligible".to_owned(),
        );
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEE_MUG: &str = r#"{"buy":2,"get":1,"skus":["TEE","MUG"]}"#;

    fn line(sku: &str, quantity: u32, unit_price: i64) -> Line<'_> {
        Line {
            sku,
            quantity,
            unit_price,
        }
    }

    fn free_lines(d: &Discount) -> Vec<(&str, i64)> {
        d.lines.iter().map(|(s, a)| (s.as_str(), *a)).collect()
    }

    #[test]
    fn a_config_is_checked_without_a_cart() {
        assert_eq!(validate_config(TEE_MUG), Ok(()));
        assert_eq!(validate_config(r#"{"buy":1,"get":1}"#), Ok(()));
        for (config, word) in [
            (r#"{"buy":0,"get":1}"#, "buy must be at least 1"),
            (r#"{"buy":2,"get":0}"#, "get must be at least 1"),
            (r#"{"buy":2,"get":1,"skus":[]}"#, "`skus` is empty"),
            (r#"{"buy":2}"#, "missing field `get`"),
            (r#"{"buy":2,"get":1,"sku":["TEE"]}"#, "unknown field `sku`"),
        ] {
            let message = validate_config(config).unwrap_err();
            assert!(message.starts_with("invalid config: "), "{message}");
            assert!(message.contains(word), "{config}: {message}");
        }
    }

    #[test]
    fn the_cheapest_eligible_unit_is_free() {
        let cart = [line("TEE", 2, 2_500), line("MUG", 1, 1_200)];
        let d = price(&cart, TEE_MUG).unwrap();
        assert_eq!(d.amount, 1_200);
        assert_eq!(free_lines(&d), [("MUG", 1_200)]);
        assert_eq!(d.reason, "Buy 2, get 1 free: 1 × MUG free");
    }

    #[test]
    fn free_units_span_lines_cheapest_first_and_add_up_to_the_discount() {
        // 7 units → 2 free: the MUG, then one TEE.
        let cart = [line("TEE", 6, 2_500), line("MUG", 1, 1_200)];
        let d = price(&cart, TEE_MUG).unwrap();
        assert_eq!(free_lines(&d), [("MUG", 1_200), ("TEE", 2_500)]);
        assert_eq!(d.amount, 3_700);
        assert_eq!(d.amount, d.lines.iter().map(|(_, a)| a).sum::<i64>());
        assert_eq!(d.reason, "Buy 2, get 1 free: 1 × MUG, 1 × TEE free");
    }

    #[test]
    fn several_free_units_of_one_line_are_counted_together() {
        let cart = [line("TEE", 9, 2_500)];
        let d = price(&cart, TEE_MUG).unwrap();
        assert_eq!(free_lines(&d), [("TEE", 7_500)]);
        assert_eq!(d.reason, "Buy 2, get 1 free: 3 × TEE free");
    }

    #[test]
    fn only_the_listed_skus_are_eligible() {
        // The SOCK is cheapest but not listed, and does not count towards the 3.
        let cart = [line("SOCK", 5, 300), line("TEE", 2, 2_500)];
        assert_eq!(
            price(&cart, TEE_MUG),
            Err("buy 2, get 1 free needs 3 eligible units (TEE, MUG); the cart has 2".to_owned())
        );
        let cart = [line("SOCK", 5, 300), line("TEE", 3, 2_500)];
        assert_eq!(
            free_lines(&price(&cart, TEE_MUG).unwrap()),
            [("TEE", 2_500)]
        );
    }

    #[test]
    fn without_skus_every_line_is_eligible() {
        let cart = [line("SOCK", 1, 300), line("TEE", 2, 2_500)];
        let d = price(&cart, r#"{"buy":2,"get":1}"#).unwrap();
        assert_eq!(free_lines(&d), [("SOCK", 300)]);
    }

    #[test]
    fn equal_prices_are_broken_by_sku() {
        let cart = [
            line("ZED", 1, 1_000),
            line("ABC", 1, 1_000),
            line("MID", 1, 1_000),
        ];
        let d = price(&cart, r#"{"buy":2,"get":1}"#).unwrap();
        assert_eq!(free_lines(&d), [("ABC", 1_000)]);
    }

    #[test]
    fn one_sku_on_two_lines_gets_one_entry() {
        let cart = [
            line("TEE", 1, 2_000),
            line("MUG", 2, 5_000),
            line("TEE", 3, 2_100),
        ];
        // 6 units → 2 free: TEE at 2000 and TEE at 2100.
        let d = price(&cart, TEE_MUG).unwrap();
        assert_eq!(free_lines(&d), [("TEE", 4_100)]);
        assert_eq!(d.reason, "Buy 2, get 1 free: 2 × TEE free");
    }

    #[test]
    fn the_reason_lists_three_skus_at_most_and_stays_short() {
        let cart = [
            line("A", 1, 100),
            line("B", 2, 200),
            line("C", 1, 300),
            line("D", 2, 400),
            line("E", 12, 500),
        ];
        let d = price(&cart, r#"{"buy":1,"get":1}"#).unwrap();
        assert_eq!(d.lines.len(), 5);
        assert_eq!(
            d.reason,
            "Buy 1, get 1 free: 1 × A, 2 × B, 1 × C and 5 more free"
        );
        let long_sku = "X".repeat(300);
        let d = price(&[line(&long_sku, 2, 100)], r#"{"buy":1,"get":1}"#).unwrap();
        assert_eq!(d.reason, "Buy 1, get 1 free: 1 unit free");
    }

    #[test]
    fn get_may_be_more_than_one() {
        let cart = [line("A", 1, 100), line("B", 1, 200), line("C", 1, 300)];
        let d = price(&cart, r#"{"buy":1,"get":2}"#).unwrap();
        assert_eq!(d.amount, 300);
        assert_eq!(free_lines(&d), [("A", 100), ("B", 200)]);
    }

    #[test]
    fn free_units_at_price_zero_give_a_zero_discount() {
        let cart = [line("GIFT", 1, 0), line("TEE", 2, 2_500)];
        let d = price(&cart, r#"{"buy":2,"get":1}"#).unwrap();
        assert_eq!((d.amount, free_lines(&d)), (0, vec![("GIFT", 0)]));
    }

    #[test]
    fn too_few_units_or_an_empty_cart_are_declined() {
        assert_eq!(
            price(&[], r#"{"buy":2,"get":1}"#),
            Err("buy 2, get 1 free needs 3 eligible units; the cart has 0".to_owned())
        );
        let cart = [line("TEE", 2, 2_500)];
        assert!(
            price(&cart, TEE_MUG)
                .unwrap_err()
                .contains("the cart has 2")
        );
    }

    #[test]
    fn a_negative_unit_price_is_declined() {
        let cart = [line("TEE", 3, -1)];
        assert!(
            price(&cart, TEE_MUG)
                .unwrap_err()
                .contains("negative unit price")
        );
    }

    #[test]
    fn huge_quantities_and_prices_do_not_overflow_silently() {
        let cart = [
            line("TEE", u32::MAX, i64::MAX),
            line("MUG", u32::MAX, i64::MAX),
        ];
        assert_eq!(price(&cart, TEE_MUG), Err(too_large()));
    }

    #[test]
    fn a_bad_config_is_refused_with_what_is_wrong() {
        let refused = |config: &str, needle: &str| {
            let err = price(&[line("TEE", 3, 100)], config).unwrap_err();
            assert!(
                err.starts_with("invalid config: ") && err.contains(needle),
                "{config}: {err}"
            );
        };
        refused("", "EOF");
        refused("true", "invalid type");
        refused(r#"{"get":1}"#, "missing field `buy`");
        refused(r#"{"buy":2}"#, "missing field `get`");
        refused(r#"{"buy":0,"get":1}"#, "buy must be at least 1");
        refused(r#"{"buy":2,"get":0}"#, "get must be at least 1");
        refused(r#"{"buy":-1,"get":1}"#, "invalid value");
        refused(r#"{"buy":"2","get":1}"#, "invalid type");
        refused(r#"{"buy":2,"get":1,"skus":[]}"#, "`skus` is empty");
        refused(r#"{"buy":2,"get":1,"sku":["TEE"]}"#, "unknown field `sku`");
    }
}
