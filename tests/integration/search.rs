//! The search read model (`plugins/search`) on both backends: its three views
//! agree with the contexts' own APIs and with the payment ledger, full-text
//! search ranks an exact name first, and a rebuild by replay, or a restart
//! with its database deleted, gives the views back row for row.
use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

const SELLERS: [&str; 3] = ["acme", "globex", "initech"];

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

/// Everything the views answer, for comparing before and after a rebuild.
async fn snapshot(app: &TestApp) -> Value {
    let mut dashboards = Vec::new();
    for seller in SELLERS {
        dashboards.push(get(app, &format!("/search/sellers/{seller}/dashboard")).await);
    }
    json!({
        "orders": list_all(app, "/search/orders").await,
        "dashboards": dashboards,
        "tee": get(app, "/search/products?q=tee&limit=100").await,
        "all": get(app, "/search/products?sort=newest&limit=100").await,
    })
}

/// Asserts `a == b`, naming the first place they differ.
fn same(a: &Value, b: &Value, what: &str) {
    fn differ(a: &Value, b: &Value, path: String) -> Option<String> {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => x
                .keys()
                .chain(y.keys())
                .find_map(|k| {
                    differ(
                        &x[k],
                        y.get(k).unwrap_or(&Value::Null),
                        format!("{path}.{k}"),
                    )
                })
                .or_else(|| (x.len() != y.len()).then(|| format!("{path}: keys differ"))),
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
                .iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (p, q))| differ(p, q, format!("{path}[{i}]"))),
            _ => (a != b).then(|| format!("{path}: {a} != {b}")),
        }
    }
    if let Some(at) = differ(a, b, String::new()) {
        panic!("{what} differ at {at}");
    }
}

async fn drain_all(app: &TestApp) {
    app.drain().await;
}

/// Asks for a rebuild of the search views; returns when it has finished.
async fn rebuild_started(app: &TestApp) -> mercato::deploy::RebuildStatus {
    let (status, started) = app
        .request("POST", "/admin/plugins/search/rebuild", None, &[])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    app.host
        .deployer()
        .rebuild_finished("search")
        .await
        .unwrap()
}

/// Rebuilds the search views and waits until the switched copy is drained.
async fn rebuild(app: &TestApp) {
    let done = rebuild_started(app).await;
    assert_eq!(done.state, "switched", "{done:?}");
    drain_all(app).await;
}

