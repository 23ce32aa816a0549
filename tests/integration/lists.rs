//! The list convention on every list the contexts serve: the answer
//! `{"object": "list", "data", "has_more"}`, newest first, `limit`, the
//! cursors `starting_after` / `ending_before`, filters, and a 400 naming a
//! query parameter the list does not take.
use crate::common::{
    Backend, FULL_SHOP, Teardown, TestApp, list_all, on_both_backends, place, product, within,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A list answer from `path`, checked for its shape.
async fn page(app: &TestApp, path: &str) -> Value {
    let (status, body) = app.get(path).await;
    assert_eq!(status, StatusCode::OK, "GET {path} → {body}");
    assert_eq!(body["object"], "list", "GET {path} → {body}");
    assert!(body["data"].is_array(), "GET {path} → {body}");
    assert!(body["has_more"].is_boolean(), "GET {path} → {body}");
    body
}

/// The `key` of each object of a list answer, in order.
fn keys(page: &Value, key: &str) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o[key].as_str().unwrap().to_owned())
        .collect()
}

async fn refused(app: &TestApp, path: &str, code: &str) {
    refused_with(app, path, StatusCode::BAD_REQUEST, code).await;
}

async fn refused_with(app: &TestApp, path: &str, status: StatusCode, code: &str) {
    let (got, body) = app.get(path).await;
    assert_eq!(
        (got, &body["error"]["code"]),
        (status, &json!(code)),
        "GET {path} → {body}"
    );
}

