//! A coupon's life after creation: its limits and validity window (and a
//! rule coupon's config) updated, disabled and enabled again, archived for good. A coupon that is not
//! ACTIVE is never redeemed (`coupon_disabled`, `coupon_archived`).
//!
//! The pure part (statuses, transitions, which fields an update may change)
//! is tested natively; the handlers read, decide and write conditionally.
use crate::domain::{self, Coupon, Discount};
use crate::{check_rule_config, find, store, view};
use mercato_sdk::prelude::*;
use mercato_sdk::validate::Invalid;
use serde_json::Value;

/// Where a coupon is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Redeemable (within its window and limits).
    Active,
    /// Not redeemable until enabled again.
    Disabled,
    /// Not redeemable, for good; kept for its history of redemptions.
    Archived,
}

impl Status {
    /// The stored and serialized form.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "ACTIVE",
            Status::Disabled => "DISABLED",
            Status::Archived => "ARCHIVED",
        }
    }

    /// The stored form read back.
    pub fn parse(raw: &str) -> Option<Status> {
        [Status::Active, Status::Disabled, Status::Archived]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }

    /// Why a coupon with this status is not redeemed, if it is not.
    pub fn refusal(self) -> Option<domain::Reason> {
        match self {
            Status::Active => None,
            Status::Disabled => Some(domain::Reason::CouponDisabled),
            Status::Archived => Some(domain::Reason::CouponArchived),
        }
    }
}

/// What an operator asks of a coupon's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Disable,
    Enable,
    Archive,
}

/// The status after `action`; asking for the status a coupon has already is
/// no change. An archived coupon never changes again.
pub fn transition(from: Status, action: Action) -> Result<Status, Invalid> {
    match (from, action) {
        (Status::Archived, _) => Err(archived()),
        (_, Action::Disable) => Ok(Status::Disabled),
        (_, Action::Enable) => Ok(Status::Active),
        (_, Action::Archive) => Ok(Status::Archived),
    }
}

fn archived() -> Invalid {
    Invalid::new(
        "coupon_archived",
        "the coupon is archived; an archived coupon never changes again",
    )
}

/// What `POST /coupons/{code}` may change: the limits and the window, and a
/// rule coupon's config (checked by its rule again).
const UPDATABLE: &[&str] = &[
    "usage_limit",
    "per_customer_limit",
    "valid_from",
    "valid_until",
    "config",
];

/// The coupon's definition after `body` (`null` clears a field), checked by
/// the same rules as at creation, and a usage limit never below the
/// redemptions recorded.
pub fn updated(
    coupon: &Coupon,
    current: &Value,
    body: &Value,
) -> Result<domain::Definition, Invalid> {
    let Value::Object(changes) = body else {
        return Err(Invalid::new(
            "invalid_body",
            "the body must be a JSON object",
        ));
    };
    if changes.is_empty() {
        return Err(Invalid::new(
            "invalid_body",
            format!(
                "nothing to change; an update names some of: {}",
                UPDATABLE.join(", ")
            ),
        ));
    }
    if let Some(field) = changes.keys().find(|k| !UPDATABLE.contains(&k.as_str())) {
        return Err(Invalid::new(
            "field_not_updatable",
            format!(
                "`{field}` cannot change after creation; an update may change: {}",
                UPDATABLE.join(", ")
            ),
        ));
    }
    // The definition as created, with the changes laid over it, goes
    // through creation's checks (types, ranges, the window's order).
    let mut merged = current.clone();
    if let Value::Object(map) = &mut merged {
        map.retain(|k, _| !matches!(k.as_str(), "used" | "status"));
        for (k, v) in changes {
            map.insert(k.clone(), v.clone());
        }
    }
    let definition = domain::validate_definition(&merged)?;
    if let Some(limit) = definition.usage_limit
        && limit < coupon.used
    {
        return Err(Invalid::new(
            "usage_limit_below_used",
            format!(
                "usage_limit {limit} is below the {} redemptions recorded",
                coupon.used
            ),
        ));
    }
    Ok(definition)
}

