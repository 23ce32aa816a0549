//! `mercato demo`: one order from checkout to delivery and refund, step by step, against an
//! in-process shop on a fresh data directory. Each step prints the request and
//! the answer, and waits for the saga (the router) instead of sleeping.
use crate::app::App;
use crate::config::Config;
use crate::deploy::Component;
use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use tower::ServiceExt;

struct Demo {
    app: App,
    step: usize,
}

impl Demo {
    async fn call(
        &mut self,
        what: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        self.step += 1;
        println!("\n{}. {what}", self.step);
        match &body {
            Some(b) => println!("   → {method} {path} {b}"),
            None => println!("   → {method} {path}"),
        }
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            // The demo acts as the merchant: the admin token is a secret key too.
            .header(
                "authorization",
                format!("Bearer {}", self.app.admin_token()),
            )
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))?;
        let response = crate::http::app(self.app.clone()).oneshot(request).await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        println!("   ← {status} {}", summary(&value));
        anyhow::ensure!(
            status.is_success(),
            "{method} {path} answered {status}: {value}"
        );
        Ok(value)
    }

    /// A step that reads.
    async fn get(&mut self, what: &str, path: &str) -> anyhow::Result<Value> {
        self.call(what, "GET", path, None).await
    }

    /// A step that sends `body`.
    async fn post(&mut self, what: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(what, "POST", path, Some(body)).await
    }

    async fn settle(&self) -> anyhow::Result<()> {
        self.app
            .drain(Duration::from_secs(30))
            .await
            .map_err(anyhow::Error::msg)?;
        println!("   … events delivered");
        Ok(())
    }
}

