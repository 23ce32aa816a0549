//! An order whose coupon does not apply: what coupons said, what the order
//! did about it, and the merchant's setting that decides it. Never a silent
//! REJECTED: the reason and the message stay on the order either way.
use mercato_sdk::validate::Invalid;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The merchant's choice when an order's coupon does not apply
/// (`PUT /orders/settings {"on_coupon_not_applicable": …}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnCouponNotApplicable {
    /// The order is REJECTED with the coupon's reason (the default: the buyer
    /// never pays more than the price they were shown with the coupon).
    #[default]
    Reject,
    /// The order goes on at full price, the coupon's reason recorded on it.
    ProceedWithout,
}

impl OnCouponNotApplicable {
    /// The stored and serialized form.
    pub fn as_str(self) -> &'static str {
        match self {
            OnCouponNotApplicable::Reject => "reject",
            OnCouponNotApplicable::ProceedWithout => "proceed_without",
        }
    }

    /// The stored form read back.
    pub fn parse(raw: &str) -> Option<Self> {
        [
            OnCouponNotApplicable::Reject,
            OnCouponNotApplicable::ProceedWithout,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// The orders settings a merchant may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Settings {
    pub on_coupon_not_applicable: OnCouponNotApplicable,
}

/// Validates the body of `PUT /orders/settings`: an object naming
/// `on_coupon_not_applicable`, nothing else.
pub fn read_settings(body: &Value) -> Result<Settings, Invalid> {
    let Value::Object(fields) = body else {
        return Err(Invalid::new(
            "invalid_body",
            "the body must be a JSON object",
        ));
    };
    if let Some(field) = fields.keys().find(|k| *k != "on_coupon_not_applicable") {
        return Err(Invalid::new(
            "unknown_field",
            format!("unknown field `{field}`; the settings are: on_coupon_not_applicable"),
        ));
    }
    let choice = fields
        .get("on_coupon_not_applicable")
        .and_then(Value::as_str)
        .and_then(OnCouponNotApplicable::parse)
        .ok_or_else(|| {
            Invalid::new(
                "invalid_on_coupon_not_applicable",
                "on_coupon_not_applicable must be \"reject\" or \"proceed_without\"",
            )
        })?;
    Ok(Settings {
        on_coupon_not_applicable: choice,
    })
}

/// What the order did about a coupon that does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CouponOutcome {
    /// The order was REJECTED.
    OrderRejected,
    /// The order went on without the discount.
    ProceededWithout,
}

impl CouponOutcome {
    /// The stored and serialized form.
    pub fn as_str(self) -> &'static str {
        match self {
            CouponOutcome::OrderRejected => "order_rejected",
            CouponOutcome::ProceededWithout => "proceeded_without",
        }
    }

    /// The stored form read back.
    pub fn parse(raw: &str) -> Option<Self> {
        [
            CouponOutcome::OrderRejected,
            CouponOutcome::ProceededWithout,
        ]
        .into_iter()
        .find(|o| o.as_str() == raw)
    }
}

/// Why the order's coupon did not apply, as coupons said
/// (`coupons.CouponRejected`), and what the order did about it. Shown on the
/// order and carried by `OrderRejected` / `OrderConfirmed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponRejection {
    /// coupons' reason: `expired`, `usage_limit_reached`, `rule_rejected`, …
    pub code: String,
    /// With `rule_rejected`, the rule's code: `declined`, `trap`, `unknown_rule`, …
    pub rule_code: Option<String>,
    /// For the buyer: the rule's own message, or what failed the coupon.
    pub message: String,
    pub outcome: CouponOutcome,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_setting_reads_either_choice_and_refuses_anything_else() {
        for choice in [
            OnCouponNotApplicable::Reject,
            OnCouponNotApplicable::ProceedWithout,
        ] {
            let body = json!({ "on_coupon_not_applicable": choice.as_str() });
            assert_eq!(
                read_settings(&body).unwrap().on_coupon_not_applicable,
                choice
            );
            assert_eq!(OnCouponNotApplicable::parse(choice.as_str()), Some(choice));
            assert_eq!(serde_json::to_value(choice).unwrap(), choice.as_str());
        }
        assert_eq!(
            Settings::default().on_coupon_not_applicable,
            OnCouponNotApplicable::Reject
        );
        for (body, code) in [
            (json!([]), "invalid_body"),
            (json!({}), "invalid_on_coupon_not_applicable"),
            (
                json!({ "on_coupon_not_applicable": "proceed" }),
                "invalid_on_coupon_not_applicable",
            ),
            (
                json!({ "on_coupon_not_applicable": true }),
                "invalid_on_coupon_not_applicable",
            ),
            (
                json!({ "on_coupon_not_applicable": "reject", "x": 1 }),
                "unknown_field",
            ),
        ] {
            assert_eq!(read_settings(&body).unwrap_err().code, code, "{body}");
        }
    }

    #[test]
    fn a_rejection_serializes_with_its_outcome() {
        let r = CouponRejection {
            code: "rule_rejected".into(),
            rule_code: Some("declined".into()),
            message: "too small".into(),
            outcome: CouponOutcome::ProceededWithout,
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({ "code": "rule_rejected", "rule_code": "declined", "message": "too small",
                    "outcome": "proceeded_without" })
        );
        for o in [
            CouponOutcome::OrderRejected,
            CouponOutcome::ProceededWithout,
        ] {
            assert_eq!(CouponOutcome::parse(o.as_str()), Some(o));
        }
    }
}