/// A refusal caused by what the coupon already is rather than by the body
/// alone is a 409: a config for a coupon that is not a rule coupon, a usage
/// limit below the redemptions recorded, or a bound that crosses the stored
/// other bound of the validity window. The body's own faults stay 422.
fn conflict_with_state(e: Invalid, body: &Value, current: &Value) -> HttpError {
    let given = |field: &str| body.get(field).is_some_and(|v| !v.is_null());
    let state = match e.code {
        "usage_limit_below_used" => true,
        "invalid_config" => given("config") && current["kind"] != "rule",
        "invalid_validity_window" => !(given("valid_from") && given("valid_until")),
        _ => false,
    };
    if state {
        HttpError::conflict(e.code, &e.message)
    } else {
        e.into()
    }
}

/// `POST /coupons/{code}`: updates limits and validity (200 with the coupon).
pub fn update(req: &Request) -> HttpResult {
    let body: Value = req.json()?;
    let (coupon, status) = find_with_status(req.param("code"))?;
    if status == Status::Archived {
        return Err(archived().into_conflict());
    }
    let current = view(&coupon, status);
    let definition =
        updated(&coupon, &current, &body).map_err(|e| conflict_with_state(e, &body, &current))?;
    if config_changed(&coupon, &definition) {
        check_rule_config(&definition)?;
    }
    if !store::update_limits(&definition, clock::instant())? {
        return Err(HttpError::conflict(
            "usage_limit_below_used",
            "the coupon was redeemed meanwhile beyond the new usage_limit; read it and try again",
        ));
    }
    let (coupon, status) = find_with_status(req.param("code"))?;
    Ok(Response::json(200, &view(&coupon, status)))
}

/// True when an update gives a rule coupon another config: only then does its
/// rule check it again (a rule removed since creation does not block a change
/// of limits).
pub fn config_changed(coupon: &Coupon, definition: &domain::Definition) -> bool {
    match (&coupon.definition.discount, &definition.discount) {
        (Discount::Rule(before), Discount::Rule(after)) => before.config != after.config,
        _ => false,
    }
}

/// `POST /coupons/{code}/disable|enable|archive`.
pub fn act(req: &Request, action: Action) -> HttpResult {
    let (coupon, from) = find_with_status(req.param("code"))?;
    let to = transition(from, action).map_err(Invalid::into_conflict)?;
    if to != from && !store::set_status(&coupon.definition.code, from, to, clock::instant())? {
        return Err(HttpError::conflict(
            "conflict",
            "the coupon changed meanwhile; read it and try again",
        ));
    }
    Ok(Response::json(200, &view(&coupon, to)))
}

pub fn disable(req: &Request) -> HttpResult {
    act(req, Action::Disable)
}

pub fn enable(req: &Request) -> HttpResult {
    act(req, Action::Enable)
}

pub fn archive(req: &Request) -> HttpResult {
    act(req, Action::Archive)
}

fn find_with_status(raw: &str) -> Result<(Coupon, Status), HttpError> {
    let coupon = find(raw)?;
    let status = store::status_of(&coupon.definition.code)?
        .ok_or_else(|| HttpError::not_found("unknown_coupon", &format!("no coupon {raw}")))?;
    Ok((coupon, status))
}

/// A state conflict is a 409, not a 422: the request was fine, the coupon's
/// state refuses it.
trait IntoConflict {
    fn into_conflict(self) -> HttpError;
}

impl IntoConflict for Invalid {
    fn into_conflict(self) -> HttpError {
        HttpError::conflict(self.code, &self.message)
    }
}