async fn the_views_agree_with_the_shop_and_rebuild_row_for_row(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = backend.shop_config(dir.path()).await;
    let _teardown = Teardown::new(&config, &FULL_SHOP);
    let app = TestApp::start(config.clone(), &FULL_SHOP).await;
    let catalog = [
        ("TEE", "Tee", "acme", 2_500, json!({ "color": "red" })),
        (
            "TEE-BLUE",
            "Tee blue edition",
            "acme",
            2_700,
            json!({ "color": "blue" }),
        ),
        (
            "MUG",
            "Mug with a tee print",
            "globex",
            1_200,
            json!({ "color": "white" }),
        ),
        ("CAP", "Cap", "initech", 900, json!({ "color": "red" })),
    ];
    for (sku, name, seller, price, attributes) in &catalog {
        ok(&app, "POST", "/products", json!({ "sku": sku, "name": name, "seller_id": seller, "price_minor": price, "currency": "EUR", "description": format!("{name} by {seller}"), "attributes": attributes })).await;
        ok(
            &app,
            "POST",
            "/inventory/items",
            json!({ "sku": sku, "on_hand": 40 }),
        )
        .await;
    }
    drain_all(&app).await;
    // Orders across sellers: paid, refunded in part and in full, declined.
    let carts: [&[(&str, i64)]; 6] = [
        &[("TEE", 2), ("MUG", 1)],
        &[("CAP", 3)],
        &[("TEE-BLUE", 1), ("CAP", 1), ("MUG", 2)],
        &[("MUG", 1)],
        &[("TEE", 1)],
        &[("CAP", 2), ("TEE", 1)],
    ];
    let mut orders = Vec::new();
    for (n, cart) in carts.iter().enumerate() {
        let items: Vec<Value> = cart
            .iter()
            .map(|(sku, q)| json!({ "sku": sku, "quantity": q }))
            .collect();
        let placed = ok(&app, "POST", "/orders", json!({ "buyer_id": format!("buyer-{}", n % 3), "currency": "EUR", "items": items, "shipping_address": shipping_address() })).await;
        orders.push(placed["id"].as_str().unwrap().to_owned());
    }
    drain_all(&app).await;
    for (n, id) in orders.iter().enumerate() {
        let intents = get(&app, &format!("/payments/intents?order_id={id}")).await;
        let intent = intents["data"][0]["id"].as_str().unwrap().to_owned();
        let card = if n == 3 {
            "pm_card_declined"
        } else {
            "pm_card_ok"
        };
        let (status, paid) = app
            .request(
                "POST",
                &format!("/payments/intents/{intent}/confirm"),
                Some(&json!({ "payment_method": card })),
                &[],
            )
            .await;
        let expected = if n == 3 {
            StatusCode::PAYMENT_REQUIRED
        } else {
            StatusCode::OK
        };
        assert_eq!(status, expected, "{paid}");
        drain_all(&app).await;
        let amount = get(&app, &format!("/payments/intents/{intent}")).await["amount_minor"]
            .as_i64()
            .unwrap();
        let refund = match n {
            1 => Some(amount),
            2 => Some(amount / 3),
            _ => None,
        };
        if let Some(refund) = refund {
            ok(
                &app,
                "POST",
                &format!("/payments/intents/{intent}/refunds"),
                json!({ "amount_minor": refund }),
            )
            .await;
        }
    }
    drain_all(&app).await;
    // One parcel leaves.
    let shipments = get(&app, &format!("/shipping/shipments?order_id={}", orders[0])).await;
    let shipment = shipments["data"][0]["id"].as_str().unwrap().to_owned();
    ok(&app, "POST", &format!("/shipping/shipments/{shipment}/events"), json!({ "carrier_event_id": "s1", "status": "IN_TRANSIT", "occurred_at": "2026-12-01T10:00:00Z" })).await;
    drain_all(&app).await;

    // The order list view: one row per order, as orders itself shows it.
    let rows = list_all(&app, "/search/orders").await;
    assert_eq!(rows.len(), orders.len());
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for id in &orders {
        let order = get(&app, &format!("/orders/{id}")).await;
        let row = rows.iter().find(|r| r["order_id"] == id.as_str()).unwrap();
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
        let units: i64 = order["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["quantity"].as_i64().unwrap())
            .sum();
        assert_eq!(row["item_count"], units, "{row}");
        *by_status
            .entry(order["status"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for (status, n) in &by_status {
        let filtered = list_all(&app, &format!("/search/orders?status={status}")).await;
        assert_eq!(filtered.len(), *n, "{status}");
    }
    assert!(by_status.contains_key("REFUNDED") && by_status.contains_key("PARTIALLY_REFUNDED"));

    // The dashboards: money from the ledger, units from what was paid for.
    let balance = get(&app, "/payments/ledger/trial-balance").await;
    let account = |name: &str, side: &str| {
        balance["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["account"] == name)
            .map_or(0, |a| a[side].as_i64().unwrap())
    };
    let mut units_paid: BTreeMap<String, i64> = BTreeMap::new();
    for id in &orders {
        let order = get(&app, &format!("/orders/{id}")).await;
        if order["captured_minor"].as_i64().unwrap() > 0 {
            for item in order["items"].as_array().unwrap() {
                *units_paid
                    .entry(item["sku"].as_str().unwrap().to_owned())
                    .or_default() += item["quantity"].as_i64().unwrap();
            }
        }
    }
    let (mut gross, mut refunds) = (0, 0);
    for seller in SELLERS {
        let d = get(&app, &format!("/search/sellers/{seller}/dashboard")).await;
        let (g, r) = (
            d["gross_minor"].as_i64().unwrap(),
            d["refunds_minor"].as_i64().unwrap(),
        );
        assert_eq!(d["net_minor"], g - r, "{d}");
        gross += g;
        refunds += r;
        for p in d["products"].as_array().unwrap() {
            let sku = p["sku"].as_str().unwrap();
            assert_eq!(p["units"], units_paid[sku], "{sku}: {d}");
        }
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

    // Full-text search: the exact name first, then by word, prefix and attribute.
    let tee = get(&app, "/search/products?q=tee").await;
    let skus: Vec<&str> = tee["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus[0], "TEE", "exact name first: {skus:?}");
    assert!(
        skus.contains(&"TEE-BLUE") && skus.contains(&"MUG"),
        "{skus:?}"
    );
    let prefix = get(&app, "/search/products?q=edit").await;
    assert_eq!(prefix["data"][0]["sku"], "TEE-BLUE", "by prefix");
    let red = get(&app, "/search/products?attr.color=red").await;
    let mut red: Vec<&str> = red["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap())
        .collect();
    red.sort();
    assert_eq!(red, ["CAP", "TEE"]);
    let acme = get(&app, "/search/products?seller_id=acme&sort=price_asc").await;
    assert_eq!(acme["data"][0]["sku"], "TEE");
    assert_eq!(acme["facets"]["seller_id"]["acme"], 2);
    let (status, body) = app.get("/search/products?colour=red").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("unknown_parameter"))
    );

    // A rebuild by replay gives every row back.
    let before = snapshot(&app).await;
    rebuild(&app).await;
    same(&snapshot(&app).await, &before, "the rebuilt views");

    app.stop().await;
    // So does deleting its database and starting again: the streams replay
    // every source into the empty copy.
    let store = "search--r1";
    if backend == Backend::Postgres {
        let url = config.storage.url.as_deref().unwrap();
        mercato::storage::postgres::PgDb::drop_schema(url, &config.storage.namespace, store)
            .await
            .unwrap();
    } else {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.path().join(format!("{store}.db{suffix}")));
        }
        assert!(!dir.path().join(format!("{store}.db")).exists());
    }
    let app = TestApp::start(config.clone(), &FULL_SHOP).await;
    drain_all(&app).await;
    same(
        &snapshot(&app).await,
        &before,
        "the views replayed after deleting the database",
    );

    // A rebuild under continuous order load: no search request fails, and
    // the switched views miss no order placed meanwhile.
    let app = std::sync::Arc::new(app);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn({
        let (app, stop) = (app.clone(), stop.clone());
        async move {
            // Bounded: an unbounded writer outruns any consumer on a shared
            // machine, and then no view can ever catch up.
            let mut placed = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && placed.len() < 150 {
                let body = ok(&app, "POST", "/orders", json!({ "buyer_id": "loader", "currency": "EUR", "items": [{ "sku": "MUG", "quantity": 1 }], "shipping_address": shipping_address() })).await;
                placed.push(body["id"].as_str().unwrap().to_owned());
            }
            placed
        }
    });
    let reader = tokio::spawn({
        let (app, stop) = (app.clone(), stop.clone());
        async move {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                get(&app, "/search/orders?limit=5").await; // panics on a failure
                get(&app, "/search/products?q=tee").await;
                reads += 1;
            }
            reads
        }
    });
    let done = rebuild_started(&app).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let placed = writer.await.unwrap();
    let reads = reader.await.unwrap();
    assert_eq!(done.state, "switched", "{done:?}");
    assert!(
        !placed.is_empty() && reads > 0,
        "load ran during the rebuild"
    );
    drain_all(&app).await;
    let rows = list_all(&app, "/search/orders").await;
    assert_eq!(rows.len(), orders.len() + placed.len(), "no order missing");
    for id in &placed {
        assert!(
            rows.iter().any(|r| r["order_id"] == id.as_str()),
            "{id} missing"
        );
    }
    // The copy switched to under load holds what a rebuild at rest builds
    // from the same events: no interleaving of the sources shows in a row.
    let loaded = snapshot(&app).await;
    rebuild(&app).await;
    same(
        &snapshot(&app).await,
        &loaded,
        "the views rebuilt at rest after the rebuild under load",
    );
    std::sync::Arc::into_inner(app).unwrap().stop().await;
}

on_both_backends!(
    the_views_agree_with_the_shop_and_rebuild_row_for_row,
    the_views_agree_with_the_shop_and_rebuild_row_for_row_on_sqlite,
    the_views_agree_with_the_shop_and_rebuild_row_for_row_on_postgres,
);

/// The `sku` of each product of a search answer, in order.
fn skus(answer: &Value) -> Vec<String> {
    answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap().to_owned())
        .collect()
}

/// Walks `path` two at a time forwards (`starting_after`) and back from the
/// end (`ending_before`); both walks must give `whole`, each product once.
async fn walk_both_ways(app: &TestApp, path: &str, whole: &[Value]) {
    let ids: Vec<&str> = whole.iter().map(|p| p["id"].as_str().unwrap()).collect();
    let mut forward: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(id) => format!("{path}&limit=2&starting_after={id}"),
            None => format!("{path}&limit=2"),
        };
        let page = get(app, &url).await;
        let data = page["data"].as_array().unwrap();
        forward.extend(data.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        assert_eq!(
            page["has_more"],
            forward.len() < ids.len(),
            "{url} → {page}"
        );
        if page["has_more"] == false {
            break;
        }
        cursor = forward.last().cloned();
    }
    assert_eq!(forward, ids, "{path} forwards");
    let mut backward: Vec<String> = Vec::new();
    let mut before = ids.last().unwrap().to_string();
    backward.push(before.clone());
    loop {
        let url = format!("{path}&limit=2&ending_before={before}");
        let page = get(app, &url).await;
        let data = page["data"].as_array().unwrap();
        let mut got: Vec<String> = data
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect();
        got.extend(backward);
        backward = got;
        assert_eq!(
            page["has_more"],
            backward.len() < ids.len(),
            "{url} → {page}"
        );
        if page["has_more"] == false {
            break;
        }
        before = backward[0].clone();
    }
    assert_eq!(backward, ids, "{path} backwards");
}

on_both_backends!(
    search_ranks_in_tiers_and_pages_every_sort_both_ways,
    search_ranks_in_tiers_and_pages_every_sort_both_ways_on_sqlite,
    search_ranks_in_tiers_and_pages_every_sort_both_ways_on_postgres,
);
async fn search_ranks_in_tiers_and_pages_every_sort_both_ways(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = backend.shop_config(dir.path()).await;
    let shop = ["products", "inventory", "search"];
    let _teardown = Teardown::new(&config, &shop);
    let app = TestApp::start(config, &shop).await;
    // (sku, name, description, attributes, tier for "red mug")
    let catalog = [
        ("EXACT-1", "Red Mug", None, json!({}), Some(0)),
        ("WORDS", "Mug, red", None, json!({}), Some(1)),
        ("PREFIX", "Redwood mugs", None, json!({}), Some(2)),
        ("DESC", "Cup", Some("A red mug for tea"), json!({}), Some(3)),
        ("ATTR", "Red cup", None, json!({ "kind": "Mug" }), Some(3)),
        ("EXACT-2", "red  MUG!", None, json!({}), Some(0)),
        ("NOT-RED", "Blue mug", None, json!({}), None),
        ("MUGWORT", "Red mugwort", Some("red"), json!({}), Some(2)),
        ("WORDS-2", "Large red mug", None, json!({}), Some(1)),
    ];
    for (i, (sku, name, description, attributes, _)) in catalog.iter().enumerate() {
        let mut body = json!({ "sku": sku, "name": name, "price_minor": 1_000 + (i as i64 % 3) * 100,
            "currency": "EUR", "seller_id": if i % 2 == 0 { "acme" } else { "globex" }, "attributes": attributes });
        if let Some(d) = description {
            body["description"] = json!(d);
        }
        ok(&app, "POST", "/products", body).await;
    }
    app.drain().await;

    // Relevance: the tier, then newest first (creation time, then id).
    let all = get(&app, "/search/products?q=red+mug&limit=100").await;
    let data = all["data"].as_array().unwrap().clone();
    let tier = |sku: &str| catalog.iter().find(|c| c.0 == sku).unwrap().4;
    let mut expected = data.clone();
    expected.sort_by_key(|p| {
        (
            tier(p["sku"].as_str().unwrap()).expect("only matches are listed"),
            std::cmp::Reverse((
                p["created_at"].as_str().unwrap().to_owned(),
                p["id"].as_str().unwrap().to_owned(),
            )),
        )
    });
    assert_eq!(skus(&all), skus(&json!({ "data": expected })));
    let mut found = skus(&all);
    found.sort();
    let mut matching: Vec<String> = catalog
        .iter()
        .filter(|c| c.4.is_some())
        .map(|c| c.0.to_owned())
        .collect();
    matching.sort();
    assert_eq!(found, matching, "every product both words start a word of");
    assert!(skus(&all)[..2].iter().all(|s| s.starts_with("EXACT")));
    assert_eq!(all["has_more"], false);
    // Facets count the whole match, whatever the page.
    let one = get(&app, "/search/products?q=red+mug&limit=1").await;
    assert_eq!(one["has_more"], true);
    let sellers = &one["facets"]["seller_id"];
    assert_eq!(
        sellers["acme"].as_i64().unwrap() + sellers["globex"].as_i64().unwrap(),
        matching.len() as i64,
        "{one}"
    );
    assert_eq!(one["facets"]["attributes"]["kind"]["Mug"], 1, "{one}");
    assert_eq!(one["facets"]["in_stock"]["false"], matching.len(), "{one}");

    // Every sort walks both ways, each product once.
    for sort in ["relevance", "newest", "price_asc", "price_desc"] {
        let path = format!("/search/products?q=red+mug&sort={sort}");
        let whole = get(&app, &format!("{path}&limit=100")).await;
        walk_both_ways(&app, &path, whole["data"].as_array().unwrap()).await;
    }
    let everything = get(&app, "/search/products?sort=price_asc&limit=100").await;
    assert_eq!(everything["data"].as_array().unwrap().len(), catalog.len());
    walk_both_ways(
        &app,
        "/search/products?sort=price_asc",
        everything["data"].as_array().unwrap(),
    )
    .await;

    // A cursor the words do not find is refused.
    let blue = everything["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["sku"] == "NOT-RED")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app
        .get(&format!("/search/products?q=red+mug&starting_after={blue}"))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("resource_missing"))
    );
    app.stop().await;
}
