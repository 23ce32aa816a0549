//! The coupons database: every SQL statement of the context lives here.
//!
//! Writes that depend on state are conditional and report whether they took
//! effect (the changed-row count), because a failed statement would abort the
//! whole call's transaction.
use crate::domain::{Code, Coupon, Currency, Definition, Discount, Instant, RuleRef};
use crate::lifecycle::Status;
use mercato_sdk::db::Row;
use mercato_sdk::prelude::*;
use serde::Deserialize;

/// Inserts a coupon and its rules; `false` when the code is taken.
pub fn insert_coupon(definition: &Definition, now: Instant) -> Result<bool, Error> {
    let now = now.to_string();
    let code = definition.code.as_str();
    let inserted = db::execute(
        "INSERT INTO coupons (code, used, usage_limit, version, created_at, updated_at) \
         VALUES ($1, 0, $2, 1, $3, $3) ON CONFLICT (code) DO NOTHING",
        &[code.into(), definition.usage_limit.into(), now.into()],
    )?;
    if inserted == 0 {
        return Ok(false);
    }
    let (kind, percent, amount_minor, rule) = match &definition.discount {
        Discount::Percent(p) => ("PERCENT", Some(*p), None, None),
        Discount::Fixed(a) => ("FIXED", None, Some(*a), None),
        Discount::Rule(rule) => ("RULE", None, None, Some(rule)),
    };
    db::execute(
        "INSERT INTO coupon_rules (code, kind, percent, amount_minor, currency, \
         min_subtotal_minor, valid_from, valid_until, per_customer_limit, rule, config) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            code.into(),
            kind.into(),
            percent.into(),
            amount_minor.into(),
            definition.currency.as_str().into(),
            definition.min_subtotal_minor.into(),
            definition.valid_from.map(|t| t.to_string()).into(),
            definition.valid_until.map(|t| t.to_string()).into(),
            definition.per_customer_limit.into(),
            rule.map(|r| r.name.clone()).into(),
            rule.map(|r| r.config.clone()).into(),
        ],
    )?;
    Ok(true)
}

/// The coupon with its rules and recorded usage.
pub fn find_coupon(code: &Code) -> Result<Option<Coupon>, Error> {
    let rows = db::query(
        "SELECT c.code, c.used, c.usage_limit, r.kind, r.percent, r.amount_minor, r.currency, \
         r.min_subtotal_minor, r.valid_from, r.valid_until, r.per_customer_limit, r.rule, r.config \
         FROM coupons c JOIN coupon_rules r ON r.code = c.code WHERE c.code = $1",
        &[code.as_str().into()],
    )?;
    rows.first().map(coupon_from_row).transpose()
}

/// Rebuilds the domain value; a row the domain would not accept means the
/// database was changed behind the plugin's back, which is an internal error.
fn coupon_from_row(row: Row<'_>) -> Result<Coupon, Error> {
    let stored = row.text("code")?;
    let corrupt =
        |what: &str| Error::Internal(format!("coupon {stored}: stored {what} is invalid"));
    let discount = match (
        row.text("kind")?,
        row.opt_int("percent")?,
        row.opt_int("amount_minor")?,
    ) {
        ("PERCENT", Some(p), None) => Discount::Percent(p),
        ("FIXED", None, Some(a)) => Discount::Fixed(a),
        ("RULE", None, None) => Discount::Rule(RuleRef {
            name: row
                .opt_text("rule")?
                .ok_or_else(|| corrupt("rule"))?
                .to_owned(),
            config: row
                .opt_text("config")?
                .ok_or_else(|| corrupt("config"))?
                .to_owned(),
        }),
        _ => return Err(corrupt("kind")),
    };
    let instant = |column: &str| -> Result<Option<Instant>, Error> {
        row.opt_text(column)?
            .map(|t| Instant::parse(t).ok_or_else(|| corrupt(column)))
            .transpose()
    };
    Ok(Coupon {
        definition: Definition {
            code: Code::parse(stored).ok_or_else(|| corrupt("code"))?,
            discount,
            currency: Currency::parse(row.text("currency")?).ok_or_else(|| corrupt("currency"))?,
            min_subtotal_minor: row.int("min_subtotal_minor")?,
            valid_from: instant("valid_from")?,
            valid_until: instant("valid_until")?,
            usage_limit: row.opt_int("usage_limit")?,
            per_customer_limit: row.opt_int("per_customer_limit")?,
        },
        used: row.int("used")?,
    })
}

/// How many ACTIVE redemptions of `code` the buyer holds.
pub fn active_redemptions_of_buyer(code: &Code, buyer_id: &str) -> Result<i64, Error> {
    let rows = db::query(
        "SELECT COUNT(*) AS n FROM coupon_redemptions \
         WHERE code = $1 AND buyer_id = $2 AND status = 'ACTIVE'",
        &[code.as_str().into(), buyer_id.into()],
    )?;
    rows.first().map_or(Ok(0), |r| r.int("n"))
}

/// Whether the order already has a redemption, ACTIVE or REVERTED.
pub fn order_has_redemption(order_id: &str) -> Result<bool, Error> {
    let rows = db::query(
        "SELECT id FROM coupon_redemptions WHERE order_id = $1",
        &[order_id.into()],
    )?;
    Ok(!rows.is_empty())
}