on_both_backends!(
    every_list_pages_newest_first_filters_and_refuses_unknown_parameters,
    every_list_pages_newest_first_filters_and_refuses_unknown_parameters_on_sqlite,
    every_list_pages_newest_first_filters_and_refuses_unknown_parameters_on_postgres,
);
async fn every_list_pages_newest_first_filters_and_refuses_unknown_parameters(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = backend.shop_config(dir.path()).await;
    let _teardown = Teardown::new(&config, &FULL_SHOP);
    let app = TestApp::start(config, &FULL_SHOP).await;
    for sku in ["L1", "L2", "L3", "L4", "L5"] {
        product(&app, sku, 1_000, 10).await;
    }
    let (status, body) = app
        .post(
            "/coupons",
            &json!({ "code": "LIST10", "kind": "percent", "percent": 10, "currency": "EUR" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.drain().await;
    let mut orders = Vec::new();
    for buyer in ["lister", "lister", "lister", "other"] {
        orders.push(place(&app, "L1", buyer).await);
    }
    app.drain().await;

    // Products: the whole list, then the same objects two at a time, forwards
    // with starting_after and backwards with ending_before.
    let all = page(&app, "/products?limit=100").await;
    let every = keys(&all, "id");
    assert_eq!((every.len(), &all["has_more"]), (5, &json!(false)));
    let created: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["created_at"].as_str().unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "{created:?}");
    let first = page(&app, "/products?limit=2").await;
    assert_eq!(keys(&first, "id"), every[0..2]);
    assert_eq!(first["has_more"], true);
    let second = page(
        &app,
        &format!("/products?limit=2&starting_after={}", every[1]),
    )
    .await;
    assert_eq!(keys(&second, "id"), every[2..4]);
    assert_eq!(second["has_more"], true);
    let last = page(
        &app,
        &format!("/products?limit=2&starting_after={}", every[3]),
    )
    .await;
    assert_eq!(keys(&last, "id"), every[4..]);
    assert_eq!(last["has_more"], false);
    let back = page(
        &app,
        &format!("/products?limit=2&ending_before={}", every[4]),
    )
    .await;
    assert_eq!(keys(&back, "id"), every[2..4]);
    assert_eq!(back["has_more"], true);
    let top = page(&app, &format!("/products?ending_before={}", every[0])).await;
    assert_eq!(
        (keys(&top, "id").len(), &top["has_more"]),
        (0, &json!(false))
    );
    let by_sku = page(&app, "/products?sku=L3").await;
    assert_eq!(keys(&by_sku, "sku"), ["L3"]);
    assert_eq!(list_all(&app, "/products").await.len(), 5);

    // Stock items: an item's id is its SKU.
    let items = page(&app, "/inventory/items").await;
    let skus = keys(&items, "sku");
    assert_eq!(skus.len(), 5, "{items}");
    let l1 = items["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["sku"] == "L1")
        .unwrap();
    assert_eq!(
        (&l1["on_hand"], &l1["reserved"], &l1["available"]),
        (&json!(10), &json!(4), &json!(6)),
        "{l1}"
    );
    let after = page(
        &app,
        &format!("/inventory/items?limit=1&starting_after={}", skus[0]),
    )
    .await;
    assert_eq!(keys(&after, "sku"), [skus[1].as_str()]);
    assert_eq!(after["has_more"], true);
    assert_eq!(
        keys(&page(&app, "/inventory/items?sku=L2").await, "sku"),
        ["L2"]
    );

    // Orders: everyone's, a buyer's, by status.
    let everyone = page(&app, "/orders").await;
    assert_eq!(keys(&everyone, "id").len(), 4, "{everyone}");
    let mine = page(&app, "/orders?buyer_id=lister").await;
    assert_eq!(keys(&mine, "id").len(), 3, "{mine}");
    assert!(
        mine["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["buyer_id"] == "lister")
    );
    let awaiting = page(&app, "/orders?status=AWAITING_PAYMENT").await;
    let expected = everyone["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["status"] == "AWAITING_PAYMENT")
        .count();
    assert_eq!(keys(&awaiting, "id").len(), expected, "{everyone}");
    assert!(keys(&page(&app, "/orders?buyer_id=nobody").await, "id").is_empty());

    // An order's intent and reservations, by filter.
    for order_id in &orders {
        let intents = page(&app, &format!("/payments/intents?order_id={order_id}")).await;
        assert_eq!(keys(&intents, "order_id"), [order_id.as_str()], "{intents}");
        let held = page(
            &app,
            &format!("/inventory/reservations?order_id={order_id}"),
        )
        .await;
        assert_eq!(keys(&held, "sku"), ["L1"], "{held}");
    }
    let intents = page(&app, "/payments/intents").await;
    assert_eq!(keys(&intents, "id").len(), 4, "{intents}");
    let open = page(&app, "/payments/intents?status=REQUIRES_PAYMENT_METHOD").await;
    assert_eq!(keys(&open, "id").len(), 4, "{open}");
    let reserved = page(&app, "/inventory/reservations?status=RESERVED&sku=L1").await;
    assert_eq!(keys(&reserved, "id").len(), 4, "{reserved}");

    // Notifications: the merchant sees everyone's; a recipient only theirs.
    let inbox = list_all(&app, "/notifications?recipient=lister").await;
    assert!(!inbox.is_empty());
    assert!(
        inbox.iter().all(|n| n["recipient"] == "lister"),
        "{inbox:?}"
    );
    let everything = list_all(&app, "/notifications").await;
    assert!(everything.len() > inbox.len(), "{everything:?}");
    let placed = list_all(&app, "/notifications?event_type=orders.OrderPlaced").await;
    assert_eq!(placed.len(), 4, "{placed:?}");
    assert!(page(&app, "/notifications/endpoints").await["data"] == json!([]));

    // Shipping: the built-in carrier; no shipment, since nothing is paid.
    assert!(keys(&page(&app, "/shipping/carriers").await, "code").contains(&"test".to_owned()));
    assert_eq!(page(&app, "/shipping/shipments").await["data"], json!([]));

    // Coupons: a coupon's id is its code.
    assert_eq!(keys(&page(&app, "/coupons").await, "code"), ["LIST10"]);
    let redemptions = page(&app, "/coupons/list10/redemptions").await;
    assert_eq!(redemptions["data"], json!([]));

    // What every list refuses: a parameter it does not take (named in the
    // message), a bad limit, an unknown cursor, a filter value no object has.
    for path in [
        "/products?color=red",
        "/inventory/items?order_id=x",
        "/inventory/reservations?buyer_id=x",
        "/coupons?code=LIST10",
        "/coupons/LIST10/redemptions?order_id=x",
        "/payments/intents?buyer_id=x",
        "/shipping/shipments?buyer_id=x",
        "/shipping/carriers?kind=test",
        "/notifications?order_id=x",
        "/notifications/endpoints?url=x",
        "/orders?sku=x",
    ] {
        refused(&app, path, "unknown_parameter").await;
    }
    let (_, body) = app.get("/orders?buyer=lister").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`buyer`"),
        "{body}"
    );
    for (path, code) in [
        ("/orders?limit=0", "invalid_limit"),
        ("/orders?limit=101", "invalid_limit"),
        ("/orders?starting_after=", "invalid_cursor"),
        ("/orders?status=SHIPPED", "invalid_status"),
        ("/orders?status=PAID&status=PAID", "duplicate_parameter"),
        ("/payments/intents?status=PAID", "invalid_status"),
        ("/shipping/shipments?status=SENT", "invalid_status"),
        ("/inventory/reservations?status=HELD", "invalid_status"),
        ("/inventory/items?sku=%C3%97", "invalid_sku"),
        ("/inventory/reservations?sku=a%20b", "invalid_sku"),
        ("/coupons/LIST10/redemptions?status=USED", "invalid_status"),
        (
            "/notifications?event_type=orders.Nope",
            "invalid_event_type",
        ),
    ] {
        refused(&app, path, code).await;
    }
    // A cursor names an object of the list itself, not of another one: like
    // an unknown id it is missing (404). Both cursors page what lies between.
    for path in [
        "/orders?starting_after=nope".to_owned(),
        format!("/orders?starting_after={}", every[0]),
        format!("/orders?starting_after=nope&ending_before={}", every[0]),
    ] {
        refused_with(&app, &path, StatusCode::NOT_FOUND, "resource_missing").await;
    }
    let (_, page) = app.get("/orders?limit=3").await;
    let id = |i: usize| page["data"][i]["id"].as_str().unwrap().to_owned();
    let (_, between) = app
        .get(&format!(
            "/orders?starting_after={}&ending_before={}",
            id(0),
            id(2)
        ))
        .await;
    assert_eq!(keys(&between, "id"), [id(1)], "{between}");
    let (_, none) = app
        .get(&format!(
            "/orders?starting_after={}&ending_before={}",
            id(2),
            id(0)
        ))
        .await;
    assert_eq!(none["data"], json!([]), "{none}");
    let (status, body) = app.get("/notifications/endpoints/nope/deliveries").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    app.stop().await;
}

/// Walking a list page by page while rows are inserted: every row that was
/// there when the walk began is seen exactly once (new rows land before the
/// first page, newest first); walking back from the oldest then meets every
/// row, old and new, once.
async fn walking_pages_sees_each_row_once_while_rows_are_inserted(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = backend.config(dir.path()).await;
    let plugins = ["products"];
    let _teardown = Teardown::new(&config, &plugins);
    let app = std::sync::Arc::new(TestApp::start(config, &plugins).await);
    let create = |app: std::sync::Arc<TestApp>, sku: String| async move {
        let (status, body) = app
            .post(
                "/products",
                &json!({ "sku": sku, "name": sku, "price_minor": 100, "currency": "EUR" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    };
    for n in 0..45 {
        create(app.clone(), format!("OLD-{n:03}")).await;
    }
    let before: std::collections::BTreeSet<String> = list_all(&app, "/products")
        .await
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(before.len(), 45);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let inserter = tokio::spawn({
        let (app, stop, count) = (app.clone(), stop.clone(), count.clone());
        async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                create(app.clone(), format!("NEW-{n:04}")).await;
                n += 1;
                count.store(n, std::sync::atomic::Ordering::SeqCst);
            }
            n
        }
    });
    // The walk starts once inserts are under way.
    within(std::time::Duration::from_secs(30), async || {
        count.load(std::sync::atomic::Ordering::SeqCst) > 0
    })
    .await;
    // Forwards (older and older), 7 at a time.
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(id) => format!("/products?limit=7&starting_after={id}"),
            None => "/products?limit=7".to_owned(),
        };
        let body = page(&app, &path).await;
        seen.extend(keys(&body, "id"));
        cursor = seen.last().cloned();
        if body["has_more"] != true {
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let inserted = inserter.await.unwrap();
    assert!(inserted > 0, "rows were inserted during the walk");
    // Backwards from the oldest, 6 at a time, up to the newest (the inserts
    // have stopped, or this walk could chase them for ever).
    let oldest = seen.last().unwrap().clone();
    let mut back: Vec<String> = vec![oldest.clone()];
    let mut cursor = oldest;
    loop {
        let body = page(&app, &format!("/products?limit=6&ending_before={cursor}")).await;
        let ids = keys(&body, "id");
        for id in ids.iter().rev() {
            back.push(id.clone());
        }
        match ids.first() {
            Some(first) if body["has_more"] == true => cursor = first.clone(),
            _ => break,
        }
    }
    assert_eq!(
        back.len(),
        45 + inserted,
        "every row, old and new, walking back"
    );
    for walk in [&seen, &back] {
        let old: Vec<&String> = walk.iter().filter(|id| before.contains(*id)).collect();
        let unique: std::collections::BTreeSet<&String> = old.iter().copied().collect();
        assert_eq!(old.len(), 45, "each row that was there, once");
        assert_eq!(unique.len(), 45);
        let all_unique: std::collections::BTreeSet<&String> = walk.iter().collect();
        assert_eq!(all_unique.len(), walk.len(), "no row twice");
    }
    std::sync::Arc::into_inner(app).unwrap().stop().await;
}

on_both_backends!(
    walking_pages_sees_each_row_once_while_rows_are_inserted,
    walking_pages_sees_each_row_once_while_rows_are_inserted_on_sqlite,
    walking_pages_sees_each_row_once_while_rows_are_inserted_on_postgres,
);
