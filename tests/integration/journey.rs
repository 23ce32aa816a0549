//! The whole shop from a buyer's checkout to the parcel on the doorstep, on
//! both backends: checkout, orders, inventory, payments, shipping and
//! notifications joined only by events, a merchant's webhook receiver that
//! fails its first attempts, and a checkout wiped in the middle of the flow.
use crate::common::receiver::Receiver;
use crate::common::*;
use mercato::config::{Config, PluginConfig};
use mercato::outbound::{AllowedHost, OutboundConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a test keeps until its end: the PostgreSQL namespace's tear-down and
/// the data directory.
type Cleanup = (Teardown, tempfile::TempDir);

/// The full shop on `backend`, its notifications allowed to reach a receiver
/// of the test's own.
async fn start(backend: Backend) -> (TestApp, Receiver, Config, Cleanup) {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = full_shop(backend, dir.path(), &receiver).await;
    let teardown = Teardown::new(&config, &FULL_SHOP);
    let app = TestApp::start(config.clone(), &FULL_SHOP).await;
    (app, receiver, config, (teardown, dir))
}

/// The full shop's configuration, its notifications allowed to reach `receiver`.
async fn full_shop(backend: Backend, dir: &std::path::Path, receiver: &Receiver) -> Config {
    let mut config = backend.shop_config(dir).await;
    config.plugins.insert(
        "notifications".into(),
        PluginConfig {
            outbound: Some(OutboundConfig {
                allowed_hosts: vec![AllowedHost::Pattern(format!("http://{}", receiver.addr))],
                backoff_base_ms: 10,
                backoff_max_ms: 50,
                ..OutboundConfig::default()
            }),
            ..PluginConfig::default()
        },
    );
    config
}

async fn ok(app: &TestApp, method: &str, path: &str, body: Value) -> Value {
    let (status, value) = app.request(method, path, Some(&body), &[]).await;
    assert!(
        status.is_success(),
        "{method} {path} {body} → {status} {value}"
    );
    value
}

async fn get(app: &TestApp, path: &str) -> Value {
    let (status, value) = app.get(path).await;
    assert_eq!(status, StatusCode::OK, "GET {path} → {value}");
    value
}

async fn open_and_submit(app: &TestApp, buyer: &str, sku: &str, quantity: i64) -> String {
    let session = ok(
        app,
        "POST",
        "/checkout/sessions",
        json!({ "buyer_id": buyer, "currency": "EUR", "items": [{ "sku": sku, "quantity": quantity }], "shipping_address": shipping_address() }),
    )
    .await;
    assert_eq!(session["status"], "OPEN", "{session}");
    let id = session["id"].as_str().unwrap().to_owned();
    let submitted = ok(
        app,
        "POST",
        &format!("/checkout/sessions/{id}/submit"),
        json!({}),
    )
    .await;
    assert_eq!(submitted["status"], "SUBMITTED", "{submitted}");
    id
}

/// The steps a session has reached, in saga order.
fn reached(session: &Value) -> Vec<&str> {
    session["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["at"].is_null())
        .map(|s| s["step"].as_str().unwrap())
        .collect()
}

async fn pay(app: &TestApp, intent_id: &str) {
    ok(
        app,
        "POST",
        &format!("/payments/intents/{intent_id}/confirm"),
        json!({ "payment_method": "pm_card_ok" }),
    )
    .await;
}

async fn carrier(app: &TestApp, shipment: &str, id: &str, status: &str, at: &str) -> Value {
    ok(
        app,
        "POST",
        &format!("/shipping/shipments/{shipment}/events"),
        json!({ "carrier_event_id": id, "status": status, "occurred_at": at, "location": "Hub" }),
    )
    .await
}

/// `v1` of a `Mercato-Signature` header, recomputed: HMAC-SHA256 of `t.body`.
fn signature_holds(header: &str, secret: &str, body: &[u8]) -> bool {
    use hmac::{Hmac, Mac};
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes()) == v1
}

async fn a_checkout_is_paid_shipped_tracked_and_announced(backend: Backend) {
    let (app, receiver, config, _cleanup) = start(backend).await;
    product(&app, "TEE", 2_500, 10).await;
    let hooks = [
        "orders.OrderPaid",
        "shipping.ShipmentDispatched",
        "shipping.ShipmentDelivered",
    ];
    // The receiver fails the first two attempts of every delivery.
    let endpoint = ok(
        &app,
        "POST",
        "/notifications/endpoints",
        json!({ "url": receiver.url("/flaky/2"), "event_types": hooks }),
    )
    .await;
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    let listed = get(&app, "/notifications/endpoints").await;
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is shown once"
    );
    app.drain().await;

    let session_id = open_and_submit(&app, "ada", "TEE", 2).await;
    app.drain().await;
    let session = get(&app, &format!("/checkout/sessions/{session_id}")).await;
    assert_eq!(
        reached(&session),
        [
            "SUBMITTED",
            "ORDER_PLACED",
            "STOCK_RESERVED",
            "AWAITING_PAYMENT"
        ],
        "{session}"
    );
    let order_id = session["order_id"].as_str().unwrap().to_owned();
    let intent_id = session["payment_intent_id"].as_str().unwrap().to_owned();
    let orders = get(&app, "/orders?buyer_id=ada").await;
    assert_eq!(
        orders["data"].as_array().unwrap().len(),
        1,
        "one order per session"
    );

    pay(&app, &intent_id).await;
    app.drain().await;
    let session = get(&app, &format!("/checkout/sessions/{session_id}")).await;
    assert_eq!(session["status"], "COMPLETED", "{session}");
    assert_eq!(
        reached(&session),
        [
            "SUBMITTED",
            "ORDER_PLACED",
            "STOCK_RESERVED",
            "AWAITING_PAYMENT",
            "PAID",
            "COMPLETED"
        ]
    );
    assert!(session["failures"].as_array().unwrap().is_empty());
    let shipments = get(&app, &format!("/shipping/shipments?order_id={order_id}")).await;
    let shipments = shipments["data"].as_array().unwrap();
    assert_eq!(shipments.len(), 1, "one shipment per paid order");
    let shipment_id = shipments[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(shipments[0]["status"], "LABEL_CREATED");
    assert_eq!(session["shipment_id"], shipment_id.as_str());
    assert!(
        shipments[0]["tracking_number"]
            .as_str()
            .unwrap()
            .starts_with("TEST")
    );
    assert_eq!(shipments[0]["shipping_address"]["country"], "GB");
    let order = get(&app, &format!("/orders/{order_id}")).await;
    assert_eq!(order["status"], "PAID");
    assert_eq!(order["fulfillment_status"], "UNFULFILLED");
    assert_eq!(order["checkout_session_id"], session_id.as_str());

    // The carrier reports: in transit, the same report again, delivered,
    // then a late in-transit scan that must not move the parcel back.
    let first = carrier(
        &app,
        &shipment_id,
        "c1",
        "IN_TRANSIT",
        "2026-12-01T10:00:00Z",
    )
    .await;
    assert_eq!(
        (first["applied"].as_bool(), first["duplicate"].as_bool()),
        (Some(true), Some(false))
    );
    let again = carrier(
        &app,
        &shipment_id,
        "c1",
        "IN_TRANSIT",
        "2026-12-01T10:00:00Z",
    )
    .await;
    assert_eq!(again["duplicate"], true);
    let delivered = carrier(
        &app,
        &shipment_id,
        "c3",
        "DELIVERED",
        "2026-12-02T09:00:00Z",
    )
    .await;
    assert_eq!(delivered["status"], "DELIVERED");
    let late = carrier(
        &app,
        &shipment_id,
        "c2",
        "IN_TRANSIT",
        "2026-12-01T18:00:00Z",
    )
    .await;
    assert_eq!(
        (late["applied"].as_bool(), late["status"].as_str()),
        (Some(false), Some("DELIVERED"))
    );
    app.drain().await;

    let shipment = get(&app, &format!("/shipping/shipments/{shipment_id}")).await;
    assert_eq!(shipment["status"], "DELIVERED");
    let reports: Vec<&str> = shipment["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["carrier_event_id"].as_str())
        .collect();
    assert_eq!(
        reports,
        ["c1", "c3", "c2"],
        "each report recorded once, in arrival order"
    );
    let order = get(&app, &format!("/orders/{order_id}")).await;
    assert_eq!(order["fulfillment_status"], "DELIVERED", "{order}");
    assert_eq!(order["shipments"][0]["status"], "DELIVERED");

    // The buyer's notifications, one per event.
    let inbox = get(&app, "/notifications?recipient=ada").await;
    let mut types: Vec<&str> = inbox["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["event_type"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "orders.OrderConfirmed",
            "orders.OrderPaid",
            "orders.OrderPlaced",
            "payments.PaymentCaptured",
            "shipping.ShipmentCreated",
            "shipping.ShipmentDelivered",
            "shipping.ShipmentDispatched",
        ]
    );

    // Every matching event reached the merchant, signed, retried under one
    // delivery id until the receiver answered.
    app.host
        .relay()
        .drain_outbound(Duration::from_secs(60))
        .await
        .unwrap();
    app.drain().await;
    let mut by_delivery: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for r in receiver.received() {
        by_delivery
            .entry(r.header("mercato-delivery-id").to_owned())
            .or_default()
            .push(r);
    }
    assert_eq!(by_delivery.len(), 3, "{:?}", by_delivery.keys());
    let mut announced = Vec::new();
    for (id, attempts) in &by_delivery {
        assert_eq!(
            attempts.len(),
            3,
            "delivery {id}: two failures, then success"
        );
        for a in attempts {
            assert_eq!(a.body, attempts[0].body, "retries resend the same body");
            assert_eq!(
                a.header("mercato-signature"),
                attempts[0].header("mercato-signature")
            );
            assert!(
                signature_holds(a.header("mercato-signature"), &secret, &a.body),
                "signature of {id}"
            );
        }
        let body: Value = serde_json::from_slice(&attempts[0].body).unwrap();
        assert_eq!(body["data"]["order_id"], order_id.as_str());
        assert_eq!(
            attempts[0].header("mercato-event-type"),
            body["type"].as_str().unwrap()
        );
        announced.push(body["type"].as_str().unwrap().to_owned());
    }
    announced.sort();
    let mut expected = hooks.to_vec();
    expected.sort();
    assert_eq!(announced, expected);
    let endpoint_id = endpoint["id"].as_str().unwrap();
    let deliveries = get(
        &app,
        &format!("/notifications/endpoints/{endpoint_id}/deliveries"),
    )
    .await;
    for d in deliveries["data"].as_array().unwrap() {
        assert_eq!(d["status"], "DELIVERED", "{d}");
        let outcomes: Vec<&str> = d["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(outcomes, ["retrying", "retrying", "delivered"], "{d}");
    }

    // Deleting the endpoint answers it once, disabled; then it is gone from
    // the API (every route 404, lists leave it out) and gets no new delivery.
    let path = format!("/notifications/endpoints/{endpoint_id}");
    let (status, deleted) = app.request("DELETE", &path, None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert!(deleted["disabled_at"].is_string(), "{deleted}");
    for (method, path) in [
        ("GET", path.clone()),
        ("DELETE", path.clone()),
        ("GET", format!("{path}/deliveries")),
    ] {
        let (status, body) = app.request(method, &path, None, &[]).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (StatusCode::NOT_FOUND, &json!("unknown_endpoint")),
            "{method} {path}"
        );
    }
    let listed = get(&app, "/notifications/endpoints").await;
    assert!(!listed.to_string().contains(endpoint_id), "{listed}");
    let deliveries_before = count(
        &config,
        "notifications",
        "SELECT COUNT(*) FROM webhook_deliveries",
    )
    .await;
    open_and_submit(&app, "ada", "TEE", 1).await;
    app.drain().await;
    assert_eq!(
        count(
            &config,
            "notifications",
            "SELECT COUNT(*) FROM webhook_deliveries"
        )
        .await,
        deliveries_before,
        "a deleted endpoint gets no delivery"
    );
    app.stop().await;
}

on_both_backends!(
    a_checkout_is_paid_shipped_tracked_and_announced,
    a_checkout_is_paid_shipped_tracked_and_announced_on_sqlite,
    a_checkout_is_paid_shipped_tracked_and_announced_on_postgres,
);

async fn wiping_checkout_mid_flow_loses_no_order_and_touches_no_other_context(backend: Backend) {
    let (app, _receiver, config, _cleanup) = start(backend).await;
    product(&app, "MUG", 1_200, 5).await;
    app.drain().await;
    let in_flight = open_and_submit(&app, "bo", "MUG", 1).await;
    let open = ok(
        &app,
        "POST",
        "/checkout/sessions",
        json!({ "buyer_id": "cy", "currency": "EUR", "items": [{ "sku": "MUG", "quantity": 1 }], "shipping_address": shipping_address() }),
    )
    .await;
    app.drain().await;
    let session = get(&app, &format!("/checkout/sessions/{in_flight}")).await;
    let order_id = session["order_id"].as_str().unwrap().to_owned();
    let intent_id = session["payment_intent_id"].as_str().unwrap().to_owned();
    let before = get(&app, &format!("/orders/{order_id}")).await;
    let stock_before = get(&app, "/inventory/items/MUG").await;

    // Only the operator, and only a plugin whose data is process state.
    let (status, _) = app
        .request_anonymous("POST", "/admin/plugins/checkout/wipe", None, &[])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .request("POST", "/admin/plugins/orders/wipe", None, &[])
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::CONFLICT, &json!("not_wipeable"))
    );
    let (status, body) = app
        .request("POST", "/admin/plugins/nope/wipe", None, &[])
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("unknown_plugin"))
    );
    let (status, wiped) = app
        .request("POST", "/admin/plugins/checkout/wipe", None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{wiped}");
    assert_eq!(
        count(
            &config,
            "checkout",
            "SELECT COUNT(*) FROM checkout_sessions"
        )
        .await,
        0
    );

    // The sessions are gone from view; nothing else changed.
    for id in [in_flight.as_str(), open["id"].as_str().unwrap()] {
        let (status, _) = app.get(&format!("/checkout/sessions/{id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    assert_eq!(get(&app, &format!("/orders/{order_id}")).await, before);
    assert_eq!(get(&app, "/inventory/items/MUG").await, stock_before);

    // The order the wiped session placed completes normally.
    pay(&app, &intent_id).await;
    app.drain().await;
    let order = get(&app, &format!("/orders/{order_id}")).await;
    assert_eq!(order["status"], "PAID", "{order}");
    let shipments = get(&app, &format!("/shipping/shipments?order_id={order_id}")).await;
    assert_eq!(shipments["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        host_count(
            &config,
            "checkout",
            "SELECT COUNT(*) FROM mercato_dead_letters"
        )
        .await,
        0,
        "events about wiped sessions are handled, not failed"
    );

    // New sessions work at once.
    let fresh = open_and_submit(&app, "di", "MUG", 1).await;
    app.drain().await;
    let session = get(&app, &format!("/checkout/sessions/{fresh}")).await;
    assert_eq!(
        reached(&session),
        [
            "SUBMITTED",
            "ORDER_PLACED",
            "STOCK_RESERVED",
            "AWAITING_PAYMENT"
        ]
    );
    assert_ne!(session["order_id"], order_id.as_str());
    app.stop().await;
}

on_both_backends!(
    wiping_checkout_mid_flow_loses_no_order_and_touches_no_other_context,
    wiping_checkout_mid_flow_loses_no_order_and_touches_no_other_context_on_sqlite,
    wiping_checkout_mid_flow_loses_no_order_and_touches_no_other_context_on_postgres,
);

async fn an_open_session_expires_and_a_submitted_one_does_not(backend: Backend) {
    let (app, _receiver, _config, _cleanup) = start(backend).await;
    product(&app, "CAP", 900, 5).await;
    app.drain().await;
    let body = |buyer: &str| json!({ "buyer_id": buyer, "currency": "EUR", "items": [{ "sku": "CAP", "quantity": 1 }], "shipping_address": shipping_address(), "ttl_seconds": 1 });
    let left_open = ok(&app, "POST", "/checkout/sessions", body("ed")).await;
    let submitted = ok(&app, "POST", "/checkout/sessions", body("flo")).await;
    let (left_open, submitted) = (
        left_open["id"].as_str().unwrap().to_owned(),
        submitted["id"].as_str().unwrap().to_owned(),
    );
    ok(
        &app,
        "POST",
        &format!("/checkout/sessions/{submitted}/submit"),
        json!({}),
    )
    .await;
    app.drain().await;
    app.host
        .relay()
        .drain_scheduled(
            mercato::clock::now_millis() + 1_000,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    app.drain().await;

    let expired = get(&app, &format!("/checkout/sessions/{left_open}")).await;
    assert_eq!(expired["status"], "EXPIRED", "{expired}");
    assert_eq!(expired["failures"][0]["reason"], "expired");
    let (status, body) = app
        .post(
            &format!("/checkout/sessions/{left_open}/submit"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::CONFLICT, &json!("session_not_open"))
    );
    let alive = get(&app, &format!("/checkout/sessions/{submitted}")).await;
    assert_eq!(alive["status"], "SUBMITTED", "{alive}");
    assert_eq!(reached(&alive).last(), Some(&"AWAITING_PAYMENT"));
    let orders = get(&app, "/orders?buyer_id=ed").await;
    assert!(
        orders["data"].as_array().unwrap().is_empty(),
        "an expired session placed nothing"
    );
    app.stop().await;
}

on_both_backends!(
    an_open_session_expires_and_a_submitted_one_does_not,
    an_open_session_expires_and_a_submitted_one_does_not_on_sqlite,
    an_open_session_expires_and_a_submitted_one_does_not_on_postgres,
);

/// The head of `plugin`'s outbox: how many events it has committed.
async fn outbox_head(app: &TestApp, plugin: &str) -> i64 {
    app.numbered().await;
    let events = get(app, "/admin/events").await;
    events["outboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["plugin"] == plugin)
        .unwrap_or_else(|| panic!("no outbox for {plugin}: {events}"))["head"]
        .as_i64()
        .unwrap()
}

on_both_backends!(
    a_declined_card_answers_402_and_keeps_the_attempt,
    a_declined_card_answers_402_and_keeps_the_attempt_on_sqlite,
    a_declined_card_answers_402_and_keeps_the_attempt_on_postgres,
);
async fn a_declined_card_answers_402_and_keeps_the_attempt(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = backend.shop_config(dir.path()).await;
    let _teardown = Teardown::new(&config, &FULL_SHOP);
    let app = TestApp::start(config, &FULL_SHOP).await;
    product(&app, "CARD", 1_500, 5).await;
    app.drain().await;
    let order = place(&app, "CARD", "decliner").await;
    app.drain().await;
    let intents = get(&app, &format!("/payments/intents?order_id={order}")).await;
    let intent = intents["data"][0]["id"].as_str().unwrap().to_owned();
    let head = outbox_head(&app, "payments").await;

    // The decline is a 402 that commits: the intent is FAILED with the
    // reason, and payments announced it (one more event in its outbox).
    let confirm = format!("/payments/intents/{intent}/confirm");
    let body = json!({ "payment_method": "pm_card_insufficient_funds" });
    let key = [("Idempotency-Key", "decline-1")];
    let (status, declined) = app.request("POST", &confirm, Some(&body), &key).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{declined}");
    assert_eq!(
        (
            &declined["error"]["code"],
            &declined["error"]["decline_code"]
        ),
        (&json!("card_declined"), &json!("insufficient_funds")),
        "{declined}"
    );
    assert_eq!(declined["error"]["payment_intent"]["status"], "FAILED");
    let stored = get(&app, &format!("/payments/intents/{intent}")).await;
    assert_eq!(
        (&stored["status"], &stored["failure_reason"]),
        (&json!("FAILED"), &json!("insufficient_funds")),
        "{stored}"
    );
    assert_eq!(outbox_head(&app, "payments").await, head + 1);

    // A retry with the same key replays the 402 and records nothing more.
    let (status, replayed) = app.request("POST", &confirm, Some(&body), &key).await;
    assert_eq!(
        (status, &replayed),
        (StatusCode::PAYMENT_REQUIRED, &declined)
    );
    assert_eq!(outbox_head(&app, "payments").await, head + 1);
    // A new attempt on the failed intent is refused and changes nothing.
    let (status, again) = app.request("POST", &confirm, Some(&body), &[]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(outbox_head(&app, "payments").await, head + 1);

    // The saga goes on from the recorded failure: the order is cancelled.
    app.drain().await;
    assert_eq!(
        get(&app, &format!("/orders/{order}")).await["status"],
        "CANCELLED"
    );
    app.stop().await;
}
