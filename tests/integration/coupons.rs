//! A coupon's life after creation, on both backends: its limits and window
//! updated, disabled (orders naming it are rejected with the reason), enabled
//! again, archived for good, and listed by status; and an order whose coupon
//! does not apply, explained on the order and the checkout session, rejected
//! or placed without the discount by the merchant's setting.
use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn call(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    app.request(method, path, body.as_ref(), &[]).await
}

/// The codes of the coupons `path` lists.
async fn listed(app: &TestApp, path: &str) -> Vec<String> {
    let (status, page) = app.get(path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {page}");
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_owned())
        .collect()
}

/// Places an order of one `sku` with `coupon` through `POST /orders`;
/// returns it once settled.
async fn order_with(app: &TestApp, sku: &str, buyer: &str, coupon: &str) -> Value {
    let (status, body) = app
        .post(
            "/orders",
            &json!({ "buyer_id": buyer, "currency": "EUR", "items": [{ "sku": sku, "quantity": 1 }],
                "coupon_code": coupon, "shipping_address": shipping_address() }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.drain().await;
    let (_, order) = app
        .get(&format!("/orders/{}", body["id"].as_str().unwrap()))
        .await;
    order
}

on_both_backends!(
    a_coupon_is_updated_disabled_enabled_and_archived,
    a_coupon_is_updated_disabled_enabled_and_archived_on_sqlite,
    a_coupon_is_updated_disabled_enabled_and_archived_on_postgres,
);
async fn a_coupon_is_updated_disabled_enabled_and_archived(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = backend.shop_config(dir.path()).await;
    let _teardown = Teardown::new(&config, &FULL_SHOP);
    let app = TestApp::start(config, &FULL_SHOP).await;
    product(&app, "LIFE", 2_000, 50).await;
    let (status, created) = call(
        &app,
        "POST",
        "/coupons",
        Some(json!({ "code": "life10", "kind": "percent", "percent": 10, "currency": "EUR", "usage_limit": 5 })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "ACTIVE");
    app.drain().await;
    let applied = order_with(&app, "LIFE", "b1", "LIFE10").await;
    assert_eq!(applied["coupon_status"], "APPLIED", "{applied}");

    // Limits and window change; nothing else does, and no limit below use.
    let (status, updated) = call(
        &app,
        "POST",
        "/coupons/life10",
        Some(json!({ "usage_limit": 1, "per_customer_limit": 3, "valid_until": "2099-01-01T00:00:00Z" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (
            &updated["usage_limit"],
            &updated["per_customer_limit"],
            &updated["valid_until"],
            &updated["used"]
        ),
        (
            &json!(1),
            &json!(3),
            &json!("2099-01-01T00:00:00.000Z"),
            &json!(1)
        ),
        "{updated}"
    );
    // What the body gets wrong alone is a 422; what the coupon's state
    // refuses (a used count, a stored bound, its kind) a 409.
    let (invalid, conflict) = (StatusCode::UNPROCESSABLE_ENTITY, StatusCode::CONFLICT);
    for (body, status, code) in [
        (json!({ "percent": 50 }), invalid, "field_not_updatable"),
        (json!({ "usage_limit": 0 }), invalid, "invalid_usage_limit"),
        (
            json!({ "valid_from": "2100-01-02T00:00:00Z", "valid_until": "2100-01-01T00:00:00Z" }),
            invalid,
            "invalid_validity_window",
        ),
        (json!({}), invalid, "invalid_body"),
        (
            json!({ "valid_from": "2100-01-01T00:00:00Z" }),
            conflict,
            "invalid_validity_window",
        ),
        (json!({ "config": { "x": 1 } }), conflict, "invalid_config"),
    ] {
        let (got, refused) = call(&app, "POST", "/coupons/LIFE10", Some(body.clone())).await;
        assert_eq!(
            (got, &refused["error"]["code"]),
            (status, &json!(code)),
            "{body}: {refused}"
        );
    }
    // The limit of 1 is used up: the next order's coupon is refused by it.
    let limited = order_with(&app, "LIFE", "b2", "LIFE10").await;
    assert_eq!(limited["status"], "REJECTED", "{limited}");
    let (status, _) = call(
        &app,
        "POST",
        "/coupons/LIFE10",
        Some(json!({ "usage_limit": null })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Disabled: quoted and redeemed as coupon_disabled, until enabled again.
    let (status, disabled) = call(&app, "POST", "/coupons/LIFE10/disable", None).await;
    assert_eq!(
        (status, &disabled["status"]),
        (StatusCode::OK, &json!("DISABLED"))
    );
    let quote = json!({ "currency": "EUR", "subtotal_minor": 2_000 });
    let (_, q) = call(&app, "POST", "/coupons/LIFE10/quote", Some(quote.clone())).await;
    assert_eq!(
        (&q["applicable"], &q["reason"]),
        (&json!(false), &json!("coupon_disabled")),
        "{q}"
    );
    let refused = order_with(&app, "LIFE", "b3", "LIFE10").await;
    assert_eq!(refused["status"], "REJECTED", "{refused}");
    assert_eq!(listed(&app, "/coupons?status=DISABLED").await, ["LIFE10"]);
    assert!(listed(&app, "/coupons?status=ACTIVE").await.is_empty());
    let (status, enabled) = call(&app, "POST", "/coupons/LIFE10/enable", None).await;
    assert_eq!(
        (status, &enabled["status"]),
        (StatusCode::OK, &json!("ACTIVE"))
    );
    let again = order_with(&app, "LIFE", "b4", "LIFE10").await;
    assert_eq!(again["coupon_status"], "APPLIED", "{again}");

    // Archived: never redeemed or changed again, kept with its use.
    let (status, archived) = call(&app, "POST", "/coupons/LIFE10/archive", None).await;
    assert_eq!(
        (status, &archived["status"]),
        (StatusCode::OK, &json!("ARCHIVED"))
    );
    assert_eq!(archived["used"], 2, "{archived}");
    for (path, body) in [
        ("/coupons/LIFE10/enable", None),
        ("/coupons/LIFE10/disable", None),
        ("/coupons/LIFE10", Some(json!({ "usage_limit": 10 }))),
    ] {
        let (status, refused) = call(&app, "POST", path, body).await;
        assert_eq!(
            (status, &refused["error"]["code"]),
            (StatusCode::CONFLICT, &json!("coupon_archived")),
            "{path}: {refused}"
        );
    }
    let (_, q) = call(&app, "POST", "/coupons/LIFE10/quote", Some(quote)).await;
    assert_eq!(q["reason"], "coupon_archived", "{q}");
    assert_eq!(listed(&app, "/coupons?status=ARCHIVED").await, ["LIFE10"]);
    let (status, body) = app.get("/coupons?status=gone").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_status"))
    );
    let (status, _) = call(&app, "POST", "/coupons/NOPE1/disable", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// Opens a checkout session for one MUG with `coupon` and submits it;
/// returns the session once the saga has settled.
async fn checkout_with(app: &TestApp, buyer: &str, coupon: &str) -> Value {
    let (status, session) = app
        .post(
            "/checkout/sessions",
            &json!({ "buyer_id": buyer, "currency": "EUR", "items": [{ "sku": "MUG", "quantity": 1 }],
                "coupon_code": coupon, "shipping_address": shipping_address() }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let id = session["id"].as_str().unwrap();
    let (status, submitted) = app
        .post(&format!("/checkout/sessions/{id}/submit"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{submitted}");
    app.drain().await;
    let (status, session) = app.get(&format!("/checkout/sessions/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    session
}

async fn order_of(app: &TestApp, session: &Value) -> Value {
    let id = session["order_id"].as_str().expect("an order");
    let (status, order) = app.get(&format!("/orders/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{order}");
    order
}

async fn set_on_coupon_not_applicable(app: &TestApp, choice: &str) {
    let body = json!({ "on_coupon_not_applicable": choice });
    let (status, settings) = call(app, "PUT", "/orders/settings", Some(body.clone())).await;
    assert_eq!((status, &settings), (StatusCode::OK, &body));
    let (status, settings) = app.get("/orders/settings").await;
    assert_eq!((status, &settings), (StatusCode::OK, &body));
}

/// Asserts `rejection` (of an order or a session) is coupon SPEND's rule
/// declining the one-MUG cart, with `outcome`.
fn declined_by_the_rule(rejection: &Value, outcome: &str) {
    assert_eq!(
        (
            &rejection["code"],
            &rejection["rule_code"],
            &rejection["outcome"]
        ),
        (&json!("rule_rejected"), &json!("declined"), &json!(outcome)),
        "{rejection}"
    );
    let message = rejection["message"].as_str().unwrap();
    assert!(
        message.contains("`tiered-spend` 1.0.0")
            && message.contains("subtotal 9.00 EUR is below the lowest tier 100.00 EUR"),
        "{message}"
    );
}

on_both_backends!(
    a_coupon_that_does_not_apply_is_explained_and_the_merchant_setting_decides_the_order,
    a_coupon_that_does_not_apply_is_explained_and_the_merchant_setting_decides_the_order_on_sqlite,
    a_coupon_that_does_not_apply_is_explained_and_the_merchant_setting_decides_the_order_on_postgres,
);
async fn a_coupon_that_does_not_apply_is_explained_and_the_merchant_setting_decides_the_order(
    backend: Backend,
) {
    // The shop as `mercato serve` runs it: checkout and the example rules too.
    let served: Vec<&str> = mercato::artifacts::EMBEDDED
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let config = backend.shop_config(dir.path()).await;
    let _teardown = Teardown::new(&config, &served);
    let app = TestApp::start(config, &served).await;
    product(&app, "MUG", 900, 50).await;
    for coupon in [
        json!({ "code": "SPEND", "kind": "rule", "rule": "tiered-spend", "currency": "EUR",
            "config": { "tiers": [{ "min_subtotal": 10_000, "percent": 5 }] } }),
        json!({ "code": "MIN50", "kind": "percent", "percent": 10, "currency": "EUR", "min_subtotal_minor": 5_000 }),
    ] {
        let (status, body) = app.post("/coupons", &coupon).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    app.drain().await;

    // By default the order fails, and the buyer sees why on the session.
    let (_, settings) = app.get("/orders/settings").await;
    assert_eq!(settings, json!({ "on_coupon_not_applicable": "reject" }));
    let session = checkout_with(&app, "b1", "SPEND").await;
    assert_eq!(session["status"], "FAILED", "{session}");
    declined_by_the_rule(&session["coupon_rejection"], "order_rejected");
    let failure = &session["failures"][0];
    assert_eq!(failure["reason"], "coupon", "{session}");
    assert!(
        failure["detail"].as_str().unwrap().starts_with(
            "coupon_rule_rejected: rule `tiered-spend` 1.0.0: declined: subtotal 9.00 EUR"
        ),
        "{session}"
    );
    let order = order_of(&app, &session).await;
    assert_eq!(
        (&order["status"], &order["coupon_status"]),
        (&json!("REJECTED"), &json!("REJECTED")),
        "{order}"
    );
    declined_by_the_rule(&order["coupon_rejection"], "order_rejected");

    // The setting takes one of two values.
    for body in [
        json!({ "on_coupon_not_applicable": "maybe" }),
        json!({}),
        json!({ "on_coupon_not_applicable": "reject", "also": 1 }),
    ] {
        let (status, refused) = call(&app, "PUT", "/orders/settings", Some(body.clone())).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {refused}"
        );
    }

    // Proceeding without: the order goes on at full price, the reason on it
    // and on the session, and it is paid as any other.
    set_on_coupon_not_applicable(&app, "proceed_without").await;
    let session = checkout_with(&app, "b2", "SPEND").await;
    assert_eq!(
        (&session["status"], &session["total_minor"]),
        (&json!("SUBMITTED"), &json!(900)),
        "{session}"
    );
    assert!(
        session["failures"].as_array().unwrap().is_empty(),
        "{session}"
    );
    declined_by_the_rule(&session["coupon_rejection"], "proceeded_without");
    let order = order_of(&app, &session).await;
    assert_eq!(
        (
            &order["status"],
            &order["coupon_status"],
            &order["discount_minor"],
            &order["total_minor"]
        ),
        (
            &json!("AWAITING_PAYMENT"),
            &json!("REJECTED"),
            &json!(0),
            &json!(900)
        ),
        "{order}"
    );
    declined_by_the_rule(&order["coupon_rejection"], "proceeded_without");
    let history = order["status_history"].as_array().unwrap();
    assert!(
        history.iter().any(|h| h["reason"]
            == "stock reserved, awaiting payment without coupon SPEND (rule_rejected)"),
        "{order}"
    );
    let intent = session["payment_intent_id"].as_str().expect("an intent");
    let (status, paid) = call(
        &app,
        "POST",
        &format!("/payments/intents/{intent}/confirm"),
        Some(json!({ "payment_method": "pm_card_ok" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    app.drain().await;
    assert_eq!(order_of(&app, &session).await["status"], "PAID");

    // Any coupon that does not apply is explained, a built-in one too.
    let order = order_with(&app, "MUG", "b3", "MIN50").await;
    assert_eq!(order["status"], "AWAITING_PAYMENT", "{order}");
    let rejection = &order["coupon_rejection"];
    assert_eq!(
        (
            &rejection["code"],
            &rejection["rule_code"],
            &rejection["outcome"]
        ),
        (
            &json!("minimum_not_met"),
            &Value::Null,
            &json!("proceeded_without")
        ),
        "{order}"
    );
    assert!(
        rejection["message"]
            .as_str()
            .unwrap()
            .contains("coupon MIN50 needs a subtotal of at least 5000"),
        "{order}"
    );
    set_on_coupon_not_applicable(&app, "reject").await;
    let order = order_with(&app, "MUG", "b4", "MIN50").await;
    assert_eq!(order["status"], "REJECTED", "{order}");
    assert_eq!(
        (
            &order["coupon_rejection"]["code"],
            &order["coupon_rejection"]["outcome"]
        ),
        (&json!("minimum_not_met"), &json!("order_rejected")),
        "{order}"
    );
    // A code with no coupon is explained too; SPEND was never redeemed.
    let plain = order_with(&app, "MUG", "b5", "NOPE1").await;
    assert_eq!(
        plain["coupon_rejection"]["code"], "unknown_coupon",
        "{plain}"
    );
    assert_eq!(
        plain["coupon_rejection"]["message"],
        "there is no coupon NOPE1"
    );
    assert!(
        list_all(&app, "/coupons/SPEND/redemptions")
            .await
            .is_empty()
    );
    let (_, events) = app.get("/admin/events").await;
    assert_eq!(events["dead_letters"], json!([]), "{events}");
    app.stop().await;
}
