//! API keys with roles, on both backends: secret (merchant) and publishable
//! (storefront) keys made and revoked through the admin API; each class of
//! route (public, buyer, merchant) admits exactly its roles before the plugin
//! runs; a buyer reads back only what they hold the client secret of, so no
//! buyer reads another's order; a storefront walks checkout to a paid order
//! with a publishable key alone; and a plugin never sees the credential.
use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A request with `key` as the bearer credential (or none).
async fn with_key(
    app: &TestApp,
    key: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let auth = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    app.request_anonymous(method, path, body.as_ref(), &headers)
        .await
}

async fn create_key(app: &TestApp, kind: &str, name: &str) -> (String, String) {
    let (status, made) = app
        .post("/admin/keys", &json!({ "kind": kind, "name": name }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["kind"], kind);
    (
        made["id"].as_str().unwrap().to_owned(),
        made["key"].as_str().unwrap().to_owned(),
    )
}

fn order_body(buyer: &str) -> Value {
    json!({ "buyer_id": buyer, "currency": "EUR", "items": [{ "sku": "KEYS", "quantity": 1 }],
        "shipping_address": shipping_address() })
}

on_both_backends!(
    each_route_class_admits_only_its_roles_and_a_buyer_reads_only_their_own,
    each_route_class_admits_only_its_roles_and_a_buyer_reads_only_their_own_on_sqlite,
    each_route_class_admits_only_its_roles_and_a_buyer_reads_only_their_own_on_postgres,
);
async fn each_route_class_admits_only_its_roles_and_a_buyer_reads_only_their_own(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = backend.shop_config(dir.path()).await;
    let _teardown = Teardown::new(&config, &FULL_SHOP);
    let app = TestApp::start(config, &FULL_SHOP).await;
    product(&app, "KEYS", 1_500, 100).await;
    app.drain().await;

    let (secret_id, sk) = create_key(&app, "secret", "back office").await;
    let (publishable_id, pk) = create_key(&app, "publishable", "storefront").await;
    assert!(sk.starts_with("sk_") && pk.starts_with("pk_"));
    let (status, listed) = app.get("/admin/keys").await;
    assert_eq!(status, StatusCode::OK);
    let text = listed.to_string();
    assert!(
        text.contains(&secret_id) && text.contains(&publishable_id),
        "{listed}"
    );
    assert!(
        !text.contains(&sk) && !text.contains(&pk),
        "a key is shown once"
    );
    let stored = std::fs::read_to_string(dir.path().join("api-keys.json")).unwrap();
    assert!(
        !stored.contains(&sk) && !stored.contains(&pk),
        "the host keeps digests only"
    );
    // Keys are the admin token's business, not a key's.
    assert_eq!(
        with_key(&app, Some(&sk), "GET", "/admin/keys", None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    // (route, body, what anonymous, publishable and secret callers get).
    let new_product =
        |sku: &str| json!({ "sku": sku, "name": sku, "price_minor": 100, "currency": "EUR" });
    type Case = (&'static str, &'static str, Option<Value>, [StatusCode; 3]);
    let cases: Vec<Case> = vec![
        // public
        ("GET", "/products", None, [StatusCode::OK; 3]),
        ("GET", "/inventory/items/KEYS", None, [StatusCode::OK; 3]),
        ("GET", "/search/products?q=KEYS", None, [StatusCode::OK; 3]),
        // buyer
        (
            "POST",
            "/orders",
            Some(order_body("b-matrix")),
            [
                StatusCode::UNAUTHORIZED,
                StatusCode::CREATED,
                StatusCode::CREATED,
            ],
        ),
        // merchant
        (
            "POST",
            "/products",
            Some(new_product("KEYS-2")),
            [
                StatusCode::UNAUTHORIZED,
                StatusCode::FORBIDDEN,
                StatusCode::CREATED,
            ],
        ),
        (
            "GET",
            "/orders?buyer_id=b-matrix",
            None,
            [
                StatusCode::UNAUTHORIZED,
                StatusCode::FORBIDDEN,
                StatusCode::OK,
            ],
        ),
        (
            "PUT",
            "/inventory/settings",
            Some(json!({ "reservation_ttl_ms": 900_000 })),
            [
                StatusCode::UNAUTHORIZED,
                StatusCode::FORBIDDEN,
                StatusCode::OK,
            ],
        ),
        (
            "GET",
            "/notifications",
            None,
            [
                StatusCode::UNAUTHORIZED,
                StatusCode::FORBIDDEN,
                StatusCode::OK,
            ],
        ),
        (
            "GET",
            "/checkout/unknown-route",
            None,
            [
                StatusCode::UNAUTHORIZED,
                StatusCode::FORBIDDEN,
                StatusCode::NOT_FOUND,
            ],
        ),
    ];
    let before = count(
        app.host.config(),
        "products",
        "SELECT COUNT(*) FROM products",
    )
    .await;
    for (method, path, body, expected) in &cases {
        for (key, want) in [None, Some(pk.as_str()), Some(sk.as_str())]
            .into_iter()
            .zip(expected)
        {
            let (status, answer) = with_key(&app, key, method, path, body.clone()).await;
            assert_eq!(
                status,
                *want,
                "{method} {path} with {:?}: {answer}",
                key.map(|k| &k[..3])
            );
            let code = &answer["error"]["code"];
            match status {
                StatusCode::UNAUTHORIZED => assert_eq!(code, "authentication_required"),
                StatusCode::FORBIDDEN => assert_eq!(code, "forbidden"),
                _ => {}
            }
        }
    }
    let after = count(
        app.host.config(),
        "products",
        "SELECT COUNT(*) FROM products",
    )
    .await;
    assert_eq!(after, before + 1, "only the secret key published a product");

    // A credential that is no key is refused even on a public route; a
    // forged role header changes nothing.
    for bogus in ["sk_not-a-key", "pk_", "Basic abc", "bearer"] {
        let (status, answer) = app
            .request_anonymous("GET", "/products", None, &[("authorization", bogus)])
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bogus}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_api_key");
    }
    let auth = format!("Bearer {pk}");
    let (status, _) = app
        .request_anonymous(
            "POST",
            "/products",
            Some(&new_product("KEYS-3")),
            &[("authorization", &auth), ("x-mercato-role", "merchant")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Two buyers of one storefront: each reads back only their own order.
    let (_, a) = with_key(&app, Some(&pk), "POST", "/orders", Some(order_body("b-a"))).await;
    let (_, b) = with_key(&app, Some(&pk), "POST", "/orders", Some(order_body("b-b"))).await;
    let (a_id, a_secret) = (
        a["id"].as_str().unwrap(),
        a["client_secret"].as_str().unwrap(),
    );
    let b_secret = b["client_secret"].as_str().unwrap();
    assert!(a_secret.starts_with(&format!("{a_id}_secret_")));
    let read = |secret: Option<&str>| {
        let path = match secret {
            Some(s) => format!("/orders/{a_id}?client_secret={s}"),
            None => format!("/orders/{a_id}"),
        };
        let pk = pk.clone();
        let app = &app;
        async move { with_key(app, Some(&pk), "GET", &path, None).await }
    };
    let (status, own) = read(Some(a_secret)).await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["buyer_id"], "b-a");
    let (status, other) = read(Some(b_secret)).await;
    assert_eq!(
        (status, other["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found")),
        "another buyer's secret opens nothing"
    );
    let (status, bare) = read(None).await;
    assert_eq!(
        (status, bare["error"]["code"].clone()),
        (StatusCode::FORBIDDEN, json!("client_secret_required"))
    );
    let (status, _) = with_key(
        &app,
        None,
        "GET",
        &format!("/orders/{a_id}?client_secret={a_secret}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the secret is no key");
    let (status, _) = with_key(&app, Some(&sk), "GET", &format!("/orders/{a_id}"), None).await;
    assert_eq!(status, StatusCode::OK, "the merchant reads any order");

    // A method a documented route lacks is the host's 405, before any key
    // check or idempotency record: never a 401 or an idempotency conflict.
    for key in [None, Some(pk.as_str())] {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![("idempotency-key", "same-key")];
        if let Some(a) = auth.as_deref() {
            headers.push(("authorization", a));
        }
        let (status, answer) = app
            .request_anonymous("PUT", "/orders", Some(&order_body("b-a")), &headers)
            .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{answer}");
        assert_eq!(answer["error"]["code"], "method_not_allowed");
    }

    // Revoked: the storefront's key authenticates no one from now on.
    let (status, revoked) = app
        .request(
            "DELETE",
            &format!("/admin/keys/{publishable_id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    let (status, answer) = with_key(&app, Some(&pk), "GET", "/products", None).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("invalid_api_key"))
    );
    assert_eq!(
        with_key(&app, Some(&sk), "GET", "/products", None).await.0,
        StatusCode::OK
    );
    app.stop().await;
}

on_both_backends!(
    a_storefront_checks_out_and_pays_with_a_publishable_key_alone,
    a_storefront_checks_out_and_pays_with_a_publishable_key_alone_on_sqlite,
    a_storefront_checks_out_and_pays_with_a_publishable_key_alone_on_postgres,
);
async fn a_storefront_checks_out_and_pays_with_a_publishable_key_alone(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = backend.shop_config(dir.path()).await;
    let _teardown = Teardown::new(&config, &FULL_SHOP);
    let app = TestApp::start(config, &FULL_SHOP).await;
    product(&app, "KEYS", 1_500, 100).await;
    app.drain().await;
    let (_, pk) = create_key(&app, "publishable", "storefront").await;
    let pk = Some(pk.as_str());

    let (status, session) = with_key(
        &app,
        pk,
        "POST",
        "/checkout/sessions",
        Some(json!({ "buyer_id": "b-store", "currency": "EUR", "items": [{ "sku": "KEYS", "quantity": 2 }],
            "shipping_address": shipping_address() })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let id = session["id"].as_str().unwrap();
    let secret = session["client_secret"].as_str().unwrap();
    let (status, _) = with_key(
        &app,
        pk,
        "POST",
        &format!("/checkout/sessions/{id}/submit"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "submitting needs the secret");
    let (status, submitted) = with_key(
        &app,
        pk,
        "POST",
        &format!("/checkout/sessions/{id}/submit?client_secret={secret}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{submitted}");
    app.drain().await;
    let (status, session) = with_key(
        &app,
        pk,
        "GET",
        &format!("/checkout/sessions/{id}?client_secret={secret}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let intent = session["payment_intent_id"].as_str().expect("an intent");
    let pay_secret = session["payment_client_secret"]
        .as_str()
        .expect("the intent's secret is shown to the session's holder");
    assert_eq!(
        session.get("client_secret"),
        None,
        "shown once, at creation"
    );

    let pay = |query: String| {
        let app = &app;
        let path = format!("/payments/intents/{intent}/confirm{query}");
        async move {
            with_key(
                app,
                pk,
                "POST",
                &path,
                Some(json!({ "payment_method": "pm_card_ok" })),
            )
            .await
        }
    };
    let (status, answer) = pay(String::new()).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::FORBIDDEN, json!("client_secret_required"))
    );
    let (status, answer) = pay(format!("?client_secret={secret}")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the session's secret is not the intent's: {answer}"
    );
    let (status, paid) = pay(format!("?client_secret={pay_secret}")).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["status"], "SUCCEEDED");
    app.drain().await;
    let order = session["order_id"].as_str().unwrap();
    let (_, order) = app.get(&format!("/orders/{order}")).await;
    assert_eq!(order["status"], "PAID", "{order}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_sees_the_callers_role_never_the_credential() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["hostile"]).await;
    // The test client sends the admin token; the client also forges a role.
    let (status, seen) = app
        .request(
            "GET",
            "/hostile/headers",
            None,
            &[("x-mercato-role", "public"), ("x-extra", "kept")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    let headers: Vec<(String, String)> = serde_json::from_value(seen).unwrap();
    let named = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert!(named("authorization").is_empty(), "{headers:?}");
    assert_eq!(named("x-mercato-role"), ["merchant"], "{headers:?}");
    assert_eq!(named("x-extra"), ["kept"]);
    // An undocumented route is the merchant's: a storefront key is refused.
    let (_, pk) = create_key(&app, "publishable", "").await;
    let (status, _) = with_key(&app, Some(&pk), "GET", "/hostile/headers", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.stop().await;
}
