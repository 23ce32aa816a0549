//! Hot swap under continuous load, in a test binary of its own so that no other
//! test competes for the two cores while the load runs.
mod common;

use common::{SHOP, TestApp, component, place, put_component, seed, shop_config, within};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploying_and_rolling_back_under_load_fails_no_request_and_loses_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let app = Arc::new(TestApp::start(shop_config(dir.path()), &SHOP).await);
    seed(&app, "HOT", 10_000_000).await;
    let probe = place(&app, "HOT", "probe").await;

    const LOAD: Duration = Duration::from_secs(30);
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
                        .post("/orders", &json!({ "buyer_id": format!("w{w}-{}", n % 16), "currency": "EUR", "items": [{ "sku": "HOT", "quantity": 1 }] }))
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
    assert!(
        total as f64 / LOAD.as_secs_f64() >= 200.0,
        "the load must reach 200 requests/s to mean anything"
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
        assert_eq!(reservations["reservations"].as_array().unwrap().len(), 1);
    }
    let (_, events) = app.get("/admin/events").await;
    assert_eq!(events["dead_letters"], json!([]));
    Arc::try_unwrap(app)
        .ok()
        .expect("workers are done")
        .stop()
        .await;
}
