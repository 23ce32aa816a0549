//! The coupon rules as pure functions: validating a definition and a quote
//! request, deciding whether a cart may redeem a coupon, and the discount.
//! Nothing here calls the host, so every rule is unit-tested natively; codes,
//! currencies and times are the SDK's shared types.
use mercato_sdk::validate::Invalid;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::{Map, Value};

pub use mercato_sdk::time::Instant;
pub use mercato_sdk::validate::{CouponCode as Code, Currency};

/// What a coupon takes off: a percentage (1..=100), a fixed amount (> 0) in
/// minor units of the coupon's currency, or whatever a coupon-rule component
/// decides for the cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discount {
    Percent(i64),
    Fixed(i64),
    Rule(RuleRef),
}

/// A coupon-rule component and the coupon's config for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    /// The rule's name: 1-48 of `[a-z0-9-]`, starting with a letter.
    pub name: String,
    /// Compact JSON, at most [`MAX_RULE_CONFIG_BYTES`].
    pub config: String,
}

/// Largest rule config a coupon may carry; the host caps a rule's whole input
/// (config plus cart) at 64 KiB, so the cart keeps most of it.
pub const MAX_RULE_CONFIG_BYTES: usize = 16 * 1024;

fn rule_name(raw: &str) -> bool {
    (1..=48).contains(&raw.len())
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A coupon as created: immutable rules plus its usage limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub code: Code,
    pub discount: Discount,
    pub currency: Currency,
    pub min_subtotal_minor: i64,
    /// Valid from this instant on (inclusive).
    pub valid_from: Option<Instant>,
    /// Valid strictly before this instant: the window is half-open, so
    /// consecutive campaigns can share a boundary without overlapping.
    pub valid_until: Option<Instant>,
    pub usage_limit: Option<i64>,
    pub per_customer_limit: Option<i64>,
}

/// A coupon with its recorded usage (the number of ACTIVE redemptions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub definition: Definition,
    pub used: i64,
}

/// The body of `POST /coupons` as sent. Every field is a [`Field`], so a
/// value of the wrong type is refused with that field's own code (as the API
/// has always answered) rather than as a parse error of the whole body.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DefinitionBody {
    code: Field<String>,
    kind: Field<String>,
    percent: Field<i64>,
    amount_minor: Field<i64>,
    currency: Field<String>,
    min_subtotal_minor: Field<i64>,
    valid_from: Field<String>,
    valid_until: Field<String>,
    usage_limit: Field<i64>,
    per_customer_limit: Field<i64>,
    rule: Field<String>,
    config: Field<Map<String, Value>>,
}

/// The keys [`DefinitionBody`] reads, in the order the API lists them.
const DEFINITION_FIELDS: &[&str] = &[
    "code",
    "kind",
    "percent",
    "amount_minor",
    "currency",
    "min_subtotal_minor",
    "valid_from",
    "valid_until",
    "usage_limit",
    "per_customer_limit",
    "rule",
    "config",
];

/// Validates the body of `POST /coupons`. `null` counts as absent.
pub fn validate_definition(body: &Value) -> Result<Definition, Invalid> {
    let body: DefinitionBody = object(body, DEFINITION_FIELDS)?;
    let code = required(
        body.code.text("code", "invalid_code")?,
        "code",
        "invalid_code",
    )?;
    let code = Code::parse(&code).ok_or_else(|| {
        Invalid::new(
            "invalid_code",
            "code must be 3-32 characters of A-Z, a-z, 0-9, '_' or '-'",
        )
    })?;
    let kind = required(
        body.kind.text("kind", "invalid_kind")?,
        "kind",
        "invalid_kind",
    )?;
    let percent = body.percent.integer("percent", "invalid_percent")?;
    let amount = body
        .amount_minor
        .integer("amount_minor", "invalid_amount_minor")?;
    if kind != "rule" {
        for (field, given, code) in [
            ("rule", !body.rule.is_absent(), "invalid_rule"),
            ("config", !body.config.is_absent(), "invalid_config"),
        ] {
            if given {
                return Err(Invalid::new(
                    code,
                    format!("{field} applies to rule coupons only"),
                ));
            }
        }
    }
    let discount = match kind.as_str() {
        "percent" => {
            if amount.is_some() {
                return Err(Invalid::new(
                    "invalid_amount_minor",
                    "amount_minor applies to fixed coupons only",
                ));
            }
            match required(percent, "percent", "invalid_percent")? {
                p @ 1..=100 => Discount::Percent(p),
                _ => {
                    return Err(Invalid::new(
                        "invalid_percent",
                        "percent must be between 1 and 100",
                    ));
                }
            }
        }
        "fixed" => {
            if percent.is_some() {
                return Err(Invalid::new(
                    "invalid_percent",
                    "percent applies to percent coupons only",
                ));
            }
            match required(amount, "amount_minor", "invalid_amount_minor")? {
                a if a > 0 => Discount::Fixed(a),
                _ => {
                    return Err(Invalid::new(
                        "invalid_amount_minor",
                        "amount_minor must be greater than 0",
                    ));
                }
            }
        }
        "rule" => {
            if percent.is_some() || amount.is_some() {
                return Err(Invalid::new(
                    if percent.is_some() {
                        "invalid_percent"
                    } else {
                        "invalid_amount_minor"
                    },
                    "a rule coupon's discount comes from its rule",
                ));
            }
            let name = required(
                body.rule.text("rule", "invalid_rule")?,
                "rule",
                "invalid_rule",
            )?;
            if !rule_name(&name) {
                return Err(Invalid::new(
                    "invalid_rule",
                    "rule must be 1-48 lower-case letters, digits or '-', starting with a letter",
                ));
            }
            let config = match body.config {
                Field::Absent => "{}".to_owned(),
                Field::Given(object) => Value::Object(object).to_string(),
                Field::Wrong => {
                    return Err(Invalid::new(
                        "invalid_config",
                        "config must be a JSON object",
                    ));
                }
            };
            if config.len() > MAX_RULE_CONFIG_BYTES {
                return Err(Invalid::new(
                    "invalid_config",
                    format!("config must be at most {MAX_RULE_CONFIG_BYTES} bytes of JSON"),
                ));
            }
            Discount::Rule(RuleRef { name, config })
        }
        _ => {
            return Err(Invalid::new(
                "invalid_kind",
                "kind must be \"percent\", \"fixed\" or \"rule\"",
            ));
        }
    };
    let currency = currency(body.currency)?;
    let min_subtotal_minor = body
        .min_subtotal_minor
        .integer("min_subtotal_minor", "invalid_min_subtotal_minor")?
        .unwrap_or(0);
    if min_subtotal_minor < 0 {
        return Err(Invalid::new(
            "invalid_min_subtotal_minor",
            "min_subtotal_minor must not be negative",
        ));
    }
    let valid_from = instant(body.valid_from, "valid_from", "invalid_valid_from")?;
    let valid_until = instant(body.valid_until, "valid_until", "invalid_valid_until")?;
    if let (Some(from), Some(until)) = (valid_from, valid_until)
        && from >= until
    {
        return Err(Invalid::new(
            "invalid_validity_window",
            "valid_from must be before valid_until",
        ));
    }
    Ok(Definition {
        code,
        discount,
        currency,
        min_subtotal_minor,
        valid_from,
        valid_until,
        usage_limit: limit(body.usage_limit, "usage_limit", "invalid_usage_limit")?,
        per_customer_limit: limit(
            body.per_customer_limit,
            "per_customer_limit",
            "invalid_per_customer_limit",
        )?,
    })
}

