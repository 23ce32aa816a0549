//! The list endpoints (`GET /`, `GET /{code}/redemptions`) under the SDK's
//! list convention: `limit`, `starting_after` / `ending_before`, newest
//! first, `{"object": "list", "data", "has_more"}`.
use crate::domain::Code;
use crate::{find, store, view};
use mercato_sdk::list::{self, ListQuery, Listing};
use mercato_sdk::prelude::*;

/// `GET /coupons[?status=…]`: every coupon, newest first. A coupon's id is
/// its code (the table's key), so the order is `(created_at, code)` and the
/// cursors are codes.
pub fn list_coupons(req: &Request) -> HttpResult {
    let query = ListQuery::parse(req, &["status"])?;
    let mut listing = Listing::new("coupons", "code, status").sorted_by("created_at", "code");
    if let Some(status) = query.filter("status") {
        listing = listing.condition(
            "status = $?",
            crate::lifecycle::status_filter(status)?.into(),
        );
    }
    let (rows, has_more) = query.fetch(listing)?;
    // A page is at most 100 coupons, each read by its key with the same
    // query (and the same checks of the stored rules) as `GET /coupons/{code}`.
    let mut coupons = Vec::with_capacity(rows.len());
    for row in rows {
        let stored = row["code"].as_str().unwrap_or_default();
        let corrupt = || Error::Internal(format!("coupon {stored} vanished or is unreadable"));
        let code = Code::parse(stored).ok_or_else(corrupt)?;
        let coupon = store::find_coupon(&code)?.ok_or_else(corrupt)?;
        let status = row["status"]
            .as_str()
            .and_then(crate::lifecycle::Status::parse)
            .ok_or_else(corrupt)?;
        coupons.push(view(&coupon, status));
    }
    Ok(list::page(coupons, has_more))
}

/// `GET /coupons/{code}/redemptions[?status=…]`: who redeemed the coupon, for
/// how much and which rule version priced each, newest first by
/// `(created_at, id)`. 404 for an unknown coupon.
pub fn list_redemptions(req: &Request) -> HttpResult {
    let query = ListQuery::parse(req, &["status"])?;
    let coupon = find(req.param("code"))?;
    let mut listing = Listing::new(
        "coupon_redemptions",
        "id, code, order_id, buyer_id, discount_minor, currency, status, created_at, \
         reverted_at, rule, rule_version, reason",
    )
    .condition("code = $?", coupon.definition.code.as_str().into());
    if let Some(status) = query.filter("status") {
        listing = listing.condition("status = $?", redemption_status(status)?.into());
    }
    query.respond(listing)
}

/// The stored statuses of a redemption.
const REDEMPTION_STATUSES: [&str; 2] = ["ACTIVE", "REVERTED"];

/// The `status` filter: a stored status, or a 400 naming them (a misspelt
/// status would otherwise list nothing, silently).
fn redemption_status(raw: &str) -> Result<&'static str, HttpError> {
    REDEMPTION_STATUSES
        .into_iter()
        .find(|s| *s == raw)
        .ok_or_else(|| {
            HttpError::bad_request(
                "invalid_status",
                &format!(
                    "status must be one of {}, got `{raw}`",
                    REDEMPTION_STATUSES.join(", ")
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_filter_takes_the_stored_spellings_only() {
        assert_eq!(redemption_status("ACTIVE"), Ok("ACTIVE"));
        assert_eq!(redemption_status("REVERTED"), Ok("REVERTED"));
        for raw in ["", "active", "USED"] {
            let e = redemption_status(raw).unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (400, "invalid_status"));
            assert!(e.message.contains("ACTIVE, REVERTED"), "{}", e.message);
        }
    }
}
