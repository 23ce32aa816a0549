//! The shop end to end: products, orders, inventory, payments and coupons joined
//! by the order saga, through the real host and the real plugin components. Every
//! invariant of ARCHITECTURE.md §10 is checked through each context's own API.
use crate::common::{
    FULL_SHOP, SHOP, TestApp, config, drop_postgres, list_all, postgres_config, shipping_address,
};
use futures_util::future::join_all;
use mercato::config::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

struct Shop {
    app: TestApp,
}

impl Shop {
    async fn start(config: Config) -> Shop {
        Shop::start_with(config, &SHOP).await
    }

    async fn start_with(config: Config, plugins: &[&str]) -> Shop {
        let mut config = config;
        config.limits.deadline_ms = 10_000;
        config.max_instances = 256;
        Shop {
            app: TestApp::start(config, plugins).await,
        }
    }

    async fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, value) = self.app.request(method, path, Some(&body), &[]).await;
        assert!(
            status.is_success(),
            "{method} {path} {body} → {status} {value}"
        );
        value
    }

    async fn get(&self, path: &str) -> Value {
        let (status, value) = self.app.get(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path} → {value}");
        value
    }

    async fn product(&self, sku: &str, price_minor: i64) -> String {
        self.product_of(sku, price_minor, "default").await
    }

    async fn product_of(&self, sku: &str, price_minor: i64, seller: &str) -> String {
        let p = self
            .ok("POST", "/products", json!({ "sku": sku, "name": format!("Product {sku}"), "price_minor": price_minor, "currency": "EUR", "seller_id": seller }))
            .await;
        p["id"].as_str().unwrap().to_owned()
    }

    async fn stock(&self, sku: &str, on_hand: i64) {
        self.ok(
            "POST",
            "/inventory/items",
            json!({ "sku": sku, "on_hand": on_hand }),
        )
        .await;
    }

    async fn place(
        &self,
        buyer: &str,
        items: &[(&str, i64)],
        coupon: Option<&str>,
    ) -> (StatusCode, Value) {
        let items: Vec<Value> = items
            .iter()
            .map(|(sku, q)| json!({ "sku": sku, "quantity": q }))
            .collect();
        self.app
            .post("/orders", &json!({ "buyer_id": buyer, "currency": "EUR", "items": items, "coupon_code": coupon, "shipping_address": shipping_address() }))
            .await
    }

    /// Opens a checkout session for the same cart and submits it.
    async fn checkout(&self, buyer: &str, items: &[(&str, i64)], coupon: Option<&str>) -> String {
        let items: Vec<Value> = items
            .iter()
            .map(|(sku, q)| json!({ "sku": sku, "quantity": q }))
            .collect();
        let session = self
            .ok("POST", "/checkout/sessions", json!({ "buyer_id": buyer, "currency": "EUR", "items": items, "coupon_code": coupon, "shipping_address": shipping_address() }))
            .await;
        let id = session["id"].as_str().unwrap().to_owned();
        self.ok(
            "POST",
            &format!("/checkout/sessions/{id}/submit"),
            json!({}),
        )
        .await;
        id
    }

    async fn order(&self, id: &str) -> Value {
        self.get(&format!("/orders/{id}")).await
    }

    async fn intent(&self, order_id: &str) -> Option<Value> {
        let intents = self
            .get(&format!("/payments/intents?order_id={order_id}"))
            .await;
        intents["data"].as_array().unwrap().first().cloned()
    }

    async fn drain(&self) {
        self.app.drain().await;
    }
}

fn status(order: &Value) -> &str {
    order["status"].as_str().unwrap()
}

/// A small deterministic generator: the shop day is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

const LEGAL: &[(&str, &str)] = &[
    ("PENDING", "AWAITING_PAYMENT"),
    ("PENDING", "REJECTED"),
    ("PENDING", "CANCELLED"),
    ("AWAITING_PAYMENT", "PAID"),
    ("AWAITING_PAYMENT", "CANCELLED"),
    ("PAID", "PARTIALLY_REFUNDED"),
    ("PAID", "REFUNDED"),
    ("PARTIALLY_REFUNDED", "REFUNDED"),
    ("CANCELLED", "REFUNDED"),
    ("REJECTED", "REFUNDED"),
];

/// Invariant 5: history is a chain of legal transitions ending in the status.
fn assert_history_legal(order: &Value) {
    let history = order["status_history"].as_array().unwrap();
    assert_eq!(history[0]["from"], Value::Null);
    assert_eq!(history[0]["to"], "PENDING");
    for pair in history.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        assert_eq!(prev["to"], next["from"], "broken chain in {}", order["id"]);
        let step = (next["from"].as_str().unwrap(), next["to"].as_str().unwrap());
        assert!(
            LEGAL.contains(&step),
            "illegal transition {step:?} in {}",
            order["id"]
        );
    }
    assert_eq!(history.last().unwrap()["to"], order["status"]);
}

