//! A coupon's life after creation, on both backends: its limits and window
//! updated, disabled (orders naming it are rejected with the reason), enabled
//! again, archived for good, and listed by status.
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

/// Places an order of one `sku` with `coupon`; returns it once settled.
async fn order_with(app: &TestApp, buyer: &str, coupon: &str) -> Value {
    let (status, body) = app
        .post(
            "/orders",
            &json!({ "buyer_id": buyer, "currency": "EUR", "items": [{ "sku": "LIFE", "quantity": 1 }],
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
    let applied = order_with(&app, "b1", "LIFE10").await;
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
    for (body, code) in [
        (json!({ "percent": 50 }), "field_not_updatable"),
        (json!({ "usage_limit": 0 }), "invalid_usage_limit"),
        (
            json!({ "valid_from": "2100-01-01T00:00:00Z" }),
            "invalid_validity_window",
        ),
        (json!({}), "invalid_body"),
    ] {
        let (status, refused) = call(&app, "POST", "/coupons/LIFE10", Some(body.clone())).await;
        assert_eq!(
            (status, &refused["error"]["code"]),
            (StatusCode::UNPROCESSABLE_ENTITY, &json!(code)),
            "{body}: {refused}"
        );
    }
    // The limit of 1 is used up: the next order's coupon is refused by it.
    let limited = order_with(&app, "b2", "LIFE10").await;
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
    let refused = order_with(&app, "b3", "LIFE10").await;
    assert_eq!(refused["status"], "REJECTED", "{refused}");
    assert_eq!(listed(&app, "/coupons?status=DISABLED").await, ["LIFE10"]);
    assert!(listed(&app, "/coupons?status=ACTIVE").await.is_empty());
    let (status, enabled) = call(&app, "POST", "/coupons/LIFE10/enable", None).await;
    assert_eq!(
        (status, &enabled["status"]),
        (StatusCode::OK, &json!("ACTIVE"))
    );
    let again = order_with(&app, "b4", "LIFE10").await;
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