/// What a quote or an order brings to the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cart {
    /// As received: an order's currency is compared, not validated.
    pub currency: String,
    pub subtotal_minor: i64,
    /// What a rule coupon's rule sees; the built-in kinds need only the subtotal.
    pub lines: Vec<Line>,
}

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub sku: String,
    pub quantity: u32,
    pub unit_price_minor: i64,
}

/// Most lines a quote may carry (an order has at most as many).
pub const MAX_QUOTE_LINES: usize = 500;

/// The body of `POST /coupons/{code}/quote`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteRequest {
    pub cart: Cart,
    /// Without a buyer the per-customer limit cannot be judged and is skipped.
    pub buyer_id: Option<String>,
}

/// The body of a quote as sent (see [`DefinitionBody`] for why [`Field`]s).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct QuoteBody {
    currency: Field<String>,
    subtotal_minor: Field<i64>,
    buyer_id: Field<String>,
    lines: Field<Vec<Field<QuoteLineBody>>>,
}

/// The keys [`QuoteBody`] reads.
const QUOTE_FIELDS: &[&str] = &["currency", "subtotal_minor", "buyer_id", "lines"];

/// One line of a quote; any problem with it is `invalid_lines`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuoteLineBody {
    sku: String,
    quantity: u64,
    unit_price_minor: i64,
}

/// Validates the body of a quote. `null` counts as absent. With `lines` the
/// subtotal is theirs (a `subtotal_minor` beside them is refused).
pub fn validate_quote(body: &Value) -> Result<QuoteRequest, Invalid> {
    let body: QuoteBody = object(body, QUOTE_FIELDS)?;
    let currency = currency(body.currency)?;
    let given = body
        .subtotal_minor
        .integer("subtotal_minor", "invalid_subtotal_minor")?;
    let lines = match body.lines {
        Field::Absent => Vec::new(),
        Field::Given(items) if items.len() <= MAX_QUOTE_LINES => items
            .into_iter()
            .map(quote_line)
            .collect::<Result<_, _>>()?,
        Field::Given(_) | Field::Wrong => {
            return Err(Invalid::new(
                "invalid_lines",
                format!("lines must be an array of at most {MAX_QUOTE_LINES} lines"),
            ));
        }
    };
    let subtotal_minor = if lines.is_empty() {
        required(given, "subtotal_minor", "invalid_subtotal_minor")?
    } else {
        let sum: i128 = lines
            .iter()
            .map(|l| i128::from(l.quantity) * i128::from(l.unit_price_minor))
            .sum();
        let sum = i64::try_from(sum)
            .map_err(|_| Invalid::new("invalid_lines", "the lines' total is too large"))?;
        // One source of truth for the subtotal: a cart's lines, or a bare
        // amount. Both at once could disagree, and the API's schema says
        // `oneOf`, so it is refused whatever the values.
        if given.is_some() {
            return Err(Invalid::new(
                "subtotal_with_lines",
                format!("give subtotal_minor or lines, not both (the lines total {sum})"),
            ));
        }
        sum
    };
    if subtotal_minor < 0 {
        return Err(Invalid::new(
            "invalid_subtotal_minor",
            "subtotal_minor must not be negative",
        ));
    }
    let buyer_id = match body.buyer_id.text("buyer_id", "invalid_buyer_id")? {
        Some(id) if id.is_empty() || id.len() > 255 => {
            return Err(Invalid::new(
                "invalid_buyer_id",
                "buyer_id must be 1-255 characters",
            ));
        }
        id => id,
    };
    Ok(QuoteRequest {
        cart: Cart {
            currency: currency.as_str().to_owned(),
            subtotal_minor,
            lines,
        },
        buyer_id,
    })
}

fn quote_line(item: Field<QuoteLineBody>) -> Result<Line, Invalid> {
    let bad = || {
        Invalid::new(
            "invalid_lines",
            "each line is {\"sku\": 1-64 characters, \"quantity\": 1-10000, \"unit_price_minor\": 0-1000000000000}",
        )
    };
    let Field::Given(line) = item else {
        return Err(bad());
    };
    if !(1..=64).contains(&line.sku.chars().count())
        || !(1..=10_000).contains(&line.quantity)
        || !(0..=MAX_UNIT_PRICE_MINOR).contains(&line.unit_price_minor)
    {
        return Err(bad());
    }
    Ok(Line {
        sku: line.sku,
        quantity: u32::try_from(line.quantity).map_err(|_| bad())?,
        unit_price_minor: line.unit_price_minor,
    })
}

/// Highest unit price a quote line takes, as products' highest price.
const MAX_UNIT_PRICE_MINOR: i64 = 1_000_000_000_000;

/// Why a cart cannot redeem a coupon; the strings are the saga's
/// `CouponRejected.reason` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    UnknownCoupon,
    CurrencyMismatch,
    NotYetValid,
    Expired,
    MinimumNotMet,
    CustomerLimitReached,
    UsageLimitReached,
    /// The coupon's rule declined, broke a limit or is not deployed.
    RuleRejected,
    /// The coupon was disabled by its owner.
    CouponDisabled,
    /// The coupon was archived.
    CouponArchived,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownCoupon => "unknown_coupon",
            Reason::CurrencyMismatch => "currency_mismatch",
            Reason::NotYetValid => "not_yet_valid",
            Reason::Expired => "expired",
            Reason::MinimumNotMet => "minimum_not_met",
            Reason::CustomerLimitReached => "customer_limit_reached",
            Reason::UsageLimitReached => "usage_limit_reached",
            Reason::RuleRejected => "rule_rejected",
            Reason::CouponDisabled => "coupon_disabled",
            Reason::CouponArchived => "coupon_archived",
        }
    }
}