fn was_paid(order: &Value) -> bool {
    order["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["to"] == "PAID")
}

/// Every invariant of ARCHITECTURE.md §10 that the contexts' APIs can show.
async fn assert_invariants(
    shop: &Shop,
    order_ids: &[String],
    skus: &[&str],
    coupons: &[(&str, i64, Option<i64>)],
) {
    let mut orders = Vec::new();
    for id in order_ids {
        orders.push(shop.order(id).await);
    }
    // 5. Orders: legal history; totals add up.
    for o in &orders {
        assert_history_legal(o);
        let subtotal: i64 = o["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["line_total_minor"].as_i64().unwrap())
            .sum();
        assert_eq!(o["subtotal_minor"], subtotal);
        assert_eq!(
            o["total_minor"].as_i64().unwrap(),
            subtotal - o["discount_minor"].as_i64().unwrap()
        );
    }
    // 1 + 2. Stock: on_hand = available + reserved + committed, nothing negative,
    // committed = what paid orders bought, and no reservation is left RESERVED.
    let mut paid_qty: HashMap<String, i64> = HashMap::new();
    for o in orders.iter().filter(|o| was_paid(o)) {
        for item in o["items"].as_array().unwrap() {
            *paid_qty
                .entry(item["sku"].as_str().unwrap().to_owned())
                .or_default() += item["quantity"].as_i64().unwrap();
        }
    }
    for sku in skus {
        let item = shop.get(&format!("/inventory/items/{sku}")).await;
        let [on_hand, available, reserved, committed] =
            ["on_hand", "available", "reserved", "committed"].map(|k| item[k].as_i64().unwrap());
        assert_eq!(on_hand, available + reserved + committed, "{item}");
        assert!(available >= 0 && reserved >= 0 && committed >= 0, "{item}");
        assert_eq!(reserved, 0, "no reservation may be left RESERVED: {item}");
        assert_eq!(
            committed,
            paid_qty.get(*sku).copied().unwrap_or(0),
            "{sku} committed"
        );
    }
    for o in &orders {
        let reservations = shop
            .get(&format!(
                "/inventory/reservations?order_id={}",
                o["id"].as_str().unwrap()
            ))
            .await;
        for r in reservations["data"].as_array().unwrap() {
            let expected = if was_paid(o) && o["stock_status"] != "COMMIT_FAILED" {
                "COMMITTED"
            } else {
                "RELEASED"
            };
            assert_eq!(
                r["status"],
                expected,
                "reservation of {} ({})",
                o["id"],
                status(o)
            );
        }
    }
    // 3. Coupons: usage = live redemptions ≤ limit, per customer ≤ its limit.
    for (code, limit, per_customer) in coupons {
        let coupon = shop.get(&format!("/coupons/{code}")).await;
        let live: Vec<&Value> = orders
            .iter()
            .filter(|o| o["coupon_code"] == *code && o["coupon_status"] == "APPLIED")
            .filter(|o| !matches!(status(o), "REJECTED" | "CANCELLED"))
            .collect();
        assert_eq!(coupon["used"], live.len(), "{code} usage = redemptions");
        assert!(coupon["used"].as_i64().unwrap() <= *limit);
        if let Some(per) = per_customer {
            let mut by_buyer: HashMap<&str, i64> = HashMap::new();
            for o in &live {
                *by_buyer.entry(o["buyer_id"].as_str().unwrap()).or_default() += 1;
            }
            assert!(
                by_buyer.values().all(|n| n <= per),
                "{code} per-customer limit"
            );
        }
    }
    // 4. Money: the ledger balances; captured ≤ authorised; refunded ≤ captured;
    // orders agree with payments.
    let balance = shop.get("/payments/ledger/trial-balance").await;
    assert_eq!(balance["balanced"], true, "{balance}");
    assert_eq!(balance["unbalanced_transactions"], 0);
    let account = |name: &str, side: &str| {
        balance["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["account"] == name)
            .map_or(0, |a| a[side].as_i64().unwrap())
    };
    let (mut captured, mut refunded) = (0, 0);
    for o in &orders {
        let Some(intent) = shop.intent(o["id"].as_str().unwrap()).await else {
            assert!(
                matches!(status(o), "REJECTED" | "CANCELLED" | "PENDING"),
                "{o}"
            );
            continue;
        };
        assert_eq!(intent["amount_minor"], o["total_minor"]);
        assert!(intent["captured_minor"].as_i64() <= intent["amount_minor"].as_i64());
        assert!(intent["refunded_minor"].as_i64() <= intent["captured_minor"].as_i64());
        assert_eq!(intent["captured_minor"], o["captured_minor"], "{}", o["id"]);
        assert_eq!(intent["refunded_minor"], o["refunded_minor"], "{}", o["id"]);
        captured += intent["captured_minor"].as_i64().unwrap();
        refunded += intent["refunded_minor"].as_i64().unwrap();
    }
    assert_eq!(account("merchant_revenue", "credit_minor"), captured);
    assert_eq!(account("merchant_refunds", "debit_minor"), refunded);
    // 6. Events: nothing dead-lettered, nothing left behind.
    let (_, events) = shop.app.get("/admin/events").await;
    assert_eq!(events["dead_letters"], json!([]), "{events}");
    assert!(
        events["subscribers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["lag"] == 0)
    );
}

/// A day of trading: 200 orders from 20 buyers with coupons, scarce stock, a
/// price change, declined cards, cancellations, expiring reservations and refunds.
async fn shop_day(config: Config) {
    let shop = Shop::start_with(config, &FULL_SHOP).await;
    let skus = ["TEE", "MUG", "CAP", "SOCKS", "POSTER", "LIMITED"];
    let mut product_ids = BTreeMap::new();
    for (i, sku) in skus.iter().enumerate() {
        let seller = SELLERS[i % SELLERS.len()];
        product_ids.insert(
            *sku,
            shop.product_of(sku, 500 + 350 * i as i64, seller).await,
        );
        shop.stock(sku, if *sku == "LIMITED" { 12 } else { 400 })
            .await;
    }
    let coupons: [(&str, i64, Option<i64>); 3] = [
        ("WELCOME10", 30, Some(2)),
        ("FIVEOFF", 1_000, None),
        ("HALF", 5, None),
    ];
    shop.ok("POST", "/coupons", json!({ "code": "WELCOME10", "kind": "percent", "percent": 10, "currency": "EUR", "usage_limit": 30, "per_customer_limit": 2 })).await;
    shop.ok("POST", "/coupons", json!({ "code": "FIVEOFF", "kind": "fixed", "amount_minor": 500, "currency": "EUR", "min_subtotal_minor": 3000, "usage_limit": 1000 })).await;
    shop.ok("POST", "/coupons", json!({ "code": "HALF", "kind": "percent", "percent": 50, "currency": "EUR", "usage_limit": 5 })).await;
    shop.drain().await;

    let mut rng = Lcg(7);
    let mut order_ids = Vec::new();
    let mut sessions = Vec::new();
    let mut placed_at_price: Vec<(String, i64)> = Vec::new();
    for wave in 0..10 {
        if wave == 5 {
            // Mid-day price change: earlier orders keep their snapshot.
            shop.ok(
                "PUT",
                &format!("/products/{}/price", product_ids["TEE"]),
                json!({ "price_minor": 777 }),
            )
            .await;
            shop.drain().await;
        }
        let tee_price = if wave < 5 { 500 } else { 777 };
        let mut requests = Vec::new();
        for n in 0..20 {
            let buyer = format!("buyer-{:02}", (wave * 20 + n) % 20);
            let lines: Vec<(&str, i64)> = (0..1 + rng.next(3))
                .map(|_| {
                    (
                        skus[rng.next(skus.len() as u64) as usize],
                        1 + rng.next(3) as i64,
                    )
                })
                .collect();
            let coupon = match rng.next(8) {
                0 | 1 => Some("WELCOME10"),
                2 => Some("FIVEOFF"),
                3 => Some("HALF"),
                _ => None,
            };
            requests.push((buyer, lines, coupon));
        }
        // Every fourth buyer goes through checkout; the rest POST /orders.
        let (through_checkout, direct): (Vec<_>, Vec<_>) =
            requests.iter().enumerate().partition(|(n, _)| n % 4 == 3);
        let placed = join_all(direct.iter().map(|(_, (b, l, c))| shop.place(b, l, *c))).await;
        let opened = join_all(
            through_checkout
                .iter()
                .map(|(_, (b, l, c))| shop.checkout(b, l, *c)),
        )
        .await;
        for (status, body) in placed {
            assert_eq!(status, StatusCode::CREATED, "{body}");
            let id = body["id"].as_str().unwrap().to_owned();
            placed_at_price.push((id.clone(), tee_price));
            order_ids.push(id);
        }
        shop.drain().await;
        for session_id in opened {
            let session = shop.get(&format!("/checkout/sessions/{session_id}")).await;
            let id = session["order_id"]
                .as_str()
                .unwrap_or_else(|| panic!("a submitted session placed its order: {session}"))
                .to_owned();
            placed_at_price.push((id.clone(), tee_price));
            order_ids.push(id);
            sessions.push(session_id);
        }
    }

    // Settle every confirmed order: pay, decline, cancel.
    let mut paid = Vec::new();
    for (i, id) in order_ids.iter().enumerate() {
        let order = shop.order(id).await;
        if status(&order) != "AWAITING_PAYMENT" {
            assert!(matches!(status(&order), "REJECTED"), "{order}");
            continue;
        }
        let intent = shop
            .intent(id)
            .await
            .expect("a confirmed order has an intent");
        let intent_id = intent["id"].as_str().unwrap();
        match i % 10 {
            0 => {
                shop.ok("POST", &format!("/orders/{id}/cancel"), json!({}))
                    .await;
            }
            1 | 2 => {
                let method = if i % 10 == 1 {
                    "pm_card_declined"
                } else {
                    "pm_card_insufficient_funds"
                };
                let (status, result) = shop
                    .app
                    .request(
                        "POST",
                        &format!("/payments/intents/{intent_id}/confirm"),
                        Some(&json!({ "payment_method": method })),
                        &[],
                    )
                    .await;
                assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{result}");
                assert_eq!(result["error"]["payment_intent"]["status"], "FAILED");
            }
            _ => {
                let result = shop
                    .ok(
                        "POST",
                        &format!("/payments/intents/{intent_id}/confirm"),
                        json!({ "payment_method": "pm_card_ok" }),
                    )
                    .await;
                assert_eq!(result["status"], "SUCCEEDED");
                paid.push((
                    id.clone(),
                    intent_id.to_owned(),
                    intent["amount_minor"].as_i64().unwrap(),
                ));
            }
        }
    }
    shop.drain().await;

    // Refunds: some in full, some partially, some partially twice up to full.
    for (n, (id, intent_id, amount)) in paid.iter().enumerate() {
        let refunds: Vec<i64> = match n % 6 {
            0 => vec![*amount],
            1 => vec![amount / 2],
            2 => vec![amount / 3, amount - amount / 3],
            _ => vec![],
        };
        for refund in refunds.into_iter().filter(|r| *r > 0) {
            shop.ok(
                "POST",
                &format!("/payments/intents/{intent_id}/refunds"),
                json!({ "amount_minor": refund }),
            )
            .await;
        }
        let _ = id;
    }
    shop.drain().await;

    // The carriers report on every shipment: a third delivered, a third in
    // transit with a late, out-of-order label scan, a third not yet picked up.
    // Fully refunded orders' shipments were cancelled before dispatch, and a
    // cancelled shipment takes no report.
    let mut histories = Vec::new();
    for (n, (id, _, _)) in paid.iter().enumerate() {
        let shipments = shop
            .get(&format!("/shipping/shipments?order_id={id}"))
            .await;
        let shipment_id = shipments["data"][0]["id"].as_str().unwrap().to_owned();
        let before = shop
            .get(&format!("/shipping/shipments/{shipment_id}"))
            .await;
        let reports: &[(&str, &str)] = match n % 3 {
            0 => &[
                ("IN_TRANSIT", "2026-12-01T10:00:00Z"),
                ("DELIVERED", "2026-12-02T10:00:00Z"),
            ],
            1 => &[
                ("IN_TRANSIT", "2026-12-01T10:00:00Z"),
                ("LABEL_CREATED", "2026-12-01T08:00:00Z"),
            ],
            _ => &[],
        };
        for (k, (status, at)) in reports.iter().enumerate() {
            shop.ok(
                "POST",
                &format!("/shipping/shipments/{shipment_id}/events"),
                json!({ "carrier_event_id": format!("{shipment_id}-{k}"), "status": status, "occurred_at": at }),
            )
            .await;
        }
        histories.push((shipment_id, before["events"].clone()));
    }
    shop.drain().await;
    // Shipment history is append-only and never moves a shipment back.
    for (shipment_id, before) in &histories {
        let shipment = shop
            .get(&format!("/shipping/shipments/{shipment_id}"))
            .await;
        let events = shipment["events"].as_array().unwrap();
        let before = before.as_array().unwrap();
        assert_eq!(
            &events[..before.len()],
            &before[..],
            "history rewritten: {shipment}"
        );
        let rank = |s: &str| {
            ["PENDING", "LABEL_CREATED", "IN_TRANSIT", "DELIVERED"]
                .iter()
                .position(|r| *r == s)
                .unwrap_or(4)
        };
        let applied: Vec<usize> = events
            .iter()
            .filter(|e| e["applied"] == true)
            .map(|e| rank(e["status"].as_str().unwrap()))
            .collect();
        assert!(
            applied.windows(2).all(|w| w[0] <= w[1]),
            "backwards: {shipment}"
        );
    }

    // Expiring reservations: a short TTL, orders nobody pays.
    shop.ok(
        "PUT",
        "/inventory/settings",
        json!({ "reservation_ttl_ms": 1_000 }),
    )
    .await;
    let mut expiring = Vec::new();
    for n in 0..5 {
        let (status, body) = shop
            .place(&format!("buyer-{n:02}"), &[("MUG", 1)], None)
            .await;
        assert_eq!(status, StatusCode::CREATED);
        expiring.push(body["id"].as_str().unwrap().to_owned());
    }
    shop.drain().await;
    let expiry = mercato::clock::now_millis() + 1_000;
    shop.app
        .host
        .relay()
        .drain_scheduled(expiry, Duration::from_secs(30))
        .await
        .unwrap();
    shop.drain().await;
    for id in &expiring {
        let order = shop.order(id).await;
        assert_eq!(status(&order), "CANCELLED", "{order}");
        assert_eq!(
            order["status_history"].as_array().unwrap().last().unwrap()["reason"],
            "reservation expired before payment"
        );
        // A late confirm of the expired order's intent is refused.
        let intent = shop.intent(id).await.unwrap();
        let (status, body) = shop
            .app
            .post(
                &format!(
                    "/payments/intents/{}/confirm",
                    intent["id"].as_str().unwrap()
                ),
                &json!({ "payment_method": "pm_card_ok" }),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("intent_canceled"))
        );
    }
    order_ids.extend(expiring);

    // The day produced every outcome.
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for id in &order_ids {
        *outcomes
            .entry(status(&shop.order(id).await).to_owned())
            .or_default() += 1;
    }
    for expected in [
        "PAID",
        "PARTIALLY_REFUNDED",
        "REFUNDED",
        "REJECTED",
        "CANCELLED",
    ] {
        assert!(
            outcomes.get(expected).is_some_and(|n| *n > 0),
            "no {expected} order: {outcomes:?}"
        );
    }
    // Price snapshots never change: TEE lines carry the price of their wave.
    for (id, tee_price) in &placed_at_price {
        let order = shop.order(id).await;
        for item in order["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["sku"] == "TEE")
        {
            assert_eq!(item["unit_price_minor"], *tee_price, "{id}");
        }
    }
    assert_invariants(&shop, &order_ids, &skus, &coupons).await;
    assert_fulfilment_invariants(&shop, &order_ids, &sessions).await;
    assert_search_views(&shop, &order_ids).await;
    shop.app.stop().await;
}

/// The shop day's three sellers.
const SELLERS: [&str; 3] = ["acme", "globex", "initech"];

/// The search read model agrees with the contexts: one order row per order,
/// as orders shows it, and the sellers' dashboards add up to the payment
/// ledger, each net being its gross less its refunds.
async fn assert_search_views(shop: &Shop, order_ids: &[String]) {
    let rows = crate::common::list_all(&shop.app, "/search/orders").await;
    assert_eq!(rows.len(), order_ids.len(), "one row per order");
    let rows: HashMap<&str, &Value> = rows
        .iter()
        .map(|r| (r["order_id"].as_str().unwrap(), r))
        .collect();
    for id in order_ids {
        let order = shop.order(id).await;
        let row = rows[id.as_str()];
        for field in [
            "buyer_id",
            "status",
            "fulfillment_status",
            "currency",
            "subtotal_minor",
            "discount_minor",
            "total_minor",
            "coupon_code",
        ] {
            assert_eq!(
                row[field], order[field],
                "{field} of {id}: {row} vs {order}"
            );
        }
    }
    let balance = shop.get("/payments/ledger/trial-balance").await;
    let account = |name: &str, side: &str| {
        balance["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["account"] == name)
            .map_or(0, |a| a[side].as_i64().unwrap())
    };
    let (mut gross, mut refunds) = (0, 0);
    for seller in SELLERS {
        let d = shop
            .get(&format!("/search/sellers/{seller}/dashboard"))
            .await;
        let (g, r) = (
            d["gross_minor"].as_i64().unwrap(),
            d["refunds_minor"].as_i64().unwrap(),
        );
        assert_eq!(d["net_minor"], g - r, "{d}");
        let by_day: i64 = d["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|day| day["gross_minor"].as_i64().unwrap())
            .sum();
        assert_eq!(by_day, g, "the days add up to the total: {d}");
        gross += g;
        refunds += r;
    }
    assert_eq!(
        gross,
        account("merchant_revenue", "credit_minor"),
        "{balance}"
    );
    assert_eq!(
        refunds,
        account("merchant_refunds", "debit_minor"),
        "{balance}"
    );
}

/// Shipping, checkout and notifications: one shipment per paid order and none
/// for an unpaid one, cancelled exactly when refunded in full before dispatch;
/// one order per submitted session, which shows how it ended; one
/// notification per order placed, for its buyer.
async fn assert_fulfilment_invariants(shop: &Shop, order_ids: &[String], sessions: &[String]) {
    for id in order_ids {
        let order = shop.order(id).await;
        let shipments = shop
            .get(&format!("/shipping/shipments?order_id={id}"))
            .await;
        let shipments = shipments["data"].as_array().unwrap();
        if !was_paid(&order) {
            assert!(
                shipments.is_empty(),
                "unpaid order {id} shipped: {shipments:?}"
            );
            assert_eq!(order["fulfillment_status"], "UNFULFILLED");
            continue;
        }
        assert_eq!(shipments.len(), 1, "paid order {id}: {shipments:?}");
        let cancelled = shipments[0]["status"] == "CANCELLED";
        assert_eq!(
            cancelled,
            status(&order) == "REFUNDED",
            "{order} {shipments:?}"
        );
        let expected = match shipments[0]["status"].as_str().unwrap() {
            "DELIVERED" => "DELIVERED",
            "IN_TRANSIT" => "SHIPPED",
            _ => "UNFULFILLED",
        };
        assert_eq!(order["fulfillment_status"], expected, "{order}");
    }
    let mut placed_by_sessions = std::collections::HashSet::new();
    for session_id in sessions {
        let session = shop.get(&format!("/checkout/sessions/{session_id}")).await;
        let order_id = session["order_id"].as_str().unwrap();
        assert!(
            placed_by_sessions.insert(order_id.to_owned()),
            "two sessions, one order"
        );
        let order = shop.order(order_id).await;
        assert_eq!(order["checkout_session_id"], session_id.as_str());
        let ended = if was_paid(&order) {
            "COMPLETED"
        } else {
            "FAILED"
        };
        assert_eq!(session["status"], ended, "{session} for {order}");
    }
    let mut announced: HashMap<String, usize> = HashMap::new();
    let buyers: std::collections::BTreeSet<String> = {
        let mut b = std::collections::BTreeSet::new();
        for id in order_ids {
            b.insert(
                shop.order(id).await["buyer_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        b
    };
    for buyer in buyers {
        let inbox = list_all(&shop.app, &format!("/notifications?recipient={buyer}")).await;
        for n in &inbox {
            if n["event_type"] == "orders.OrderPlaced" {
                *announced
                    .entry(n["order_id"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
    }
    for id in order_ids {
        assert_eq!(
            announced.get(id),
            Some(&1),
            "OrderPlaced notification of {id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shop_day_on_sqlite_keeps_every_invariant() {
    let dir = tempfile::tempdir().unwrap();
    shop_day(config(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shop_day_on_postgres_keeps_every_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let config = postgres_config(dir.path()).await;
    shop_day(config.clone()).await;
    drop_postgres(&config, &FULL_SHOP).await;
}

/// Contexts on separate database servers, as a shop that outgrew one: orders
/// and payments on a second PostgreSQL database (standing in for a second
/// server), products and search in SQLite files, the rest on the first
/// database. Each plugin's outbox is relayed from its own database, and the
/// day keeps every invariant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shop_day_across_separate_databases_keeps_every_invariant() {
    use mercato::config::PluginConfig;
    use mercato::storage::{BackendKind, StorageConfig};
    let dir = tempfile::tempdir().unwrap();
    let mut config = postgres_config(dir.path()).await;
    let first = config.storage.url.clone().expect("postgres url");
    let second = other_database(&first, "mercato_test_second").await;
    let elsewhere = |backend: BackendKind, url: Option<&str>| PluginConfig {
        storage: Some(StorageConfig {
            backend,
            url: url.map(str::to_owned),
            ..config.storage.clone()
        }),
        ..PluginConfig::default()
    };
    let placed = [
        ("orders", elsewhere(BackendKind::Postgres, Some(&second))),
        ("payments", elsewhere(BackendKind::Postgres, Some(&second))),
        ("products", elsewhere(BackendKind::Sqlite, None)),
        ("search", elsewhere(BackendKind::Sqlite, None)),
    ];
    for (plugin, storage) in placed.clone() {
        config.plugins.insert(plugin.into(), storage);
    }
    let on_first: Vec<&str> = FULL_SHOP
        .iter()
        .copied()
        .filter(|p| !placed.iter().any(|(q, _)| q == p))
        .collect();
    shop_day(config.clone()).await;

    // Each context's tables are where its configuration put them, and only there.
    let namespace = &config.storage.namespace;
    for (url, plugins) in [
        (&first, on_first.clone()),
        (&second, vec!["orders", "payments"]),
    ] {
        let schemas = schemas_in(url, namespace).await;
        let mut expected: Vec<String> = plugins
            .iter()
            .flat_map(|p| {
                let schema = mercato::storage::postgres::schema_name(namespace, p);
                [schema.clone(), format!("{schema}_host")]
            })
            .collect();
        expected.sort();
        assert_eq!(schemas, expected, "schemas in {url}");
    }
    for plugin in ["products", "search"] {
        assert!(
            dir.path().join(format!("{plugin}.db")).exists(),
            "{plugin} keeps a SQLite file"
        );
    }
    for plugin in ["orders", "payments"] {
        mercato::storage::postgres::PgDb::drop_schema(&second, namespace, plugin)
            .await
            .unwrap();
    }
    drop_postgres(&config, &on_first).await;
}

/// `url` with its database name replaced by `database`, which is created on
/// the same server if missing (tests leave the server's own databases alone).
async fn other_database(url: &str, database: &str) -> String {
    use sqlx::{Connection, Executor};
    let (server, _) = url
        .rsplit_once('/')
        .expect("a database URL names its database");
    let mut admin = sqlx::PgConnection::connect(url).await.unwrap();
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1)",
    )
    .bind(database)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    if !exists {
        match admin
            .execute(format!("CREATE DATABASE \"{database}\"").as_str())
            .await
        {
            Ok(_) => {}
            // Another test run created it meanwhile.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
            Err(e) => panic!("creating the second database {database}: {e}"),
        }
    }
    admin.close().await.unwrap();
    format!("{server}/{database}")
}

/// The schemas under `namespace` in the database at `url`, sorted.
async fn schemas_in(url: &str, namespace: &str) -> Vec<String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let mut schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_catalog.pg_namespace WHERE starts_with(nspname::text, $1)",
    )
    .bind(namespace)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    schemas.sort();
    schemas
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flash_sale_sells_exactly_the_stock() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Shop::start(config(dir.path())).await;
    shop.product("FLASH", 999).await;
    shop.stock("FLASH", 100).await;
    shop.drain().await;

    let sale = join_all((0..1000).map(|n| {
        let shop = &shop;
        async move {
            shop.place(&format!("flash-{n}"), &[("FLASH", 1)], None)
                .await
        }
    }));
    // Watch the stock while the sale runs: it never goes below zero.
    let watch = async {
        let mut lowest = i64::MAX;
        for _ in 0..50 {
            let item = shop.get("/inventory/items/FLASH").await;
            lowest = lowest.min(item["available"].as_i64().unwrap());
            tokio::task::yield_now().await;
        }
        lowest
    };
    let (placed, lowest) = tokio::join!(sale, watch);
    assert!(lowest >= 0);
    let ids: Vec<String> = placed
        .into_iter()
        .map(|(status, body)| {
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body["id"].as_str().unwrap().to_owned()
        })
        .collect();
    shop.drain().await;

    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for id in &ids {
        *outcomes
            .entry(status(&shop.order(id).await).to_owned())
            .or_default() += 1;
    }
    assert_eq!(
        outcomes,
        BTreeMap::from([("AWAITING_PAYMENT".into(), 100), ("REJECTED".into(), 900)])
    );
    let item = shop.get("/inventory/items/FLASH").await;
    assert_eq!(
        (item["available"].as_i64(), item["reserved"].as_i64()),
        (Some(0), Some(100))
    );
    shop.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coupon_limited_to_50_is_redeemed_exactly_50_times_by_500_orders() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Shop::start(config(dir.path())).await;
    shop.product("BOOK", 2_000).await;
    shop.stock("BOOK", 10_000).await;
    shop.ok("POST", "/coupons", json!({ "code": "LIMIT50", "kind": "fixed", "amount_minor": 300, "currency": "EUR", "usage_limit": 50 })).await;
    shop.drain().await;

    let placed = join_all((0..500).map(|n| {
        let shop = &shop;
        async move {
            shop.place(&format!("reader-{n}"), &[("BOOK", 1)], Some("LIMIT50"))
                .await
        }
    }))
    .await;
    let ids: Vec<String> = placed
        .into_iter()
        .map(|(_, body)| body["id"].as_str().unwrap().to_owned())
        .collect();
    shop.drain().await;

    let coupon = shop.get("/coupons/LIMIT50").await;
    assert_eq!(coupon["used"], 50);
    let mut confirmed = 0;
    for id in &ids {
        let order = shop.order(id).await;
        match status(&order) {
            "AWAITING_PAYMENT" => {
                confirmed += 1;
                assert_eq!(order["total_minor"], 1_700);
            }
            "REJECTED" => assert_eq!(order["coupon_status"], "REJECTED"),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(confirmed, 50);
    // The rejected orders' stock went back.
    let item = shop.get("/inventory/items/BOOK").await;
    assert_eq!(item["reserved"], 50);
    shop.app.stop().await;
}

/// A state fingerprint across every context, to prove a refused request changed nothing.
async fn fingerprint(shop: &Shop, order_id: &str, product_id: &str) -> Value {
    let (_, events) = shop.app.get("/admin/events").await;
    // Outbox heads move with every committed change (`unpublished` is stamped
    // asynchronously, so it is left out).
    let heads: Vec<Value> = events["outboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| json!([o["plugin"], o["head"]]))
        .collect();
    json!({
        "outbox_heads": heads,
        "order": shop.order(order_id).await,
        "intents": shop.get(&format!("/payments/intents?order_id={order_id}")).await,
        "product": shop.get(&format!("/products/{product_id}")).await,
        "stock": shop.get("/inventory/items/GADGET").await,
        "coupon": shop.get("/coupons/SAVE5").await,
        "ledger": shop.get("/payments/ledger/trial-balance").await,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Shop::start(config(dir.path())).await;
    let product_id = shop.product("GADGET", 2_500).await;
    shop.stock("GADGET", 10).await;
    shop.ok(
        "POST",
        "/coupons",
        json!({ "code": "SAVE5", "kind": "fixed", "amount_minor": 500, "currency": "EUR" }),
    )
    .await;
    shop.drain().await;
    // One paid order (to over-refund) and one cancelled order (to confirm late).
    let (_, paid) = shop.place("alice", &[("GADGET", 1)], None).await;
    let (_, cancelled) = shop.place("bob", &[("GADGET", 1)], None).await;
    let paid_id = paid["id"].as_str().unwrap().to_owned();
    let cancelled_id = cancelled["id"].as_str().unwrap().to_owned();
    shop.drain().await;
    let paid_intent = shop.intent(&paid_id).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    shop.ok(
        "POST",
        &format!("/payments/intents/{paid_intent}/confirm"),
        json!({ "payment_method": "pm_card_ok" }),
    )
    .await;
    let cancelled_intent = shop.intent(&cancelled_id).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    shop.ok("POST", &format!("/orders/{cancelled_id}/cancel"), json!({}))
        .await;
    shop.drain().await;

    let order = |items: Value| json!({ "buyer_id": "carol", "currency": "EUR", "items": items, "shipping_address": shipping_address() });
    // One byte over the limit, all of it read by the server before it
    // answers 413: a larger body would still be arriving when the server
    // closes, and the client could see a reset instead of the answer.
    let huge = "x".repeat(shop.app.host.config().max_body_bytes + 1);
    // (what, path, JSON body, raw body, expected status, expected error code)
    type Case<'a> = (
        &'a str,
        String,
        Option<Value>,
        Option<&'a str>,
        StatusCode,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "unknown sku",
            "/orders".into(),
            Some(order(json!([{ "sku": "NOPE", "quantity": 1 }]))),
            None,
            StatusCode::NOT_FOUND,
            "unknown_sku",
        ),
        (
            "quantity 0",
            "/orders".into(),
            Some(order(json!([{ "sku": "GADGET", "quantity": 0 }]))),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quantity",
        ),
        (
            "negative quantity",
            "/orders".into(),
            Some(order(json!([{ "sku": "GADGET", "quantity": -3 }]))),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quantity",
        ),
        (
            "absurd quantity",
            "/orders".into(),
            Some(order(
                json!([{ "sku": "GADGET", "quantity": 1_000_000_000_000i64 }]),
            )),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quantity",
        ),
        (
            "mismatched currency",
            "/orders".into(),
            Some(
                json!({ "buyer_id": "carol", "currency": "USD", "items": [{ "sku": "GADGET", "quantity": 1 }], "shipping_address": shipping_address() }),
            ),
            None,
            StatusCode::CONFLICT,
            "currency_mismatch",
        ),
        (
            "unknown currency",
            "/orders".into(),
            Some(
                json!({ "buyer_id": "carol", "currency": "euro", "items": [{ "sku": "GADGET", "quantity": 1 }], "shipping_address": shipping_address() }),
            ),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_currency",
        ),
        (
            "no items",
            "/orders".into(),
            Some(order(json!([]))),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_items",
        ),
        (
            "malformed JSON",
            "/orders".into(),
            None,
            Some("{\"buyer_id\": "),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "oversized body",
            "/orders".into(),
            None,
            Some(huge.as_str()),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "refund above captured",
            format!("/payments/intents/{paid_intent}/refunds"),
            Some(json!({ "amount_minor": 2_501 })),
            None,
            StatusCode::CONFLICT,
            "refund_exceeds_captured",
        ),
        (
            "confirm a cancelled order's intent",
            format!("/payments/intents/{cancelled_intent}/confirm"),
            Some(json!({ "payment_method": "pm_card_ok" })),
            None,
            StatusCode::CONFLICT,
            "intent_canceled",
        ),
        (
            "unknown payment method",
            format!("/payments/intents/{paid_intent}/confirm"),
            Some(json!({ "payment_method": "pm_bitcoin" })),
            None,
            StatusCode::BAD_REQUEST,
            "unknown_payment_method",
        ),
        (
            "cancel a paid order",
            format!("/orders/{paid_id}/cancel"),
            Some(json!({})),
            None,
            StatusCode::CONFLICT,
            "order_not_cancellable",
        ),
        (
            "negative stock adjustment past reservations",
            "/inventory/items/GADGET/adjustments".into(),
            Some(json!({ "delta": -10, "reason": "theft" })),
            None,
            StatusCode::CONFLICT,
            "insufficient_stock",
        ),
        (
            "coupon of 150 percent",
            "/coupons".into(),
            Some(
                json!({ "code": "TOOMUCH", "kind": "percent", "percent": 150, "currency": "EUR" }),
            ),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_percent",
        ),
    ];
    for (name, path, json_body, raw_body, expected, code) in cases {
        let before = fingerprint(&shop, &paid_id, &product_id).await;
        let mut req = shop.app.client.post(format!("{}{path}", shop.app.url));
        req = match (json_body, raw_body) {
            (Some(j), _) => req.json(&j),
            (None, Some(raw)) => req
                .header("content-type", "application/json")
                .body(raw.to_owned()),
            (None, None) => req,
        };
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, expected, "{name}: {body}");
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        assert!(
            !body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{name}"
        );
        shop.drain().await;
        assert_eq!(
            fingerprint(&shop, &paid_id, &product_id).await,
            before,
            "{name} changed something"
        );
    }
    // A price change to a negative amount (PUT).
    let before = fingerprint(&shop, &paid_id, &product_id).await;
    let (status, body) = shop
        .app
        .request(
            "PUT",
            &format!("/products/{product_id}/price"),
            Some(&json!({ "price_minor": -100 })),
            &[],
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_price"))
    );
    shop.drain().await;
    assert_eq!(fingerprint(&shop, &paid_id, &product_id).await, before);
    shop.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn financial_rows_cannot_be_updated_or_deleted_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Shop::start(config(dir.path())).await;
    pay_and_refund_one(&shop).await;
    shop.app.stop().await;
    let conn = rusqlite::Connection::open(dir.path().join("payments.db")).unwrap();
    for table in [
        "ledger_entries",
        "ledger_transactions",
        "payment_transactions",
        "refunds",
    ] {
        let n: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert!(n > 0, "{table} has rows to protect");
        for sql in [
            format!("UPDATE {table} SET created_at = 'tampered'"),
            format!("DELETE FROM {table}"),
        ] {
            let err = conn.execute(&sql, []).expect_err(&sql);
            assert!(
                err.to_string().contains("append-only") || err.to_string().contains("never"),
                "{sql}: {err}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn financial_rows_cannot_be_updated_or_deleted_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let config = postgres_config(dir.path()).await;
    let shop = Shop::start(config.clone()).await;
    pay_and_refund_one(&shop).await;
    shop.app.stop().await;
    let schema = format!("{}payments", config.storage.namespace);
    let mut conn =
        <sqlx::PgConnection as sqlx::Connection>::connect(config.storage.url.as_deref().unwrap())
            .await
            .unwrap();
    for table in [
        "ledger_entries",
        "ledger_transactions",
        "payment_transactions",
        "refunds",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {schema}.{table}"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert!(n > 0, "{table} has rows to protect");
        for sql in [
            format!("UPDATE {schema}.{table} SET created_at = 'tampered'"),
            format!("DELETE FROM {schema}.{table}"),
        ] {
            // Even the superuser that owns the tables is refused by the triggers.
            let err = sqlx::query(&sql).execute(&mut conn).await.expect_err(&sql);
            assert!(
                err.to_string().contains("append-only") || err.to_string().contains("never"),
                "{sql}: {err}"
            );
        }
    }
    drop_postgres(&config, &SHOP).await;
}

async fn pay_and_refund_one(shop: &Shop) {
    shop.product("LAMP", 4_000).await;
    shop.stock("LAMP", 5).await;
    shop.drain().await;
    let (_, placed) = shop.place("dora", &[("LAMP", 1)], None).await;
    shop.drain().await;
    let intent = shop.intent(placed["id"].as_str().unwrap()).await.unwrap();
    let intent_id = intent["id"].as_str().unwrap();
    shop.ok(
        "POST",
        &format!("/payments/intents/{intent_id}/confirm"),
        json!({ "payment_method": "pm_card_ok" }),
    )
    .await;
    shop.ok(
        "POST",
        &format!("/payments/intents/{intent_id}/refunds"),
        json!({ "amount_minor": 1_000 }),
    )
    .await;
    shop.drain().await;
    assert_eq!(
        status(&shop.order(placed["id"].as_str().unwrap()).await),
        "PARTIALLY_REFUNDED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_every_plugin_route_with_error_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Shop::start_with(config(dir.path()), &FULL_SHOP).await;
    let doc = shop.get("/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/products", "post"),
        ("/products/{id}/price", "put"),
        ("/orders", "post"),
        ("/orders/{id}", "get"),
        ("/orders/{id}/cancel", "post"),
        ("/inventory/items", "post"),
        ("/inventory/items/{sku}/adjustments", "post"),
        ("/payments/intents/{id}/confirm", "post"),
        ("/payments/intents/{id}/refunds", "post"),
        ("/payments/ledger/trial-balance", "get"),
        ("/coupons", "post"),
        ("/coupons/{code}/quote", "post"),
        ("/shipping/carriers", "post"),
        ("/shipping/shipments", "get"),
        ("/shipping/shipments/{id}", "get"),
        ("/shipping/shipments/{id}/events", "post"),
        ("/checkout/sessions", "post"),
        ("/checkout/sessions/{id}", "get"),
        ("/checkout/sessions/{id}/submit", "post"),
        ("/notifications/endpoints", "post"),
        ("/notifications/endpoints/{id}/deliveries", "get"),
        ("/notifications/templates/{event_type}", "put"),
        ("/coupons/{code}", "post"),
        ("/coupons/{code}/archive", "post"),
        // The admin API, every route of it.
        ("/admin/plugins", "get"),
        ("/admin/events", "get"),
        ("/admin/plugins/{name}", "put"),
        ("/admin/plugins/{name}", "delete"),
        ("/admin/plugins/{name}/rollback", "post"),
        ("/admin/plugins/{name}/versions", "get"),
        ("/admin/plugins/{name}/wipe", "post"),
        ("/admin/plugins/{name}/rebuild", "post"),
        ("/admin/plugins/{name}/rebuild", "get"),
        ("/admin/events/dead-letters/redrive", "post"),
    ] {
        let op = &paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} undocumented"))[method];
        assert!(op.is_object(), "{method} {path} undocumented");
        if path.starts_with("/admin") {
            assert_eq!(op["security"], json!([{ "adminToken": [] }]), "{path}");
            assert!(
                op["responses"]["401"].is_object(),
                "{path} documents no 401"
            );
        } else {
            assert!(
                op["responses"]["500"].is_object(),
                "{path} documents no 500"
            );
        }
    }
    // Every security requirement names a scheme the document defines.
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            for requirement in op["security"].as_array().into_iter().flatten() {
                for scheme in requirement.as_object().unwrap().keys() {
                    assert!(
                        doc["components"]["securitySchemes"][scheme].is_object(),
                        "{method} {path} names undefined scheme {scheme}"
                    );
                }
            }
        }
    }
    // Requests are counted by the route template the plugin documents, so a
    // label never holds what a client typed.
    for code in ["NOPE1", "NOPE2"] {
        let (status, _) = shop.app.get(&format!("/coupons/{code}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let metrics = shop.app.metrics().await;
    let counted = r#"mercato_http_requests_total{method="GET",plugin="coupons",route="/{code}",status_class="4xx"} 2"#;
    assert!(metrics.contains(counted), "{counted} missing:\n{metrics}");
    assert!(!metrics.contains("NOPE1"), "{metrics}");
    // Every reference resolves inside the document.
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"#/components/").skip(1) {
        let target = reference.split('"').next().unwrap();
        let (kind, name) = target.split_once('/').unwrap();
        assert!(
            doc["components"][kind][name].is_object(),
            "dangling $ref {target}"
        );
    }
    shop.app.stop().await;
}
