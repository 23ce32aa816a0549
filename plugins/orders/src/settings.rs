//! `GET /orders/settings` and `PUT /orders/settings`: the merchant's choice
//! of what happens to an order whose coupon does not apply
//! (`on_coupon_not_applicable`: `reject`, the default, or `proceed_without`).
use super::domain;
use super::store;
use mercato_sdk::prelude::*;
use serde_json::Value;

/// `GET /orders/settings`.
pub fn get(_req: &Request) -> HttpResult {
    Ok(Response::json(200, &store::settings()?))
}

/// `PUT /orders/settings`: orders already decided keep their outcome; the
/// next coupon that does not apply is handled by the new setting.
pub fn put(req: &Request) -> HttpResult {
    let body: Value = req.json()?;
    let settings = domain::read_settings(&body)?;
    store::set_settings(&settings, &clock::now())?;
    Ok(Response::json(200, &settings))
}