/// Takes one use of the coupon if its limit allows; `false` when exhausted.
/// The condition is in the UPDATE itself, so the limit holds however events
/// interleave.
pub fn claim_use(code: &Code, now: Instant) -> Result<bool, Error> {
    let changed = db::execute(
        "UPDATE coupons SET used = used + 1, version = version + 1, updated_at = $2 \
         WHERE code = $1 AND status = 'ACTIVE' AND (usage_limit IS NULL OR used < usage_limit)",
        &[code.as_str().into(), now.to_string().into()],
    )?;
    Ok(changed == 1)
}

/// The coupon's status, if it exists.
pub fn status_of(code: &Code) -> Result<Option<Status>, Error> {
    let rows = db::query(
        "SELECT status FROM coupons WHERE code = $1",
        &[code.as_str().into()],
    )?;
    rows.first()
        .map(|row| {
            let raw = row.text("status")?;
            Status::parse(raw).ok_or_else(|| {
                Error::Internal(format!(
                    "coupon {}: stored status `{raw}` is invalid",
                    code.as_str()
                ))
            })
        })
        .transpose()
}

/// Moves the coupon from status `from` to `to`; `false` if it is no longer
/// at `from` (changed meanwhile).
pub fn set_status(code: &Code, from: Status, to: Status, now: Instant) -> Result<bool, Error> {
    let changed = db::execute(
        "UPDATE coupons SET status = $3, version = version + 1, updated_at = $4 \
         WHERE code = $1 AND status = $2",
        &[
            code.as_str().into(),
            from.as_str().into(),
            to.as_str().into(),
            now.to_string().into(),
        ],
    )?;
    Ok(changed == 1)
}

/// Writes an updated definition's limits and window (and a rule coupon's
/// config); `false` when the coupon has meanwhile been redeemed beyond the new
/// usage limit.
pub fn update_limits(definition: &Definition, now: Instant) -> Result<bool, Error> {
    let code = definition.code.as_str();
    let changed = db::execute(
        "UPDATE coupons SET usage_limit = $2, version = version + 1, updated_at = $3 \
         WHERE code = $1 AND (CAST($2 AS BIGINT) IS NULL OR used <= $2)",
        &[
            code.into(),
            definition.usage_limit.into(),
            now.to_string().into(),
        ],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    // A rule coupon's config may change; other coupons have none (NULL keeps it).
    let config = match &definition.discount {
        Discount::Rule(rule) => Some(rule.config.as_str()),
        _ => None,
    };
    db::execute(
        "UPDATE coupon_rules SET per_customer_limit = $2, valid_from = $3, valid_until = $4, \
         config = COALESCE(CAST($5 AS TEXT), config) WHERE code = $1",
        &[
            code.into(),
            definition.per_customer_limit.into(),
            definition.valid_from.map(|t| t.to_string()).into(),
            definition.valid_until.map(|t| t.to_string()).into(),
            config.into(),
        ],
    )?;
    Ok(true)
}

/// Gives back one use taken by [`claim_use`]; `false` if there was none to give.
pub fn release_use(code: &str, now: Instant) -> Result<bool, Error> {
    let changed = db::execute(
        "UPDATE coupons SET used = used - 1, version = version + 1, updated_at = $2 \
         WHERE code = $1 AND used > 0",
        &[code.into(), now.to_string().into()],
    )?;
    Ok(changed == 1)
}

/// A redemption about to be recorded.
pub struct NewRedemption<'a> {
    pub code: &'a Code,
    pub order_id: &'a str,
    pub buyer_id: &'a str,
    pub discount_minor: i64,
    pub currency: &'a Currency,
    /// The rule and version that priced it, and the reason it gave.
    pub rule: Option<(&'a str, &'a str)>,
    pub reason: Option<&'a str>,
}

/// Records an ACTIVE redemption; `false` if the order already has one.
pub fn insert_redemption(redemption: &NewRedemption<'_>, now: Instant) -> Result<bool, Error> {
    let changed = db::execute(
        "INSERT INTO coupon_redemptions \
         (id, code, order_id, buyer_id, discount_minor, currency, status, created_at, \
          rule, rule_version, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, 'ACTIVE', $7, $8, $9, $10) ON CONFLICT (order_id) DO NOTHING",
        &[
            new_id().into(),
            redemption.code.as_str().into(),
            redemption.order_id.into(),
            redemption.buyer_id.into(),
            redemption.discount_minor.into(),
            redemption.currency.as_str().into(),
            now.to_string().into(),
            redemption.rule.map(|(name, _)| name).into(),
            redemption.rule.map(|(_, version)| version).into(),
            redemption.reason.into(),
        ],
    )?;
    Ok(changed == 1)
}

/// The order's ACTIVE redemption: its id and code.
#[derive(Deserialize)]
pub struct ActiveRedemption {
    pub id: String,
    pub code: String,
}

pub fn active_redemption_of_order(order_id: &str) -> Result<Option<ActiveRedemption>, Error> {
    db::query(
        "SELECT id, code FROM coupon_redemptions WHERE order_id = $1 AND status = 'ACTIVE'",
        &[order_id.into()],
    )?
    .parse_first()
}

/// Marks the redemption REVERTED; `false` if it was no longer ACTIVE.
pub fn revert_redemption(id: &str, now: Instant) -> Result<bool, Error> {
    let changed = db::execute(
        "UPDATE coupon_redemptions SET status = 'REVERTED', reverted_at = $2 \
         WHERE id = $1 AND status = 'ACTIVE'",
        &[id.into(), now.to_string().into()],
    )?;
    Ok(changed == 1)
}