/// What the buyer is told when `reason` keeps coupon `code` off an order in
/// `currency` with `subtotal_minor` (the `message` of `CouponRejected`).
/// `definition` is the coupon's, `None` when there is no such coupon. A rule's
/// rejection carries the rule's own message instead.
pub fn explain(
    reason: Reason,
    code: &str,
    definition: Option<&Definition>,
    currency: &str,
    subtotal_minor: i64,
) -> String {
    let coupon = format!("coupon {code}");
    let Some(d) = definition else {
        return format!("there is no coupon {code}");
    };
    let at = |t: Option<Instant>| t.map(|t| t.to_string()).unwrap_or_default();
    let times = |n: Option<i64>| match n.unwrap_or(0) {
        1 => "once".to_owned(),
        n => format!("{n} times"),
    };
    match reason {
        Reason::UnknownCoupon => format!("there is no coupon {code}"),
        Reason::CurrencyMismatch => format!(
            "{coupon} is for orders in {}; this order is in {currency}",
            d.currency.as_str()
        ),
        Reason::NotYetValid => format!("{coupon} is valid from {}", at(d.valid_from)),
        Reason::Expired => format!("{coupon} expired at {}", at(d.valid_until)),
        Reason::MinimumNotMet => format!(
            "{coupon} needs a subtotal of at least {} (minor units of {currency}); this order's is {subtotal_minor}",
            d.min_subtotal_minor
        ),
        Reason::CustomerLimitReached => format!(
            "{coupon} may be used {} per customer, and this buyer has used it up",
            times(d.per_customer_limit)
        ),
        Reason::UsageLimitReached => {
            format!("{coupon} has been used {}, its limit", times(d.usage_limit))
        }
        Reason::RuleRejected => format!("{coupon}: its rule did not apply to this order"),
        Reason::CouponDisabled => format!("{coupon} is disabled"),
        Reason::CouponArchived => format!("{coupon} is archived"),
    }
}

/// How `POST /coupons` (and an update of a rule coupon's config) answers
/// when the host's check of the rule and config fails, by the rejection code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigRefusal {
    pub status: u16,
    pub code: &'static str,
}

impl ConfigRefusal {
    /// `unknown_rule`: 404 `unknown_rule` (a named object that does not
    /// exist, as an unknown SKU in an order); `busy` (no evaluation slot freed
    /// up): 503 `rules_busy`, worth retrying; anything else (the rule refused
    /// the config, or broke a limit or a check on it): 422
    /// `invalid_rule_config`.
    pub fn of(rule_code: &str) -> ConfigRefusal {
        let (status, code) = match rule_code {
            "unknown_rule" => (404, "unknown_rule"),
            "busy" => (503, "rules_busy"),
            _ => (422, "invalid_rule_config"),
        };
        ConfigRefusal { status, code }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Apply {
        discount_minor: i64,
    },
    Reject(Reason),
    /// Every check passed; the coupon's rule prices the cart.
    AskRule,
}

/// Decides whether `cart` may redeem `coupon` at `now`. (A code with no coupon
/// is `unknown_coupon` before any rule can be judged, so it is the caller's.)
///
/// `customer_redemptions` is the buyer's count of ACTIVE redemptions of this
/// code, `None` when the buyer is unknown (a quote without `buyer_id`). The
/// checks run from the cart's own facts to the coupon's shared usage, so a
/// buyer is told the most specific reason first.
pub fn decide(
    coupon: &Coupon,
    cart: &Cart,
    customer_redemptions: Option<i64>,
    now: Instant,
) -> Decision {
    let rules = &coupon.definition;
    let reason = if cart.currency != rules.currency.as_str() {
        Some(Reason::CurrencyMismatch)
    } else if rules.valid_from.is_some_and(|from| now < from) {
        Some(Reason::NotYetValid)
    } else if rules.valid_until.is_some_and(|until| now >= until) {
        Some(Reason::Expired)
    } else if cart.subtotal_minor < rules.min_subtotal_minor {
        Some(Reason::MinimumNotMet)
    } else if let (Some(limit), Some(count)) = (rules.per_customer_limit, customer_redemptions)
        && count >= limit
    {
        Some(Reason::CustomerLimitReached)
    } else if rules.usage_limit.is_some_and(|limit| coupon.used >= limit) {
        Some(Reason::UsageLimitReached)
    } else {
        None
    };
    match (reason, &rules.discount) {
        (Some(reason), _) => Decision::Reject(reason),
        (None, Discount::Rule(_)) => Decision::AskRule,
        (None, discount) => Decision::Apply {
            discount_minor: discount_minor(discount, cart.subtotal_minor),
        },
    }
}

/// The discount on `subtotal_minor`, in whole minor units: a percentage is
/// rounded half away from zero; the result never exceeds the subtotal (and is
/// 0 for a subtotal that is not positive). A rule coupon's discount is its
/// rule's answer, which [`decide`] asks for instead; here it is 0.
pub fn discount_minor(discount: &Discount, subtotal_minor: i64) -> i64 {
    let subtotal = subtotal_minor.max(0);
    let raw = match discount {
        Discount::Fixed(amount) => *amount,
        Discount::Rule(_) => 0,
        // Exact in Decimal (96-bit mantissa: i64 × 100 fits), and at most the
        // subtotal, so the conversion back cannot fail; 0 is the safe side anyway.
        Discount::Percent(percent) => (Decimal::from(subtotal) * Decimal::from(*percent)
            / Decimal::ONE_HUNDRED)
            .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
            .to_i64()
            .unwrap_or(0),
    };
    raw.clamp(0, subtotal)
}

/// One field of a JSON body as sent: absent (or `null`), a value of the
/// expected type, or a value of another type. Deserializing a [`Field`] never
/// fails, so each rule can refuse a wrong type with its own code and message.
#[derive(Debug, Clone, Default, PartialEq)]
enum Field<T> {
    #[default]
    Absent,
    Given(T),
    Wrong,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::Null => Field::Absent,
            // `2406.0` is an integer to JSON Schema, so to an integer field.
            mut value => T::deserialize(&value)
                .or_else(|_| {
                    mercato_sdk::http::integral_floats_as_integers(&mut value);
                    T::deserialize(&value)
                })
                .map_or(Field::Wrong, Field::Given),
        })
    }
}