/// A one-line view of a response: the fields a reader follows.
fn summary(value: &Value) -> String {
    let Value::Object(map) = value else {
        return value.to_string();
    };
    let keys = [
        "id",
        "sku",
        "status",
        "price_minor",
        "available",
        "reserved",
        "committed",
        "code",
        "used",
        "subtotal_minor",
        "discount_minor",
        "total_minor",
        "captured_minor",
        "refunded_minor",
        "refunded_total_minor",
        "order_id",
        "payment_intent_id",
        "fulfillment_status",
        "tracking_number",
        "applied",
        "balanced",
        "total_debit_minor",
        "total_credit_minor",
    ];
    let picked: serde_json::Map<String, Value> = keys
        .iter()
        .filter_map(|k| map.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    if picked.is_empty() {
        value.to_string()
    } else {
        Value::Object(picked).to_string()
    }
}

/// Where the demo buyer's order ships (`POST /orders` requires an address).
fn shipping_address() -> Value {
    json!({ "name": "Demo Buyer", "line1": "1 Example Street", "city": "Berlin", "postal_code": "10115", "country": "DE" })
}

/// Prints which of a checkout session's steps are reached, and when.
fn print_steps(session: &Value) {
    for step in session["steps"].as_array().into_iter().flatten() {
        println!(
            "   {:<16} {}",
            step["step"].as_str().unwrap_or("?"),
            step["at"].as_str().unwrap_or("—")
        );
    }
}

/// Runs the walkthrough. With `data_dir` the databases are kept there.
pub async fn run(data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let temporary = data_dir.is_none();
    let dir = data_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("mercato-demo-{}", uuid::Uuid::new_v4().simple()))
    });
    println!(
        "Mercato demo: one order from checkout to delivery and refund (data in {})",
        dir.display()
    );
    let config = Config {
        data_dir: dir.clone(),
        ..Config::default()
    };
    let app = App::start(config, Component::embedded()).await?;
    let mut demo = Demo { app, step: 0 };

    let sku = format!(
        "DEMO-TEE-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    demo.post(
        "Publish a product (products emits ProductPublished)",
        "/products",
        json!({ "sku": sku, "name": "Demo tee", "price_minor": 2500, "currency": "EUR" }),
    )
    .await?;
    demo.post(
        "Stock it",
        "/inventory/items",
        json!({ "sku": sku, "on_hand": 10 }),
    )
    .await?;
    let code = format!("DEMO{}", &uuid::Uuid::new_v4().simple().to_string()[..6]).to_uppercase();
    demo.post("Create a 10 % coupon", "/coupons",
        json!({ "code": code, "kind": "percent", "percent": 10, "currency": "EUR", "usage_limit": 100 })).await?;
    demo.settle().await?;

    let session = demo.post("Open a checkout session for two (checkout owns the process, not the order)", "/checkout/sessions",
        json!({ "buyer_id": "demo-buyer", "currency": "EUR", "items": [{ "sku": sku, "quantity": 2 }], "coupon_code": code, "shipping_address": shipping_address() })).await?;
    let session_id = session["id"].as_str().unwrap_or_default().to_owned();
    demo.post(
        "Submit it (checkout emits CheckoutSubmitted; orders places the order)",
        &format!("/checkout/sessions/{session_id}/submit"),
        json!({}),
    )
    .await?;
    demo.settle().await?;
    let session = demo
        .get(
            "The session followed the saga: order placed, stock reserved, awaiting payment",
            &format!("/checkout/sessions/{session_id}"),
        )
        .await?;
    print_steps(&session);
    let order_id = session["order_id"].as_str().unwrap_or_default().to_owned();
    let intent_id = session["payment_intent_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    demo.get(
        "Inventory reserved the stock, coupons applied the discount: the order awaits payment",
        &format!("/orders/{order_id}"),
    )
    .await?;

    demo.post(
        "The buyer confirms with the test card pm_card_ok",
        &format!("/payments/intents/{intent_id}/confirm"),
        json!({ "payment_method": "pm_card_ok" }),
    )
    .await?;
    demo.settle().await?;
    let session = demo
        .get(
            "Paid, and shipping made a shipment: the session is COMPLETED",
            &format!("/checkout/sessions/{session_id}"),
        )
        .await?;
    print_steps(&session);
    let shipments = demo
        .get(
            "The shipment, labelled by the built-in test carrier",
            &format!("/shipping/shipments?order_id={order_id}"),
        )
        .await?;
    let shipment_id = shipments["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for (event, status, at) in [
        ("scan-1", "IN_TRANSIT", "2026-12-01T10:00:00Z"),
        ("scan-2", "DELIVERED", "2026-12-02T09:30:00Z"),
        // Late, out of order: recorded, but the parcel stays delivered.
        ("scan-0", "IN_TRANSIT", "2026-12-01T08:00:00Z"),
    ] {
        demo.post(
            &format!("The carrier reports {status} ({event}, {at})"),
            &format!("/shipping/shipments/{shipment_id}/events"),
            json!({ "carrier_event_id": event, "status": status, "occurred_at": at }),
        )
        .await?;
    }
    demo.settle().await?;
    demo.get(
        "The order is PAID and DELIVERED",
        &format!("/orders/{order_id}"),
    )
    .await?;
    let inbox = demo
        .get(
            "Notifications rendered one message per event for the buyer",
            "/notifications?recipient=demo-buyer",
        )
        .await?;
    for n in inbox["data"].as_array().into_iter().flatten() {
        println!("   {}", n["subject"].as_str().unwrap_or(""));
    }
    demo.get(
        "Inventory committed the reservation",
        &format!("/inventory/items/{sku}"),
    )
    .await?;

    // The same step twice: refund, let the saga run, look at the order.
    let mut order = Value::Null;
    for (what, amount_minor, status) in [
        ("Refund part of it", 1500, "PARTIALLY_REFUNDED"),
        ("Refund the rest", 3000, "REFUNDED"),
    ] {
        demo.post(
            what,
            &format!("/payments/intents/{intent_id}/refunds"),
            json!({ "amount_minor": amount_minor }),
        )
        .await?;
        demo.settle().await?;
        order = demo
            .get(
                &format!("The order is {status}"),
                &format!("/orders/{order_id}"),
            )
            .await?;
    }
    demo.get(
        "Every ledger transaction balances",
        "/payments/ledger/trial-balance",
    )
    .await?;

    println!("\nStatus history of order {order_id}:");
    for h in order["status_history"].as_array().into_iter().flatten() {
        println!(
            "   {:>18} → {:<18} {}",
            h["from"].as_str().unwrap_or("—"),
            h["to"].as_str().unwrap_or("?"),
            h["reason"].as_str().unwrap_or("")
        );
    }
    demo.app.shutdown().await;
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("\nDone. `mercato serve` runs the same shop over HTTP (docs/api.md).");
    Ok(())
}
