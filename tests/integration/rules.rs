//! Third-party coupon rules through the real host: the example rules priced in
//! end-to-end orders, hostile rules contained, a rule swapped while orders
//! flow, and the cost of each evaluation reported.
use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// The plugins `mercato serve` embeds: the shop and the two example rules.
fn served() -> Vec<&'static str> {
    mercato::artifacts::EMBEDDED
        .iter()
        .map(|(name, _)| *name)
        .collect()
}

async fn coupon(app: &TestApp, body: Value) {
    let (status, reply) = app.post("/coupons", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
}

async fn rule_coupon(app: &TestApp, code: &str, rule: &str, config: Value) {
    coupon(
        app,
        json!({ "code": code, "kind": "rule", "rule": rule, "config": config, "currency": "EUR" }),
    )
    .await;
}

/// Places an order of `items` (sku, quantity) with `coupon`; returns its id.
async fn order(app: &TestApp, buyer: &str, items: &[(&str, u32)], coupon: Option<&str>) -> String {
    let items: Vec<Value> = items
        .iter()
        .map(|(sku, quantity)| json!({ "sku": sku, "quantity": quantity }))
        .collect();
    let (status, body) = app
        .post(
            "/orders",
            &json!({ "buyer_id": buyer, "currency": "EUR", "items": items, "coupon_code": coupon, "shipping_address": shipping_address() }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn get_order(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.get(&format!("/orders/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Confirms the order's payment intent with a good card and waits for PAID.
async fn pay(app: &TestApp, id: &str) {
    let (status, intents) = app.get(&format!("/payments/intents?order_id={id}")).await;
    assert_eq!(status, StatusCode::OK, "{intents}");
    let intent = intents["data"][0]["id"]
        .as_str()
        .expect("an intent")
        .to_owned();
    let (status, body) = app
        .post(
            &format!("/payments/intents/{intent}/confirm"),
            &json!({ "payment_method": "pm_card_ok" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.drain().await;
    assert_eq!(get_order(app, id).await["status"], "PAID");
}

/// Every redemption of the coupon, oldest first (the list pages newest first).
async fn redemptions(app: &TestApp, code: &str) -> Vec<Value> {
    let mut all = list_all(app, &format!("/coupons/{code}/redemptions")).await;
    all.reverse();
    all
}

async fn quote(app: &TestApp, code: &str, lines: Value) -> Value {
    let (status, body) = app
        .post(
            &format!("/coupons/{code}/quote"),
            &json!({ "currency": "EUR", "buyer_id": "q", "lines": lines }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Items (sku, quantity), coupon, expected discount, expected total.
type Case = (&'static [(&'static str, u32)], &'static str, i64, i64);

fn tiers() -> Value {
    json!({ "tiers": [
        { "min_subtotal": 10_000, "percent": 5 },
        { "min_subtotal": 20_000, "percent": 10 },
        { "min_subtotal": 50_000, "percent": 15 },
    ] })
}

on_both_backends!(
    both_example_rules_give_the_right_discounts_in_orders_through_the_saga,
    both_example_rules_give_the_right_discounts_in_orders_through_the_saga_on_sqlite,
    both_example_rules_give_the_right_discounts_in_orders_through_the_saga_on_postgres,
);
async fn both_example_rules_give_the_right_discounts_in_orders_through_the_saga(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = backend.shop_config(dir.path()).await;
    let _teardown = Teardown::new(&config, &served());
    let app = TestApp::start(config, &served()).await;
    product(&app, "TEE", 2_500, 100).await;
    product(&app, "MUG", 900, 100).await;
    product(&app, "HAT", 1_500, 100).await;
    app.drain().await;
    rule_coupon(&app, "SPEND", "tiered-spend", tiers()).await;
    rule_coupon(
        &app,
        "B2G1",
        "buy-x-get-y",
        json!({ "buy": 2, "get": 1, "skus": ["TEE", "MUG"] }),
    )
    .await;

    // (items, coupon, expected discount, expected total)
    let cases: [Case; 6] = [
        // 4 × 25.00 = 100.00: exactly the 5 % tier.
        (&[("TEE", 4)], "SPEND", 500, 9_500),
        // 8 × 25.00 + 1 × 9.00 = 209.00: 10 % = 20.90.
        (&[("TEE", 8), ("MUG", 1)], "SPEND", 2_090, 18_810),
        // 21 × 25.00 + 3 × 9.00 = 552.00: 15 % = 82.80.
        (&[("TEE", 21), ("MUG", 3)], "SPEND", 8_280, 46_920),
        // 2 TEE + 1 MUG: the cheapest eligible unit (a MUG) is free.
        (&[("TEE", 2), ("MUG", 1)], "B2G1", 900, 5_000),
        // 6 eligible units (HAT is not eligible): two free, both MUGs.
        (&[("TEE", 3), ("MUG", 3), ("HAT", 1)], "B2G1", 1_800, 9_900),
        // 3 TEE: one TEE free.
        (&[("TEE", 3)], "B2G1", 2_500, 5_000),
    ];
    let mut ids = Vec::new();
    for (i, (items, code, _, _)) in cases.iter().enumerate() {
        ids.push(order(&app, &format!("buyer-{i}"), items, Some(code)).await);
    }
    app.drain().await;
    for (id, (items, code, discount, total)) in ids.iter().zip(cases) {
        let o = get_order(&app, id).await;
        assert_eq!(o["status"], "AWAITING_PAYMENT", "{items:?} {code}: {o}");
        assert_eq!(o["discount_minor"], discount, "{items:?} {code}: {o}");
        assert_eq!(o["total_minor"], total, "{items:?} {code}: {o}");
        pay(&app, id).await;
    }

    let b2g1 = redemptions(&app, "B2G1").await;
    assert_eq!(b2g1.len(), 3);
    assert!(
        b2g1.iter()
            .all(|r| r["rule"] == "buy-x-get-y" && r["rule_version"] == "1.0.0"),
        "{b2g1:?}"
    );
    assert!(
        b2g1[0]["reason"].as_str().unwrap().contains("free"),
        "{b2g1:?}"
    );
    let spend = redemptions(&app, "SPEND").await;
    assert_eq!(
        spend
            .iter()
            .map(|r| r["discount_minor"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [500, 2_090, 8_280]
    );

    // Below the lowest tier the rule declines: the coupon is rejected and the
    // saga rejects the order, as for any rejected coupon.
    let small = order(&app, "buyer-small", &[("MUG", 1)], Some("SPEND")).await;
    app.drain().await;
    let o = get_order(&app, &small).await;
    assert_eq!(o["status"], "REJECTED", "{o}");
    assert_eq!(o["coupon_status"], "REJECTED", "{o}");
    assert_eq!(o["discount_minor"], 0, "{o}");
    let q = quote(
        &app,
        "SPEND",
        json!([{ "sku": "MUG", "quantity": 1, "unit_price_minor": 900 }]),
    )
    .await;
    assert_eq!(q["applicable"], false, "{q}");
    assert_eq!(q["reason"], "rule_rejected", "{q}");
    assert_eq!(q["rule"]["code"], "declined", "{q}");
    app.stop().await;
}

on_both_backends!(
    hostile_rules_are_rejected_with_the_limit_they_broke_and_nothing_else_is_hurt,
    hostile_rules_are_rejected_with_the_limit_they_broke_and_nothing_else_is_hurt_on_sqlite,
    hostile_rules_are_rejected_with_the_limit_they_broke_and_nothing_else_is_hurt_on_postgres,
);
async fn hostile_rules_are_rejected_with_the_limit_they_broke_and_nothing_else_is_hurt(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let config = backend.shop_config(dir.path()).await;
    let _teardown = Teardown::new(&config, &SHOP);
    let app = TestApp::start(config, &SHOP).await;
    product(&app, "TEE", 2_500, 1_000).await;
    app.drain().await;
    let (status, body) = put_component(&app, "hostile-rule", component("rule-hostile"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A rule that imports a non-WASI interface (the storage of domain plugins)
    // never loads.
    let (status, body) = put_component(
        &app,
        "sneaky-rule",
        component("rule-forbidden-import"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "forbidden_import", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("mercato:plugin/storage"), "{message}");

    let (status, body) = app
        .post(
            "/coupons",
            &json!({ "code": "TENOFF", "kind": "percent", "percent": 10, "currency": "EUR" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // (mode, expected rejection code, a word the message must contain)
    let hostile = [
        ("loop", "out_of_fuel", "11000000"),
        ("alloc", "out_of_memory", "16 MiB"),
        ("panic", "trap", "hostile rule panics"),
        ("big-output", "output_too_large", "20480-byte"),
        (
            "overdiscount",
            "invalid_output",
            "exceeds the cart subtotal",
        ),
        ("decline", "declined", "hostile rule declines"),
    ];
    for (mode, _, _) in hostile {
        rule_coupon(
            &app,
            &format!("H-{mode}"),
            "hostile-rule",
            json!({ "mode": mode }),
        )
        .await;
    }
    let line = json!([{ "sku": "TEE", "quantity": 1, "unit_price_minor": 2_500 }]);
    for (mode, code, word) in hostile {
        let q = quote(&app, &format!("H-{mode}"), line.clone()).await;
        assert_eq!(q["applicable"], false, "{mode}: {q}");
        assert_eq!(q["rule"]["code"], code, "{mode}: {q}");
        let message = q["rule"]["message"].as_str().unwrap();
        assert!(
            message.contains("`hostile-rule` 1.0.0"),
            "{mode}: {message}"
        );
        assert!(message.contains(word), "{mode}: {message}");
    }

    // Orders with each hostile coupon, interleaved with orders using a sound
    // coupon: a hostile coupon is rejected and the saga rejects its order (as
    // for any rejected coupon, releasing its stock); the others go on.
    let mut placed = Vec::new();
    for (i, (mode, code, _)) in hostile.iter().enumerate() {
        let bad = order(
            &app,
            &format!("h{i}"),
            &[("TEE", 1)],
            Some(&format!("H-{mode}")),
        )
        .await;
        let good = order(&app, &format!("g{i}"), &[("TEE", 1)], Some("TENOFF")).await;
        placed.push((bad, *code, "REJECTED", 0));
        placed.push((good, "sound", "AWAITING_PAYMENT", 250));
    }
    app.drain().await;
    for (id, code, status, discount) in &placed {
        let o = get_order(&app, id).await;
        assert_eq!(o["status"], *status, "{code}: {o}");
        assert_eq!(o["discount_minor"], *discount, "{code}: {o}");
    }
    let (_, tee) = app.get("/inventory/items/TEE").await;
    assert_eq!(tee["available"], 1_000 - hostile.len() as i64, "{tee}");
    pay(&app, &placed[1].0).await;
    assert_eq!(redemptions(&app, "TENOFF").await.len(), hostile.len());
    for (mode, _, _) in hostile {
        assert!(redemptions(&app, &format!("H-{mode}")).await.is_empty());
    }

    let metrics = app.metrics().await;
    for (_, code, _) in hostile {
        assert!(
            metrics.contains(&format!(
                "mercato_rule_rejections_total{{reason=\"{code}\",rule=\"hostile-rule\"}} 2"
            )),
            "{code} counted twice (quote and order):\n{metrics}"
        );
    }
    app.stop().await;
}

on_both_backends!(
    a_rule_swapped_while_orders_flow_prices_every_order_by_exactly_one_version,
    a_rule_swapped_while_orders_flow_prices_every_order_by_exactly_one_version_on_sqlite,
    a_rule_swapped_while_orders_flow_prices_every_order_by_exactly_one_version_on_postgres,
);
async fn a_rule_swapped_while_orders_flow_prices_every_order_by_exactly_one_version(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let config = backend.shop_config(dir.path()).await;
    let _teardown = Teardown::new(&config, &SHOP);
    let app = TestApp::start(config, &SHOP).await;
    product(&app, "TEE", 2_000, 10_000).await;
    app.drain().await;
    let (status, body) = put_component(&app, "flat", component("rule-flat-v1"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    rule_coupon(&app, "FLAT", "flat", json!({ "percent": 10 })).await;

    let app = std::sync::Arc::new(app);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (app, stop) = (app.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 5 {
                ids.push(order(&app, &format!("c{c}-{n}"), &[("TEE", 1)], Some("FLAT")).await);
                n += 1;
            }
            ids
        }));
    }
    // Let orders flow on v1, swap to v2 under them, then back to v1.
    within(Duration::from_secs(60), async || {
        redemptions(&app, "FLAT").await.len() >= 10
    })
    .await;
    let (status, body) = put_component(&app, "flat", component("rule-flat-v2"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["current"]["version"], "2.0.0", "{body}");
    within(Duration::from_secs(60), async || {
        redemptions(&app, "FLAT")
            .await
            .iter()
            .filter(|r| r["rule_version"] == "2.0.0")
            .count()
            >= 10
    })
    .await;
    let (status, body) = app.post("/admin/plugins/flat/rollback", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["current"]["version"], "1.0.0", "{body}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut ids = Vec::new();
    for c in clients {
        ids.extend(c.await.unwrap());
    }
    app.drain().await;

    let redeemed = redemptions(&app, "FLAT").await;
    assert_eq!(redeemed.len(), ids.len(), "one redemption per order");
    let mut by_version = std::collections::BTreeMap::<String, usize>::new();
    for r in &redeemed {
        let version = r["rule_version"].as_str().expect("priced by a version");
        // v1 grants 10 % of 20.00, v2 twice that: the amount tells which ran.
        let expected = match version {
            "1.0.0" => 200,
            "2.0.0" => 400,
            other => panic!("unknown version {other}"),
        };
        assert_eq!(r["discount_minor"], expected, "{r}");
        let o = get_order(&app, r["order_id"].as_str().unwrap()).await;
        assert_eq!(o["discount_minor"], expected, "{o}");
        *by_version.entry(version.to_owned()).or_default() += 1;
    }
    assert!(
        by_version["1.0.0"] >= 10 && by_version["2.0.0"] >= 10,
        "{by_version:?}"
    );
    app.drain().await;
    let (_, events) = app.get("/admin/events").await;
    assert_eq!(events["dead_letters"], json!([]), "{events}");
    std::sync::Arc::into_inner(app).unwrap().stop().await;
}

on_both_backends!(
    evaluation_cost_is_reported_in_the_admin_api_and_metrics,
    evaluation_cost_is_reported_in_the_admin_api_and_metrics_on_sqlite,
    evaluation_cost_is_reported_in_the_admin_api_and_metrics_on_postgres,
);
async fn evaluation_cost_is_reported_in_the_admin_api_and_metrics(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = backend.shop_config(dir.path()).await;
    // A per-rule fuel budget, from the same `[plugins.<name>.limits]` table.
    config.plugins.insert(
        "buy-x-get-y".into(),
        toml::from_str("limits = { fuel = 5000000 }").unwrap(),
    );
    let _teardown = Teardown::new(&config, &served());
    let app = TestApp::start(config, &served()).await;
    rule_coupon(&app, "SPEND", "tiered-spend", tiers()).await;
    rule_coupon(&app, "B2G1", "buy-x-get-y", json!({ "buy": 1, "get": 1 })).await;
    let lines = json!([{ "sku": "TEE", "quantity": 8, "unit_price_minor": 2_500 }]);
    for _ in 0..3 {
        assert_eq!(
            quote(&app, "SPEND", lines.clone()).await["discount_minor"],
            2_000
        );
        let q = quote(&app, "B2G1", lines.clone()).await;
        assert_eq!(q["discount_minor"], 10_000, "{q}");
        assert!(q["rule"]["fuel"].as_u64().unwrap() > 0, "{q}");
        assert!(q["rule"]["micros"].as_u64().unwrap() > 0, "{q}");
    }

    let (_, body) = app.get("/admin/plugins").await;
    let plugins = body["plugins"].as_array().unwrap();
    let find = |name: &str| plugins.iter().find(|p| p["name"] == name).unwrap().clone();
    assert_eq!(find("orders")["kind"], "domain");
    let spend = find("tiered-spend");
    assert_eq!(spend["kind"], "rule", "{spend}");
    assert_eq!(spend["limits"]["fuel"], 11_000_000, "{spend}");
    assert_eq!(spend["limits"]["memory_mib"], 16, "{spend}");
    assert_eq!(spend["evaluations"]["calls"], 3, "{spend}");
    let fuel = spend["evaluations"]["fuel"]["mean"].as_u64().unwrap();
    assert!(fuel > 1_000 && fuel < 11_000_000, "{spend}");
    assert!(
        spend["evaluations"]["micros"]["mean"].as_u64().unwrap() > 0,
        "{spend}"
    );
    assert_eq!(find("buy-x-get-y")["limits"]["fuel"], 5_000_000);

    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            "mercato_rule_evaluations_total{outcome=\"ok\",rule=\"tiered-spend\",version=\"1.0.0\"} 3"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("mercato_rule_fuel_used_count{rule=\"tiered-spend\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mercato_rule_duration_seconds_count{rule=\"buy-x-get-y\"} 3"),
        "{metrics}"
    );

    app.stop().await;
}

on_both_backends!(
    a_loop_with_a_huge_fuel_budget_is_stopped_by_the_deadline,
    a_loop_with_a_huge_fuel_budget_is_stopped_by_the_deadline_on_sqlite,
    a_loop_with_a_huge_fuel_budget_is_stopped_by_the_deadline_on_postgres,
);
async fn a_loop_with_a_huge_fuel_budget_is_stopped_by_the_deadline(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = backend.shop_config(dir.path()).await;
    config.plugins.insert(
        "hostile-rule".into(),
        toml::from_str("limits = { fuel = 1000000000000, deadline_ms = 50 }").unwrap(),
    );
    let _teardown = Teardown::new(&config, &["coupons"]);
    let app = TestApp::start(config, &["coupons"]).await;
    let (status, body) = put_component(&app, "hostile-rule", component("rule-hostile"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    rule_coupon(&app, "H-LOOP", "hostile-rule", json!({ "mode": "loop" })).await;
    rule_coupon(&app, "H-OK", "hostile-rule", json!({ "mode": "fine" })).await;
    let line = json!([{ "sku": "TEE", "quantity": 1, "unit_price_minor": 2_500 }]);
    let q = quote(&app, "H-LOOP", line.clone()).await;
    assert_eq!(q["rule"]["code"], "deadline", "{q}");
    assert!(
        q["rule"]["message"]
            .as_str()
            .unwrap()
            .contains("missed its 50 ms deadline"),
        "{q}"
    );
    // The same rule, another coupon: the next evaluation runs normally.
    let q = quote(&app, "H-OK", line).await;
    assert_eq!(q["discount_minor"], 1, "{q}");
    app.stop().await;
}

/// The distinct values of every `rule` label in a `/metrics` text.
fn rule_label_values(metrics: &str) -> std::collections::BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once("rule=\""))
        .filter_map(|(_, rest)| rest.split_once('"'))
        .map(|(value, _)| value.to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_rule_names_add_no_metric_label_values() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(shop_config(dir.path()), &["coupons"]).await;
    let (status, body) = put_component(&app, "flat", component("rule-flat-v1"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    rule_coupon(&app, "FLAT", "flat", json!({ "percent": 10 })).await;
    let line = json!([{ "sku": "TEE", "quantity": 1, "unit_price_minor": 2_500 }]);
    assert_eq!(
        quote(&app, "FLAT", line.clone()).await["discount_minor"],
        250
    );
    let before = rule_label_values(&app.metrics().await);
    assert!(before.contains("flat"), "{before:?}");

    // Coupon data names the rule: 100 names no rule has, each refused when
    // the coupon is created.
    for i in 0..100 {
        let (code, rule) = (format!("GHOST-{i}"), format!("ghost-{i}"));
        let (status, body) = app
            .post(
                "/coupons",
                &json!({ "code": code, "kind": "rule", "rule": rule, "currency": "EUR" }),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["code"], "unknown_rule", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("`{rule}`"))
                && message.contains("no rule of that name is deployed"),
            "{message}"
        );
    }
    // A coupon whose rule is removed after its creation is refused when
    // priced, under the same shared label.
    let (status, body) = app
        .request("DELETE", "/admin/plugins/flat", None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let q = quote(&app, "FLAT", line.clone()).await;
    assert_eq!(
        (&q["applicable"], &q["rule"]["code"]),
        (&json!(false), &json!("unknown_rule")),
        "{q}"
    );

    let metrics = app.metrics().await;
    assert_eq!(rule_label_values(&metrics), before, "{metrics}");
    assert!(!metrics.contains("ghost-"), "{metrics}");
    for line in [
        "mercato_rule_config_checks_total{outcome=\"unknown_rule\",rule=\"_unknown\"} 100",
        "mercato_rule_rejections_total{reason=\"unknown_rule\",rule=\"_unknown\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}:\n{metrics}");
    }
    assert_eq!(
        list_all(&app, "/coupons").await.len(),
        1,
        "only FLAT exists"
    );
    app.stop().await;
}

/// Asks to create a rule coupon; the answer's status and body.
async fn try_rule_coupon(
    app: &TestApp,
    code: &str,
    rule: &str,
    config: Value,
) -> (StatusCode, Value) {
    app.post(
        "/coupons",
        &json!({ "code": code, "kind": "rule", "rule": rule, "config": config, "currency": "EUR" }),
    )
    .await
}

/// Asserts a 422 with `code` whose message has every one of `words`.
fn refused(answer: (StatusCode, Value), code: &str, words: &[&str]) {
    refused_with(answer, StatusCode::UNPROCESSABLE_ENTITY, code, words);
}

/// Asserts `status` with `code` whose message has every one of `words`.
fn refused_with(answer: (StatusCode, Value), status: StatusCode, code: &str, words: &[&str]) {
    let (got, body) = answer;
    assert_eq!(got, status, "{code}: {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    for word in words {
        assert!(message.contains(word), "`{word}` not in: {message}");
    }
}

on_both_backends!(
    rule_coupons_are_checked_by_their_rule_when_created_or_updated,
    rule_coupons_are_checked_by_their_rule_when_created_or_updated_on_sqlite,
    rule_coupons_are_checked_by_their_rule_when_created_or_updated_on_postgres,
);
async fn rule_coupons_are_checked_by_their_rule_when_created_or_updated(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = backend.shop_config(dir.path()).await;
    let _teardown = Teardown::new(&config, &served());
    let app = TestApp::start(config, &served()).await;
    for (name, fixture) in [("hostile-rule", "rule-hostile"), ("flat", "rule-flat-v1")] {
        let (status, body) = put_component(&app, name, component(fixture), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // A rule nobody deployed: refused with its name, nothing created.
    refused_with(
        try_rule_coupon(&app, "TYPO", "three-for-tow", json!({ "buy": 3 })).await,
        StatusCode::NOT_FOUND,
        "unknown_rule",
        &["`three-for-tow`", "no rule of that name is deployed"],
    );
    // Configs the rules' own validate-config refuse, with the rule's message.
    refused(
        try_rule_coupon(&app, "SPEND", "tiered-spend", json!({ "tiers": [] })).await,
        "invalid_rule_config",
        &["`tiered-spend` 1.0.0", "`tiers` is empty"],
    );
    refused(
        try_rule_coupon(&app, "B0G1", "buy-x-get-y", json!({ "buy": 0, "get": 1 })).await,
        "invalid_rule_config",
        &["`buy-x-get-y` 1.0.0", "buy must be at least 1"],
    );
    // `flat` has no validate-config: a dry run on a sample cart refuses a
    // config it traps on...
    refused(
        try_rule_coupon(&app, "FLATTYPO", "flat", json!({ "percnt": 10 })).await,
        "invalid_rule_config",
        &["`flat` 1.0.0", "trapped", "config is {\"percent\": N}"],
    );
    // ...but not one it merely declines on the sample cart: a decline is no
    // verdict on the config (a rule may rightly decline a small cart), so this
    // coupon is created and declined when priced.
    let (status, body) = try_rule_coupon(&app, "FLAT500", "flat", json!({ "percent": 500 })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let line = json!([{ "sku": "TEE", "quantity": 1, "unit_price_minor": 2_500 }]);
    let q = quote(&app, "FLAT500", line.clone()).await;
    assert_eq!(q["rule"]["code"], "declined", "{q}");
    // A hostile validate-config is held to the rule's limits like an
    // evaluation, and refuses only its own coupon.
    for (mode, words) in [
        ("refuse", &["hostile rule refuses this config"][..]),
        ("loop", &["ran out of fuel", "11000000"][..]),
        ("alloc", &["memory limit of 16 MiB"][..]),
        (
            "panic",
            &["trapped", "hostile rule panics while validating"][..],
        ),
        ("big-output", &["20480-byte output limit"][..]),
    ] {
        refused(
            try_rule_coupon(
                &app,
                &format!("V-{mode}"),
                "hostile-rule",
                json!({ "validate": mode }),
            )
            .await,
            "invalid_rule_config",
            words,
        );
    }
    // Nothing refused was created; sound coupons of each rule are.
    assert_eq!(
        list_all(&app, "/coupons")
            .await
            .iter()
            .map(|c| c["code"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["FLAT500"]
    );
    for code in ["TYPO", "SPEND", "B0G1", "FLATTYPO", "V-LOOP"] {
        assert_eq!(
            app.get(&format!("/coupons/{code}")).await.0,
            StatusCode::NOT_FOUND
        );
    }
    rule_coupon(&app, "SPEND", "tiered-spend", tiers()).await;
    rule_coupon(&app, "FLAT", "flat", json!({ "percent": 10 })).await;
    rule_coupon(&app, "H-OK", "hostile-rule", json!({ "mode": "fine" })).await;
    assert_eq!(quote(&app, "H-OK", line.clone()).await["discount_minor"], 1);

    // An update that changes a rule coupon's config is checked again and,
    // refused, changes nothing; an accepted one takes effect.
    let (status, body) = app
        .post(
            "/coupons/SPEND",
            &json!({ "config": { "tiers": [] }, "usage_limit": 5 }),
        )
        .await;
    refused((status, body), "invalid_rule_config", &["`tiers` is empty"]);
    let (_, spend) = app.get("/coupons/SPEND").await;
    assert_eq!(
        (&spend["config"], &spend["usage_limit"]),
        (&tiers(), &Value::Null),
        "{spend}"
    );
    let (status, body) = app
        .post("/coupons/FLAT", &json!({ "config": { "percent": "ten" } }))
        .await;
    refused((status, body), "invalid_rule_config", &["trapped"]);
    let flat20 = json!({ "percent": 20 });
    let (status, updated) = app
        .post("/coupons/FLAT", &json!({ "config": flat20 }))
        .await;
    assert_eq!(
        (status, &updated["config"]),
        (StatusCode::OK, &flat20),
        "{updated}"
    );
    assert_eq!(quote(&app, "FLAT", line).await["discount_minor"], 500);
    let (status, body) = app
        .post("/coupons/FLAT", &json!({ "rule": "tiered-spend" }))
        .await;
    refused((status, body), "field_not_updatable", &["`rule`"]);

    let metrics = app.metrics().await;
    for series in [
        "mercato_rule_config_checks_total{outcome=\"unknown_rule\",rule=\"_unknown\"} 1",
        "mercato_rule_config_checks_total{outcome=\"invalid_config\",rule=\"tiered-spend\"} 2",
        "mercato_rule_config_checks_total{outcome=\"out_of_fuel\",rule=\"hostile-rule\"} 1",
        "mercato_rule_config_checks_total{outcome=\"trap\",rule=\"flat\"} 2",
        "mercato_rule_config_checks_total{outcome=\"ok\",rule=\"flat\"} 3",
    ] {
        assert!(metrics.contains(series), "{series}:\n{metrics}");
    }
    // Checks are not evaluations: only the quotes counted there.
    assert!(
        !metrics.contains("mercato_rule_evaluations_total{outcome=\"ok\",rule=\"tiered-spend\""),
        "{metrics}"
    );
    app.stop().await;
}