impl<T> Field<T> {
    fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }

    /// The value if given; a wrong type is refused as "`name` must be `what`".
    fn expect(self, name: &str, code: &'static str, what: &str) -> Result<Option<T>, Invalid> {
        match self {
            Field::Absent => Ok(None),
            Field::Given(value) => Ok(Some(value)),
            Field::Wrong => Err(Invalid::new(code, format!("{name} must be {what}"))),
        }
    }
}

impl Field<String> {
    fn text(self, name: &str, code: &'static str) -> Result<Option<String>, Invalid> {
        self.expect(name, code, "a string")
    }
}

impl Field<i64> {
    fn integer(self, name: &str, code: &'static str) -> Result<Option<i64>, Invalid> {
        self.expect(name, code, "an integer")
    }
}

/// Reads a body that must be an object with only `allowed` keys: an unknown
/// key is refused because a misspelt limit (`usage_limt`) would otherwise
/// silently create an unlimited coupon.
fn object<T: DeserializeOwned>(body: &Value, allowed: &[&str]) -> Result<T, Invalid> {
    let not_an_object = || Invalid::new("invalid_body", "the body must be a JSON object");
    let fields = body.as_object().ok_or_else(not_an_object)?;
    if let Some(unknown) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Invalid::new(
            "unknown_field",
            format!(
                "unknown field `{unknown}`; expected one of {}",
                allowed.join(", ")
            ),
        ));
    }
    // Every field is a `Field`, which always deserializes.
    T::deserialize(body).map_err(|_| not_an_object())
}

fn required<T>(value: Option<T>, name: &str, code: &'static str) -> Result<T, Invalid> {
    value.ok_or_else(|| Invalid::new(code, format!("{name} is required")))
}

fn currency(field: Field<String>) -> Result<Currency, Invalid> {
    let raw = required(
        field.text("currency", "invalid_currency")?,
        "currency",
        "invalid_currency",
    )?;
    Currency::parse(&raw).ok_or_else(|| {
        Invalid::new(
            "invalid_currency",
            "currency must be an ISO 4217 code (three upper-case letters)",
        )
    })
}

fn instant(
    field: Field<String>,
    name: &str,
    code: &'static str,
) -> Result<Option<Instant>, Invalid> {
    field
        .text(name, code)?
        .map(|raw| {
            Instant::parse(&raw).ok_or_else(|| {
                Invalid::new(
                    code,
                    format!("{name} must be an RFC 3339 time, e.g. 2026-01-31T23:59:59Z"),
                )
            })
        })
        .transpose()
}