/// The status of a stored coupon, for [`crate::lists`] filters.
pub fn status_filter(raw: &str) -> Result<&'static str, HttpError> {
    Status::parse(raw).map(Status::as_str).ok_or_else(|| {
        HttpError::bad_request(
            "invalid_status",
            &format!("status must be ACTIVE, DISABLED or ARCHIVED, got `{raw}`"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_move_until_archived() {
        use Action::*;
        use Status::*;
        assert_eq!(transition(Active, Disable), Ok(Disabled));
        assert_eq!(transition(Disabled, Enable), Ok(Active));
        assert_eq!(transition(Disabled, Disable), Ok(Disabled));
        assert_eq!(transition(Active, Archive), Ok(Archived));
        assert_eq!(transition(Disabled, Archive), Ok(Archived));
        for action in [Disable, Enable, Archive] {
            assert_eq!(
                transition(Archived, action).unwrap_err().code,
                "coupon_archived"
            );
        }
        for s in [Active, Disabled, Archived] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("active"), None);
        assert_eq!(Active.refusal(), None);
        assert_eq!(Disabled.refusal().unwrap().as_str(), "coupon_disabled");
        assert_eq!(Archived.refusal().unwrap().as_str(), "coupon_archived");
    }

    fn created() -> (Coupon, Value) {
        let body = json!({ "code": "SPRING", "kind": "percent", "percent": 10, "currency": "EUR",
            "usage_limit": 50, "valid_from": "2026-03-01T00:00:00Z" });
        let definition = domain::validate_definition(&body).unwrap();
        let coupon = Coupon {
            definition,
            used: 7,
        };
        let current = crate::view(&coupon, Status::Active);
        (coupon, current)
    }

    #[test]
    fn an_update_changes_limits_and_window_only() {
        let (coupon, current) = created();
        let d = updated(&coupon, &current, &json!({ "usage_limit": 100, "valid_from": null, "valid_until": "2026-06-01T00:00:00Z" })).unwrap();
        assert_eq!(d.usage_limit, Some(100));
        assert_eq!(d.valid_from, None);
        assert_eq!(
            d.valid_until.unwrap().to_string(),
            "2026-06-01T00:00:00.000Z"
        );
        assert_eq!(d.discount, coupon.definition.discount);
        for (body, code) in [
            (json!({ "percent": 50 }), "field_not_updatable"),
            (json!({ "code": "OTHER" }), "field_not_updatable"),
            (json!({}), "invalid_body"),
            (json!([1]), "invalid_body"),
            (json!({ "usage_limit": 6 }), "usage_limit_below_used"),
            (json!({ "usage_limit": 0 }), "invalid_usage_limit"),
            (
                json!({ "valid_until": "2026-01-01T00:00:00Z" }),
                "invalid_validity_window",
            ),
        ] {
            assert_eq!(
                updated(&coupon, &current, &body).unwrap_err().code,
                code,
                "{body}"
            );
        }
        // Exactly the redemptions recorded is a limit that holds.
        assert!(updated(&coupon, &current, &json!({ "usage_limit": 7 })).is_ok());
        // Only a rule coupon has a config.
        assert_eq!(
            updated(&coupon, &current, &json!({ "config": { "x": 1 } }))
                .unwrap_err()
                .code,
            "invalid_config"
        );
    }

    #[test]
    fn a_rule_coupons_config_may_change_and_only_a_new_one_is_checked_again() {
        let body = json!({ "code": "SPEND", "kind": "rule", "rule": "tiered-spend", "currency": "EUR",
            "config": { "tiers": [ { "min_subtotal": 100, "percent": 5 } ] } });
        let coupon = Coupon {
            definition: domain::validate_definition(&body).unwrap(),
            used: 0,
        };
        let current = crate::view(&coupon, Status::Active);
        let limits = updated(&coupon, &current, &json!({ "usage_limit": 10 })).unwrap();
        assert!(!config_changed(&coupon, &limits));
        let same = updated(&coupon, &current, &json!({ "config": current["config"] })).unwrap();
        assert!(!config_changed(&coupon, &same));
        let d = updated(&coupon, &current, &json!({ "config": { "tiers": [] } })).unwrap();
        assert!(config_changed(&coupon, &d));
        assert!(
            matches!(&d.discount, Discount::Rule(r) if r.name == "tiered-spend" && r.config == r#"{"tiers":[]}"#)
        );
        for (body, code) in [
            (json!({ "config": [1] }), "invalid_config"),
            (json!({ "rule": "other" }), "field_not_updatable"),
        ] {
            assert_eq!(
                updated(&coupon, &current, &body).unwrap_err().code,
                code,
                "{body}"
            );
        }
    }
}
