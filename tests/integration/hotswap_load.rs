//! Hot swap under continuous load. Its host runs while no other test's host
//! does (`TestApp::start_alone`), so the rate floors measure this test alone.
use crate::common::{
    Backend, SHOP, Teardown, TestApp, component, count, host_count, on_both_backends, place,
    put_component, seed, shipping_address, within,
};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long the load runs.
const LOAD: Duration = Duration::from_secs(30);

/// Requests per second a run must sustain to mean anything.
const MIN_RATE: f64 = 200.0;

/// The same on PostgreSQL, where every statement is a round trip to a server
/// sharing the two cores: a debug build spends about three times SQLite's CPU
/// per request (host and server together). Measured on the 2-core dev machine
/// while other builds loaded it (load average 8-13): 98-202 requests/s on
/// PostgreSQL (200 or more in 2 runs of 9), 385-600 on SQLite in the same
/// conditions. The floor keeps a margin under the worst run; the eight workers
/// keep requests in flight across the deploy and the rollback either way, and
/// every other assertion is the same.
const MIN_RATE_ON_POSTGRES: f64 = 75.0;

on_both_backends!(
    deploying_and_rolling_back_under_load_fails_no_request_and_loses_no_event,
    deploying_and_rolling_back_under_load_fails_no_request_and_loses_no_event_on_sqlite,
    deploying_and_rolling_back_under_load_fails_no_request_and_loses_no_event_on_postgres,
);
async fn deploying_and_rolling_back_under_load_fails_no_request_and_loses_no_event(
    backend: Backend,
) {
    let min_rate = match backend {
        Backend::Sqlite => MIN_RATE,
        Backend::Postgres => MIN_RATE_ON_POSTGRES,
    };
    let dir = tempfile::tempdir().unwrap();
    let config = backend.shop_config(dir.path()).await;
    let _teardown = Teardown::new(&config, &SHOP);
    // Alone: no other test's host (nor the other backend's run) shares the
    // cores while the load runs.
    let app = Arc::new(TestApp::start_alone(config.clone(), &SHOP).await);
    seed(&app, "HOT", 10_000_000).await;
    let probe = place(&app, "HOT", "probe").await;

    let started = Instant::now();
    let requests = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (app, requests, failures) = (app.clone(), requests.clone(), failures.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                let mut n = 0;
                while started.elapsed() < LOAD {
                    n += 1;
                    let (status, body) = app
                        .post("/orders", &json!({ "buyer_id": format!("w{w}-{}", n % 16), "currency": "EUR", "items": [{ "sku": "HOT", "quantity": 1 }], "shipping_address": shipping_address() }))
                        .await;
                    requests.fetch_add(1, Ordering::Relaxed);
                    if status != StatusCode::CREATED {
                        failures.fetch_add(1, Ordering::Relaxed);
                        eprintln!("placement failed: {status} {body}");
                        continue;
                    }
                    let id = body["id"].as_str().unwrap().to_owned();
                    // Reads of the new order and of the buyer's list: a shop's
                    // traffic is mostly reads.
                    for path in [format!("/orders/{id}"), format!("/orders?buyer_id=w{w}-{}", n % 16)] {
                        let (status, body) = app.get(&path).await;
                        requests.fetch_add(1, Ordering::Relaxed);
                        if status != StatusCode::OK {
                            failures.fetch_add(1, Ordering::Relaxed);
                            eprintln!("read failed: {status} {body}");
                        }
                    }
                    ids.push(id);
                    if n % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                ids
            })
        })
        .collect();

    // Deploy v2 (migration adds a column, the API returns it) a third of the way in.
    tokio::time::sleep(LOAD / 3).await;
    let (status, body) = put_component(&app, "orders", component("orders-v2"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["current"]["version"], "2.0.0");
    let appeared = within(Duration::from_secs(1), async || {
        app.get(&format!("/orders/{probe}")).await.1["channel"] == "web"
    })
    .await;
    eprintln!("new field visible {appeared:?} after the deploy returned");

    // Roll back two thirds of the way in.
    tokio::time::sleep(LOAD / 3).await;
    let (status, body) = app
        .request("POST", "/admin/plugins/orders/rollback", None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["current"]["version"], "0.1.0");
    within(Duration::from_secs(1), async || {
        app.get(&format!("/orders/{probe}"))
            .await
            .1
            .get("channel")
            .is_none()
    })
    .await;

    let mut ids = vec![probe];
    for w in workers {
        ids.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed();
    let total = requests.load(Ordering::Relaxed);
    eprintln!(
        "{total} requests in {elapsed:?} = {:.0} requests/s",
        total as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "failed requests during deploy and rollback"
    );

    // Every order went through the saga exactly once: one reservation each.
    app.drain().await;
    let item = app.get("/inventory/items/HOT").await.1;
    assert_eq!(
        item["reserved"],
        ids.len(),
        "reservations = orders: none lost, none doubled"
    );
    for id in ids.iter().step_by(97) {
        let (_, order) = app.get(&format!("/orders/{id}")).await;
        assert_eq!(order["status"], "AWAITING_PAYMENT", "{order}");
        let (_, reservations) = app
            .get(&format!("/inventory/reservations?order_id={id}"))
            .await;
        assert_eq!(reservations["data"].as_array().unwrap().len(), 1);
    }
    let (_, events) = app.get("/admin/events").await;
    assert_eq!(events["dead_letters"], json!([]));
    // The same in the orders database: one row and one OrderPlaced event per
    // order.
    let orders = count(&config, "orders", "SELECT COUNT(*) FROM orders").await;
    assert_eq!(orders, ids.len() as i64);
    let placed = "SELECT COUNT(*) FROM outbox_events WHERE event_type = 'OrderPlaced'";
    assert_eq!(
        host_count(&config, "orders", placed).await,
        ids.len() as i64
    );
    // Last, so that a slow run still checks everything above.
    assert!(
        total as f64 / LOAD.as_secs_f64() >= min_rate,
        "the load must reach {min_rate} requests/s on {backend:?} to mean anything"
    );
    Arc::try_unwrap(app)
        .ok()
        .expect("workers are done")
        .stop()
        .await;
}