fn limit(field: Field<i64>, name: &str, code: &'static str) -> Result<Option<i64>, Invalid> {
    match field.integer(name, code)? {
        Some(n) if n < 1 => Err(Invalid::new(code, format!("{name} must be at least 1"))),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> Instant {
        Instant::parse(text).expect("a valid time")
    }

    fn code(raw: &str) -> Code {
        Code::parse(raw).expect("a valid code")
    }

    fn eur() -> Currency {
        Currency::parse("EUR").expect("a valid currency")
    }

    /// 10 % off EUR carts, no window, no limits.
    fn ten_percent() -> Coupon {
        Coupon {
            definition: Definition {
                code: code("SAVE10"),
                discount: Discount::Percent(10),
                currency: eur(),
                min_subtotal_minor: 0,
                valid_from: None,
                valid_until: None,
                usage_limit: None,
                per_customer_limit: None,
            },
            used: 0,
        }
    }

    fn cart(subtotal_minor: i64) -> Cart {
        Cart {
            currency: "EUR".into(),
            subtotal_minor,
            lines: Vec::new(),
        }
    }

    /// The decision to apply a discount of `discount_minor`.
    fn applies(discount_minor: i64) -> Decision {
        Decision::Apply { discount_minor }
    }

    fn noon() -> Instant {
        at("2026-06-15T12:00:00Z")
    }

    /// `base` with the fields of `extra` added or replaced, validated.
    fn definition(mut base: Value, extra: Value) -> Result<Definition, Invalid> {
        for (k, v) in extra.as_object().expect("an object") {
            base[k] = v.clone();
        }
        validate_definition(&base)
    }

    fn rejected(code: &'static str) -> impl Fn(Result<Definition, Invalid>) {
        move |result| match result {
            Err(e) => assert_eq!(e.code, code, "{}", e.message),
            Ok(d) => panic!("expected {code}, got {d:?}"),
        }
    }

    // ---- request bodies ----

    #[test]
    fn every_listed_field_is_read_by_its_body_and_only_those() {
        let all_wrong = |names: &[&str]| {
            Value::Object(names.iter().map(|n| (n.to_string(), json!(true))).collect())
        };
        let d: DefinitionBody = object(&all_wrong(DEFINITION_FIELDS), DEFINITION_FIELDS).unwrap();
        let read = [
            matches!(d.code, Field::Wrong),
            matches!(d.kind, Field::Wrong),
            matches!(d.percent, Field::Wrong),
            matches!(d.amount_minor, Field::Wrong),
            matches!(d.currency, Field::Wrong),
            matches!(d.min_subtotal_minor, Field::Wrong),
            matches!(d.valid_from, Field::Wrong),
            matches!(d.valid_until, Field::Wrong),
            matches!(d.usage_limit, Field::Wrong),
            matches!(d.per_customer_limit, Field::Wrong),
            matches!(d.rule, Field::Wrong),
            matches!(d.config, Field::Wrong),
        ];
        assert_eq!(read, [true; 12]);
        let q: QuoteBody = object(&all_wrong(QUOTE_FIELDS), QUOTE_FIELDS).unwrap();
        let read = [
            matches!(q.currency, Field::Wrong),
            matches!(q.subtotal_minor, Field::Wrong),
            matches!(q.buyer_id, Field::Wrong),
            matches!(q.lines, Field::Wrong),
        ];
        assert_eq!(read, [true; 4]);
    }

    #[test]
    fn a_field_is_absent_when_null_or_missing_and_wrong_when_of_another_type() {
        let field = |v: Value| serde_json::from_value::<Field<i64>>(v).unwrap();
        assert_eq!(field(Value::Null), Field::Absent);
        assert_eq!(field(json!(7)), Field::Given(7));
        for wrong in [
            json!("7"),
            json!(7.5),
            json!(u64::MAX),
            json!([7]),
            json!(true),
        ] {
            assert_eq!(field(wrong), Field::Wrong);
        }
        let message = |body: Value| validate_definition(&body).unwrap_err().message;
        assert_eq!(message(json!({ "code": 1 })), "code must be a string");
        assert_eq!(message(json!({})), "code is required");
        assert_eq!(
            message(json!({ "code": "SAVE", "kind": "percent", "percent": "10" })),
            "percent must be an integer"
        );
    }

    // ---- definitions ----

    #[test]
    fn given_a_minimal_percent_coupon_when_validated_then_defaults_apply() {
        let body = json!({ "code": "save10", "kind": "percent", "percent": 10, "currency": "EUR" });

        let definition = validate_definition(&body).unwrap();

        assert_eq!(definition, ten_percent().definition);
    }

    #[test]
    fn given_a_full_fixed_coupon_when_validated_then_every_field_is_kept() {
        let body = json!({
            "code": "WELCOME-5", "kind": "fixed", "amount_minor": 500, "currency": "USD",
            "min_subtotal_minor": 2000, "valid_from": "2026-06-01T02:00:00+02:00",
            "valid_until": "2026-07-01T00:00:00Z", "usage_limit": 100, "per_customer_limit": 1,
        });

        let definition = validate_definition(&body).unwrap();

        assert_eq!(
            definition,
            Definition {
                code: code("WELCOME-5"),
                discount: Discount::Fixed(500),
                currency: Currency::parse("USD").unwrap(),
                min_subtotal_minor: 2000,
                valid_from: Some(at("2026-06-01T00:00:00Z")),
                valid_until: Some(at("2026-07-01T00:00:00Z")),
                usage_limit: Some(100),
                per_customer_limit: Some(1),
            }
        );
    }

    #[test]
    fn given_nulls_for_optional_fields_when_validated_then_they_count_as_absent() {
        let body = json!({
            "code": "SAVE10", "kind": "percent", "percent": 10, "amount_minor": null,
            "currency": "EUR", "min_subtotal_minor": null, "valid_from": null,
            "valid_until": null, "usage_limit": null, "per_customer_limit": null,
        });

        assert_eq!(
            validate_definition(&body).unwrap(),
            ten_percent().definition
        );
    }

    #[test]
    fn given_a_body_that_is_not_an_object_or_has_unknown_fields_then_it_is_refused() {
        rejected("invalid_body")(validate_definition(&json!([1, 2])));
        rejected("invalid_body")(validate_definition(&json!("SAVE10")));
        rejected("unknown_field")(validate_definition(&json!({
            "code": "SAVE10", "kind": "percent", "percent": 10, "currency": "EUR", "usage_limt": 5,
        })));
    }

    #[test]
    fn given_a_bad_code_or_kind_then_it_is_refused_with_its_own_code() {
        let with = |code: Value, kind: Value| {
            validate_definition(
                &json!({ "code": code, "kind": kind, "percent": 10, "currency": "EUR" }),
            )
        };
        rejected("invalid_code")(with(Value::Null, json!("percent")));
        rejected("invalid_code")(with(json!("ab"), json!("percent")));
        rejected("invalid_code")(with(json!("no spaces"), json!("percent")));
        rejected("invalid_code")(with(json!(12345), json!("percent")));
        rejected("invalid_kind")(with(json!("SAVE10"), Value::Null));
        rejected("invalid_kind")(with(json!("SAVE10"), json!("PERCENT")));
        rejected("invalid_kind")(with(json!("SAVE10"), json!("bogo")));
    }

    #[test]
    fn given_a_percent_coupon_then_percent_is_1_to_100_and_amount_is_absent() {
        let with = |extra: Value| {
            definition(
                json!({ "code": "SAVE", "kind": "percent", "currency": "EUR" }),
                extra,
            )
        };
        rejected("invalid_percent")(with(json!({})));
        rejected("invalid_percent")(with(json!({ "percent": 0 })));
        rejected("invalid_percent")(with(json!({ "percent": 101 })));
        rejected("invalid_percent")(with(json!({ "percent": -5 })));
        rejected("invalid_percent")(with(json!({ "percent": 12.5 })));
        rejected("invalid_percent")(with(json!({ "percent": "10" })));
        rejected("invalid_amount_minor")(with(json!({ "percent": 10, "amount_minor": 100 })));
        assert_eq!(
            with(json!({ "percent": 1 })).unwrap().discount,
            Discount::Percent(1)
        );
        assert_eq!(
            with(json!({ "percent": 100 })).unwrap().discount,
            Discount::Percent(100)
        );
    }

    #[test]
    fn given_a_fixed_coupon_then_amount_is_positive_and_percent_is_absent() {
        let with = |extra: Value| {
            definition(
                json!({ "code": "FIVE", "kind": "fixed", "currency": "EUR" }),
                extra,
            )
        };
        rejected("invalid_amount_minor")(with(json!({})));
        rejected("invalid_amount_minor")(with(json!({ "amount_minor": 0 })));
        rejected("invalid_amount_minor")(with(json!({ "amount_minor": -1 })));
        rejected("invalid_amount_minor")(with(json!({ "amount_minor": 1.5 })));
        rejected("invalid_amount_minor")(with(json!({ "amount_minor": u64::MAX })));
        // 1e3 is the integer 1000, as JSON Schema counts it.
        assert_eq!(
            with(json!({ "amount_minor": 1e3 })).unwrap().discount,
            Discount::Fixed(1_000)
        );
        rejected("invalid_percent")(with(json!({ "amount_minor": 500, "percent": 10 })));
        assert_eq!(
            with(json!({ "amount_minor": 1 })).unwrap().discount,
            Discount::Fixed(1)
        );
    }

    #[test]
    fn given_bad_currency_minimum_or_limits_then_each_is_refused_with_its_own_code() {
        let with = |extra: Value| {
            definition(
                json!({ "code": "SAVE10", "kind": "percent", "percent": 10, "currency": "EUR" }),
                extra,
            )
        };
        rejected("invalid_currency")(with(json!({ "currency": null })));
        rejected("invalid_currency")(with(json!({ "currency": "eur" })));
        rejected("invalid_currency")(with(json!({ "currency": "EURO" })));
        rejected("invalid_min_subtotal_minor")(with(json!({ "min_subtotal_minor": -1 })));
        rejected("invalid_min_subtotal_minor")(with(json!({ "min_subtotal_minor": "100" })));
        rejected("invalid_usage_limit")(with(json!({ "usage_limit": 0 })));
        rejected("invalid_usage_limit")(with(json!({ "usage_limit": true })));
        rejected("invalid_per_customer_limit")(with(json!({ "per_customer_limit": 0 })));
        rejected("invalid_per_customer_limit")(with(json!({ "per_customer_limit": -3 })));
        assert_eq!(
            with(json!({ "min_subtotal_minor": 0 }))
                .unwrap()
                .min_subtotal_minor,
            0
        );
        assert_eq!(
            with(json!({ "usage_limit": 1 })).unwrap().usage_limit,
            Some(1)
        );
    }

    #[test]
    fn given_a_validity_window_then_both_ends_are_rfc3339_and_from_precedes_until() {
        let with = |from: Value, until: Value| {
            validate_definition(&json!({
                "code": "SAVE10", "kind": "percent", "percent": 10, "currency": "EUR",
                "valid_from": from, "valid_until": until,
            }))
        };
        rejected("invalid_valid_from")(with(json!("2026-06-01"), Value::Null));
        rejected("invalid_valid_from")(with(json!(1_780_000_000), Value::Null));
        rejected("invalid_valid_until")(with(Value::Null, json!("next week")));
        rejected("invalid_validity_window")(with(
            json!("2026-07-01T00:00:00Z"),
            json!("2026-06-01T00:00:00Z"),
        ));
        // The same instant written with two offsets is an empty window.
        rejected("invalid_validity_window")(with(
            json!("2026-06-01T02:00:00+02:00"),
            json!("2026-06-01T00:00:00Z"),
        ));
        let open_ended = with(json!("2026-06-01T00:00:00Z"), Value::Null).unwrap();
        assert_eq!(open_ended.valid_from, Some(at("2026-06-01T00:00:00Z")));
        assert_eq!(open_ended.valid_until, None);
    }

    // ---- quote requests ----

    #[test]
    fn given_a_quote_with_or_without_buyer_when_validated_then_the_cart_is_kept() {
        let anonymous = validate_quote(&json!({ "currency": "EUR", "subtotal_minor": 0 })).unwrap();
        assert_eq!(
            anonymous,
            QuoteRequest {
                cart: cart(0),
                buyer_id: None
            }
        );

        let known =
            validate_quote(&json!({ "currency": "EUR", "subtotal_minor": 999, "buyer_id": "b-1" }))
                .unwrap();
        assert_eq!(known.cart, cart(999));
        assert_eq!(known.buyer_id.as_deref(), Some("b-1"));
    }

    #[test]
    fn given_a_bad_quote_then_each_problem_has_its_own_code() {
        let code_of = |body: Value| validate_quote(&body).unwrap_err().code;
        assert_eq!(code_of(json!(null)), "invalid_body");
        assert_eq!(
            code_of(json!({ "currency": "EUR", "subtotal_minor": 1, "coupon": "X" })),
            "unknown_field"
        );
        assert_eq!(code_of(json!({ "subtotal_minor": 1 })), "invalid_currency");
        assert_eq!(
            code_of(json!({ "currency": "eur", "subtotal_minor": 1 })),
            "invalid_currency"
        );
        assert_eq!(
            code_of(json!({ "currency": "EUR" })),
            "invalid_subtotal_minor"
        );
        assert_eq!(
            code_of(json!({ "currency": "EUR", "subtotal_minor": -1 })),
            "invalid_subtotal_minor"
        );
        assert_eq!(
            code_of(json!({ "currency": "EUR", "subtotal_minor": 9.99 })),
            "invalid_subtotal_minor"
        );
        assert_eq!(
            code_of(json!({ "currency": "EUR", "subtotal_minor": 1, "buyer_id": "" })),
            "invalid_buyer_id"
        );
        assert_eq!(
            code_of(json!({ "currency": "EUR", "subtotal_minor": 1, "buyer_id": 7 })),
            "invalid_buyer_id"
        );
        assert_eq!(
            code_of(json!({ "currency": "EUR", "subtotal_minor": 1, "buyer_id": "b".repeat(256) })),
            "invalid_buyer_id"
        );
    }

    // ---- decisions ----

    #[test]
    fn given_a_plain_coupon_when_a_cart_in_its_currency_asks_then_it_applies() {
        let decision = decide(&ten_percent(), &cart(2500), None, noon());

        assert_eq!(decision, applies(250));
    }

    #[test]
    fn given_a_coupon_in_another_currency_then_currency_mismatch() {
        let usd_cart = Cart {
            currency: "USD".into(),
            subtotal_minor: 2500,
            lines: Vec::new(),
        };

        assert_eq!(
            decide(&ten_percent(), &usd_cart, None, noon()),
            Decision::Reject(Reason::CurrencyMismatch)
        );
    }

    #[test]
    fn given_a_window_then_it_is_inclusive_at_the_start_and_exclusive_at_the_end() {
        let mut coupon = ten_percent();
        coupon.definition.valid_from = Some(at("2026-06-01T00:00:00Z"));
        coupon.definition.valid_until = Some(at("2026-07-01T00:00:00Z"));
        let when = |now: &str| decide(&coupon, &cart(1000), None, at(now));

        assert_eq!(
            when("2026-05-31T23:59:59.999Z"),
            Decision::Reject(Reason::NotYetValid)
        );
        assert_eq!(when("2026-06-01T00:00:00Z"), applies(100));
        assert_eq!(when("2026-06-30T23:59:59.999Z"), applies(100));
        assert_eq!(
            when("2026-07-01T00:00:00Z"),
            Decision::Reject(Reason::Expired)
        );
    }

    #[test]
    fn given_a_minimum_subtotal_then_a_cart_must_reach_it() {
        let mut coupon = ten_percent();
        coupon.definition.min_subtotal_minor = 5000;

        assert_eq!(
            decide(&coupon, &cart(4999), None, noon()),
            Decision::Reject(Reason::MinimumNotMet)
        );
        assert_eq!(decide(&coupon, &cart(5000), None, noon()), applies(500));
    }

    #[test]
    fn given_a_negative_subtotal_then_the_default_minimum_is_not_met() {
        assert_eq!(
            decide(&ten_percent(), &cart(-100), None, noon()),
            Decision::Reject(Reason::MinimumNotMet)
        );
    }

    #[test]
    fn given_a_per_customer_limit_then_the_buyers_active_redemptions_count() {
        let mut coupon = ten_percent();
        coupon.definition.per_customer_limit = Some(2);

        assert_eq!(decide(&coupon, &cart(1000), Some(1), noon()), applies(100));
        assert_eq!(
            decide(&coupon, &cart(1000), Some(2), noon()),
            Decision::Reject(Reason::CustomerLimitReached)
        );
        // An unknown buyer (a quote without buyer_id) cannot be judged.
        assert_eq!(decide(&coupon, &cart(1000), None, noon()), applies(100));
    }

    #[test]
    fn given_a_usage_limit_then_recorded_usage_must_be_below_it() {
        let mut coupon = ten_percent();
        coupon.definition.usage_limit = Some(50);
        coupon.used = 49;
        assert_eq!(decide(&coupon, &cart(1000), None, noon()), applies(100));

        coupon.used = 50;
        assert_eq!(
            decide(&coupon, &cart(1000), None, noon()),
            Decision::Reject(Reason::UsageLimitReached)
        );
    }

    #[test]
    fn given_several_failing_rules_then_the_cart_specific_reason_comes_first() {
        let mut coupon = ten_percent();
        coupon.definition.valid_from = Some(at("2026-07-01T00:00:00Z"));
        coupon.definition.valid_until = Some(at("2026-08-01T00:00:00Z"));
        coupon.definition.min_subtotal_minor = 5000;
        coupon.definition.per_customer_limit = Some(1);
        coupon.definition.usage_limit = Some(1);
        coupon.used = 1;
        let usd = Cart {
            currency: "USD".into(),
            subtotal_minor: 10,
            lines: Vec::new(),
        };
        let cases = [
            (&usd, "2026-06-01T00:00:00Z", Reason::CurrencyMismatch),
            (&cart(10), "2026-06-01T00:00:00Z", Reason::NotYetValid),
            (&cart(10), "2026-09-01T00:00:00Z", Reason::Expired),
            (&cart(10), "2026-07-15T00:00:00Z", Reason::MinimumNotMet),
            (
                &cart(6000),
                "2026-07-15T00:00:00Z",
                Reason::CustomerLimitReached,
            ),
        ];
        for (cart, now, reason) in cases {
            assert_eq!(
                decide(&coupon, cart, Some(1), at(now)),
                Decision::Reject(reason),
                "{now}"
            );
        }
        assert_eq!(
            decide(&coupon, &cart(6000), Some(0), at("2026-07-15T00:00:00Z")),
            Decision::Reject(Reason::UsageLimitReached)
        );
    }

    #[test]
    fn reasons_are_the_saga_contract_strings() {
        let all = [
            (Reason::UnknownCoupon, "unknown_coupon"),
            (Reason::CurrencyMismatch, "currency_mismatch"),
            (Reason::NotYetValid, "not_yet_valid"),
            (Reason::Expired, "expired"),
            (Reason::MinimumNotMet, "minimum_not_met"),
            (Reason::CustomerLimitReached, "customer_limit_reached"),
            (Reason::UsageLimitReached, "usage_limit_reached"),
        ];
        for (reason, text) in all {
            assert_eq!(reason.as_str(), text);
        }
    }

    // ---- discounts ----

    #[test]
    fn percentages_round_half_away_from_zero_to_whole_minor_units() {
        assert_eq!(discount_minor(&Discount::Percent(15), 1003), 150); // 150.45
        assert_eq!(discount_minor(&Discount::Percent(15), 1010), 152); // 151.5
        assert_eq!(discount_minor(&Discount::Percent(10), 5), 1); // 0.5
        assert_eq!(discount_minor(&Discount::Percent(10), 4), 0); // 0.4
        assert_eq!(discount_minor(&Discount::Percent(33), 1), 0); // 0.33
        assert_eq!(discount_minor(&Discount::Percent(50), 1), 1); // 0.5
        assert_eq!(discount_minor(&Discount::Percent(1), 149), 1); // 1.49
        assert_eq!(discount_minor(&Discount::Percent(1), 150), 2); // 1.5
    }

    #[test]
    fn a_discount_never_exceeds_the_subtotal() {
        assert_eq!(discount_minor(&Discount::Percent(100), 1999), 1999);
        assert_eq!(discount_minor(&Discount::Fixed(500), 300), 300);
        assert_eq!(discount_minor(&Discount::Fixed(500), 500), 500);
        assert_eq!(discount_minor(&Discount::Fixed(500), 501), 500);
        assert_eq!(discount_minor(&Discount::Fixed(500), 0), 0);
        assert_eq!(discount_minor(&Discount::Percent(10), 0), 0);
        assert_eq!(discount_minor(&Discount::Fixed(500), -10), 0);
    }

    #[test]
    fn percentages_of_the_largest_subtotals_are_exact() {
        assert_eq!(discount_minor(&Discount::Percent(100), i64::MAX), i64::MAX);
        // 4611686018427387903.5 rounds up.
        assert_eq!(
            discount_minor(&Discount::Percent(50), i64::MAX),
            4_611_686_018_427_387_904
        );
        assert_eq!(
            discount_minor(&Discount::Fixed(i64::MAX), i64::MAX),
            i64::MAX
        );
    }

    fn rule_coupon(extra: Value) -> Result<Definition, Invalid> {
        definition(
            json!({ "code": "SPEND", "kind": "rule", "rule": "tiered-spend", "currency": "EUR" }),
            extra,
        )
    }

    #[test]
    fn a_rule_coupon_names_a_rule_and_keeps_its_config_as_compact_json() {
        let d = rule_coupon(
            json!({ "config": { "tiers": [ { "min_subtotal": 100, "percent": 5 } ] } }),
        )
        .unwrap();
        assert_eq!(
            d.discount,
            Discount::Rule(RuleRef {
                name: "tiered-spend".into(),
                config: r#"{"tiers":[{"min_subtotal":100,"percent":5}]}"#.into(),
            })
        );
        let defaulted = rule_coupon(json!({})).unwrap();
        assert!(matches!(defaulted.discount, Discount::Rule(ref r) if r.config == "{}"));
    }

    #[test]
    fn a_rule_coupon_with_a_bad_name_config_or_a_built_in_amount_is_refused() {
        let code_of = |body: Value| rule_coupon(body).unwrap_err().code;
        assert_eq!(code_of(json!({ "rule": "Tiered" })), "invalid_rule");
        assert_eq!(code_of(json!({ "rule": "" })), "invalid_rule");
        assert_eq!(code_of(json!({ "rule": null })), "invalid_rule");
        assert_eq!(code_of(json!({ "config": [1, 2] })), "invalid_config");
        assert_eq!(
            code_of(json!({ "config": { "x": "y".repeat(MAX_RULE_CONFIG_BYTES) } })),
            "invalid_config"
        );
        assert_eq!(code_of(json!({ "percent": 10 })), "invalid_percent");
        assert_eq!(
            code_of(json!({ "amount_minor": 10 })),
            "invalid_amount_minor"
        );
        let percent_with_rule = validate_definition(&json!({
            "code": "SAVE10", "kind": "percent", "percent": 10, "currency": "EUR", "rule": "flat"
        }));
        assert_eq!(percent_with_rule.unwrap_err().code, "invalid_rule");
    }

    #[test]
    fn a_rule_coupon_that_passes_every_check_asks_its_rule_and_one_that_fails_does_not() {
        let mut coupon = ten_percent();
        coupon.definition.discount = Discount::Rule(RuleRef {
            name: "flat".into(),
            config: "{}".into(),
        });
        coupon.definition.min_subtotal_minor = 1_000;
        assert_eq!(
            decide(&coupon, &cart(1_000), None, noon()),
            Decision::AskRule
        );
        assert_eq!(
            decide(&coupon, &cart(999), None, noon()),
            Decision::Reject(Reason::MinimumNotMet)
        );
        assert_eq!(discount_minor(&coupon.definition.discount, 1_000), 0);
    }

    #[test]
    fn a_refused_rule_config_is_told_apart_by_the_rule_code() {
        let of = |code| {
            let r = ConfigRefusal::of(code);
            (r.status, r.code)
        };
        assert_eq!(of("unknown_rule"), (404, "unknown_rule"));
        assert_eq!(of("busy"), (503, "rules_busy"));
        for code in ["invalid_config", "trap", "out_of_fuel", "invalid_output"] {
            assert_eq!(of(code), (422, "invalid_rule_config"), "{code}");
        }
    }

    #[test]
    fn every_rejection_is_explained_with_the_coupon_and_the_fact_that_failed_it() {
        let mut d = ten_percent().definition;
        d.min_subtotal_minor = 5_000;
        d.valid_from = Some(noon());
        d.valid_until = Some(noon());
        d.usage_limit = Some(1);
        d.per_customer_limit = Some(2);
        let explained = |reason| explain(reason, "SAVE10", Some(&d), "USD", 900);
        assert_eq!(
            explain(Reason::UnknownCoupon, "NOPE", None, "EUR", 1),
            "there is no coupon NOPE"
        );
        assert_eq!(
            explained(Reason::CurrencyMismatch),
            "coupon SAVE10 is for orders in EUR; this order is in USD"
        );
        assert!(explained(Reason::Expired).starts_with("coupon SAVE10 expired at 20"));
        assert!(explained(Reason::NotYetValid).starts_with("coupon SAVE10 is valid from 20"));
        assert!(explained(Reason::MinimumNotMet).contains("at least 5000"));
        assert!(explained(Reason::MinimumNotMet).contains("this order's is 900"));
        assert_eq!(
            explained(Reason::UsageLimitReached),
            "coupon SAVE10 has been used once, its limit"
        );
        assert!(explained(Reason::CustomerLimitReached).contains("2 times per customer"));
        assert_eq!(
            explained(Reason::CouponDisabled),
            "coupon SAVE10 is disabled"
        );
        assert_eq!(
            explained(Reason::CouponArchived),
            "coupon SAVE10 is archived"
        );
        assert!(explained(Reason::RuleRejected).contains("rule did not apply"));
    }

    #[test]
    fn quote_lines_make_the_subtotal_and_a_given_subtotal_must_match_them() {
        let lines = json!([
            { "sku": "TEE", "quantity": 2, "unit_price_minor": 2_500 },
            { "sku": "MUG", "quantity": 1, "unit_price_minor": 900 }
        ]);
        let q = validate_quote(&json!({ "currency": "EUR", "lines": lines })).unwrap();
        assert_eq!(q.cart.subtotal_minor, 5_900);
        assert_eq!(q.cart.lines.len(), 2);
        assert_eq!(q.cart.lines[0].sku, "TEE");
        let code_of = |body: Value| validate_quote(&body).unwrap_err().code;
        for subtotal in [1, 5_900] {
            assert_eq!(
                code_of(json!({ "currency": "EUR", "subtotal_minor": subtotal, "lines": lines })),
                "subtotal_with_lines"
            );
        }
        let empty = json!({ "currency": "EUR", "subtotal_minor": 7, "lines": [] });
        assert_eq!(validate_quote(&empty).unwrap().cart.subtotal_minor, 7);
        // An integral number written as a float is an integer; 0.5 is not.
        let float = json!({ "currency": "EUR", "subtotal_minor": 2406.0 });
        assert_eq!(validate_quote(&float).unwrap().cart.subtotal_minor, 2406);
        assert_eq!(
            code_of(json!({ "currency": "EUR", "subtotal_minor": 2406.5 })),
            "invalid_subtotal_minor"
        );
        assert_eq!(
            code_of(
                json!({ "currency": "EUR", "lines": [ { "sku": "", "quantity": 1, "unit_price_minor": 1 } ] })
            ),
            "invalid_lines"
        );
        assert_eq!(
            code_of(
                json!({ "currency": "EUR", "lines": [ { "sku": "A", "quantity": 0, "unit_price_minor": 1 } ] })
            ),
            "invalid_lines"
        );
        assert_eq!(
            code_of(
                json!({ "currency": "EUR", "lines": [ { "sku": "A", "quantity": 1, "unit_price_minor": -1 } ] })
            ),
            "invalid_lines"
        );
        assert_eq!(
            code_of(json!({ "currency": "EUR", "lines": "TEE" })),
            "invalid_lines"
        );
        assert_eq!(
            code_of(json!({ "currency": "EUR" })),
            "invalid_subtotal_minor"
        );
    }
}
