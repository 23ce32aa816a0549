//! End-to-end traces: the W3C `traceparent` a call's events carry, continued
//! by each handler, so that one order's saga across every context is one
//! trace — seen in the order's timeline (both backends) and exported over
//! OTLP by a real `mercato serve` to a receiver of the test's own.
use crate::common::*;
use axum::extract::State;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A client's own trace: 32 and 16 random hex digits, sampled.
fn client_trace() -> (String, String) {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let span_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    (format!("00-{trace_id}-{span_id}-01"), trace_id)
}

/// Each plugin's serving version, from an `/admin/plugins` answer.
fn versions(plugins: &Value) -> BTreeMap<String, String> {
    plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A `POST /orders` body: one unit of `sku` for `buyer`.
fn order(buyer: &str, sku: &str) -> Value {
    json!({ "buyer_id": buyer, "currency": "EUR", "items": [{ "sku": sku, "quantity": 1 }], "shipping_address": shipping_address() })
}

async fn ok(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> Value {
    let (status, value) = app.request(method, path, Some(&body), headers).await;
    assert!(status.is_success(), "{method} {path} → {status} {value}");
    value
}

/// The events every paid and shipped order's timeline shows, and a plugin
/// that handles each.
const SAGA: [(&str, &str); 7] = [
    ("orders.OrderPlaced", "inventory"),
    ("inventory.StockReserved", "orders"),
    ("orders.OrderConfirmed", "payments"),
    ("payments.PaymentIntentCreated", "orders"),
    ("payments.PaymentCaptured", "orders"),
    ("orders.OrderPaid", "shipping"),
    ("shipping.ShipmentCreated", "orders"),
];

async fn an_orders_saga_is_one_trace_in_its_timeline(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = backend.shop_config(dir.path()).await;
    let _teardown = Teardown::new(&config, &FULL_SHOP);
    let app = TestApp::start(config, &FULL_SHOP).await;
    product(&app, "TRACED", 1_500, 5).await;
    app.drain().await;
    let (traceparent, trace_id) = client_trace();
    let traced = [("traceparent", traceparent.as_str())];
    let placed = ok(&app, "POST", "/orders", order("b-trace", "TRACED"), &traced).await;
    let order_id = placed["id"].as_str().unwrap().to_owned();
    app.drain().await;
    let (_, intents) = app
        .get(&format!("/payments/intents?order_id={order_id}"))
        .await;
    let intent = intents["data"][0]["id"]
        .as_str()
        .expect("an intent")
        .to_owned();
    ok(
        &app,
        "POST",
        &format!("/payments/intents/{intent}/confirm"),
        json!({ "payment_method": "pm_card_ok" }),
        &traced,
    )
    .await;
    app.drain().await;

    let (status, plugins) = app.get("/admin/plugins").await;
    assert_eq!(status, StatusCode::OK, "{plugins}");
    let versions = versions(&plugins);
    let (status, timeline) = app.get(&format!("/admin/orders/{order_id}/timeline")).await;
    assert_eq!(status, StatusCode::OK, "{timeline}");
    assert_eq!(timeline["order_id"], order_id.as_str());
    let entries = timeline["entries"].as_array().unwrap();
    let types: Vec<&str> = entries
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    let mut at = 0;
    for (event_type, handler) in SAGA {
        // In commit order: each step after the one that caused it.
        let found = types[at..]
            .iter()
            .position(|t| *t == event_type)
            .unwrap_or_else(|| panic!("{event_type} after {:?}: {types:?}", &types[..at]));
        at += found;
        let entry = &entries[at];
        let handlers: Vec<&Value> = entry["handled_by"].as_array().unwrap().iter().collect();
        assert!(
            handlers.iter().any(|h| h["plugin"] == handler),
            "{handler} handled {event_type}: {entry}"
        );
    }
    for entry in entries {
        // Every step continued the client's trace: the request's events, and
        // every handler's events after them.
        assert_eq!(entry["trace_id"], trace_id.as_str(), "{entry}");
        assert_eq!(
            entry["plugin"],
            entry["event_type"]
                .as_str()
                .unwrap()
                .split('.')
                .next()
                .unwrap()
        );
        for handling in entry["handled_by"].as_array().unwrap() {
            let plugin = handling["plugin"].as_str().unwrap();
            assert_eq!(handling["outcome"], "handled", "{entry}");
            assert_eq!(handling["version"], versions[plugin].as_str(), "{entry}");
            assert!(handling["at"].as_str().unwrap() >= entry["at"].as_str().unwrap());
        }
    }

    // A malformed traceparent, or none, starts a trace of its own.
    for header in [Some("00-zz-not-a-trace"), Some(&*"0".repeat(55)), None] {
        let headers: Vec<(&str, &str)> = header.map(|h| ("traceparent", h)).into_iter().collect();
        let other = ok(
            &app,
            "POST",
            "/orders",
            order("b-other", "TRACED"),
            &headers,
        )
        .await;
        app.numbered().await;
        let (_, timeline) = app
            .get(&format!(
                "/admin/orders/{}/timeline",
                other["id"].as_str().unwrap()
            ))
            .await;
        let started = timeline["entries"][0]["trace_id"].as_str().unwrap();
        assert!(
            started.len() == 32 && started != trace_id && started != "0".repeat(32),
            "{header:?}: {timeline}"
        );
    }

    // Bad ids are refused; an id no event names is not found; the admin
    // token is needed.
    for (path, status, code) in [
        ("/admin/orders/%20/timeline", 400, "invalid_order_id"),
        (
            &*format!("/admin/orders/{}/timeline", "a".repeat(129)),
            400,
            "invalid_order_id",
        ),
        (
            "/admin/orders/%C3%A9t%C3%A9/timeline",
            400,
            "invalid_order_id",
        ),
        ("/admin/orders/no-such-order/timeline", 404, "unknown_order"),
    ] {
        let (answered, body) = app.get(path).await;
        assert_eq!(answered.as_u16(), status, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
    }
    let (status, _) = app
        .request_anonymous(
            "GET",
            &format!("/admin/orders/{order_id}/timeline"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

on_both_backends!(
    an_orders_saga_is_one_trace_in_its_timeline,
    an_orders_saga_is_one_trace_in_its_timeline_on_sqlite,
    an_orders_saga_is_one_trace_in_its_timeline_on_postgres,
);

/// What an OTLP/HTTP receiver got: each export's JSON body.
#[derive(Clone, Default)]
struct Exports(Arc<Mutex<Vec<Value>>>);

async fn receive(State(exports): State<Exports>, body: String) -> &'static str {
    let export: Value = serde_json::from_str(&body).expect("an OTLP/JSON export");
    exports.0.lock().unwrap().push(export);
    "{}"
}

/// One exported span, its attributes as strings.
#[derive(Debug, Clone)]
struct Span {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    start: u128,
    attributes: BTreeMap<String, String>,
}

fn spans(exports: &[Value]) -> Vec<Span> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut spans = Vec::new();
    for export in exports {
        for resource in export["resourceSpans"].as_array().into_iter().flatten() {
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    let attributes = span["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|kv| {
                            let value = kv["value"].as_object().and_then(|v| v.values().next());
                            (text(&kv["key"]), value.map(text).unwrap_or_default())
                        })
                        .collect();
                    spans.push(Span {
                        trace_id: text(&span["traceId"]),
                        span_id: text(&span["spanId"]),
                        parent: text(&span["parentSpanId"]),
                        name: text(&span["name"]),
                        start: text(&span["startTimeUnixNano"]).parse().unwrap_or(0),
                        attributes,
                    });
                }
            }
        }
    }
    spans
}

/// A `mercato serve` child with OTLP export to `endpoint` and JSON logs.
struct Served {
    child: std::process::Child,
    url: String,
    log: std::thread::JoinHandle<Vec<Value>>,
}

fn serve_exporting(dir: &std::path::Path, endpoint: &str, token: &str) -> Served {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mercato"));
    command
        .args(["serve", "--log-format", "json", "--listen", "127.0.0.1:0"])
        .args(["--admin-token", token])
        .arg("--data-dir")
        .arg(dir)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        // A span per guest statement as well.
        .env("MERCATO_TRACE_STORAGE", "true")
        .env("RUST_LOG", "info,tower_http=debug")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_TRACES_EXPORTER")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("MERCATO_DATABASE_URL")
        .env_remove("MERCATO_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let JsonLogged {
        child,
        mut log,
        lines,
        address,
    } = serve_json_logged(command);
    let log = std::thread::spawn(move || {
        log.extend(
            lines
                .map_while(Result::ok)
                .filter_map(|l| serde_json::from_str(&l).ok()),
        );
        log
    });
    Served {
        child,
        url: format!("http://{address}"),
        log,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_from_post_to_shipped_is_one_exported_trace() {
    let _turn = alone().await;
    let exports = Exports::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let receiver = axum::Router::new()
        .route("/v1/traces", axum::routing::post(receive))
        .with_state(exports.clone());
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let dir = tempfile::tempdir().unwrap();
    let token = uuid::Uuid::new_v4().simple().to_string();
    let served = serve_exporting(dir.path(), &endpoint, &token);
    let http = reqwest::Client::new();
    let (traceparent, trace_id) = client_trace();
    let client_span = traceparent[36..52].to_owned();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>, traced: bool| {
        let mut request = http
            .request(method, format!("{}{path}", served.url))
            .bearer_auth(&token);
        if traced {
            request = request.header("traceparent", &traceparent);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let answer = request.send().await.unwrap();
            let status = answer.status();
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            assert!(status.is_success(), "{status} {body}");
            body
        }
    };
    use reqwest::Method;
    call(
        Method::POST,
        "/products",
        Some(json!({ "sku": "OTLP", "name": "Otlp", "price_minor": 900, "currency": "EUR" })),
        false,
    )
    .await;
    call(
        Method::POST,
        "/inventory/items",
        Some(json!({ "sku": "OTLP", "on_hand": 3 })),
        false,
    )
    .await;
    // The SKU reaches orders' catalogue through events: an order may need
    // a moment before it is accepted.
    let mut placed = Value::Null;
    within(Duration::from_secs(30), async || {
        let answer = http
            .post(format!("{}/orders", served.url))
            .bearer_auth(&token)
            .header("traceparent", &traceparent)
            .json(&order("b-otlp", "OTLP"))
            .send()
            .await
            .unwrap();
        let created = answer.status() == StatusCode::CREATED;
        placed = answer.json().await.unwrap();
        created
    })
    .await;
    let order_id = placed["id"].as_str().unwrap().to_owned();
    let mut intent = String::new();
    within(Duration::from_secs(30), async || {
        let intents = call(
            Method::GET,
            &format!("/payments/intents?order_id={order_id}"),
            None,
            false,
        )
        .await;
        intent = intents["data"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        !intent.is_empty()
    })
    .await;
    call(
        Method::POST,
        &format!("/payments/intents/{intent}/confirm"),
        Some(json!({ "payment_method": "pm_card_ok" })),
        true,
    )
    .await;
    // Shipped: the shipment is made and orders has recorded it; then every
    // stream has caught up.
    let mut timeline = Value::Null;
    within(Duration::from_secs(60), async || {
        timeline = call(
            Method::GET,
            &format!("/admin/orders/{order_id}/timeline"),
            None,
            false,
        )
        .await;
        let shipped = timeline["entries"].as_array().unwrap().iter().any(|e| {
            e["event_type"] == "shipping.ShipmentCreated"
                && e["handled_by"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|h| h["plugin"] == "orders")
        });
        let events = call(Method::GET, "/admin/events", None, false).await;
        let caught_up = events["subscribers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["lag"] == 0)
            && events["outboxes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|o| o["unpublished"] == 0);
        shipped && caught_up
    })
    .await;
    timeline = call(
        Method::GET,
        &format!("/admin/orders/{order_id}/timeline"),
        None,
        false,
    )
    .await;
    let versions = versions(&call(Method::GET, "/admin/plugins", None, false).await);

    // A graceful stop exports what is buffered.
    let stopped = Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status();
    assert!(stopped.unwrap().success());
    let mut child = served.child;
    assert!(child.wait().unwrap().success());
    let log = served.log.join().unwrap();
    let spans = spans(&exports.0.lock().unwrap());
    let traced: Vec<&Span> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
    let by_id: BTreeMap<&str, &Span> = traced.iter().map(|s| (s.span_id.as_str(), *s)).collect();
    let calls: Vec<&Span> = traced
        .iter()
        .copied()
        .filter(|s| s.name == "plugin.call")
        .collect();
    assert!(
        !calls.is_empty(),
        "no plugin call in trace {trace_id}: {spans:?}"
    );
    for call in &calls {
        let plugin = &call.attributes["plugin"];
        assert_eq!(call.attributes["version"], versions[plugin], "{call:?}");
        assert_eq!(call.attributes["outcome"], "ok", "{call:?}");
        assert!(
            call.attributes["fuel"].parse::<u64>().unwrap() > 0,
            "{call:?}"
        );
        assert!(call.attributes.contains_key("micros"), "{call:?}");
        // Each call's parent is in the trace, and began before it: the
        // request that made it, or the call that emitted its event.
        let parent = by_id
            .get(call.parent.as_str())
            .unwrap_or_else(|| panic!("the parent of {call:?} is not in the trace"));
        assert!(parent.start <= call.start, "{parent:?} → {call:?}");
        match call.attributes["kind"].as_str() {
            "request" => {
                assert_eq!(parent.name, "request", "{call:?}");
                assert_eq!(
                    parent.parent, client_span,
                    "the request continues the client's span"
                );
            }
            "event" => {
                assert_eq!(parent.name, "plugin.call", "{call:?}");
                let source = call.attributes["target"].split('.').next().unwrap();
                assert_eq!(
                    &parent.attributes["plugin"], source,
                    "{parent:?} → {call:?}"
                );
            }
            other => panic!("kind {other}"),
        }
    }
    // Each call's statements are its children, when asked for.
    let statements: Vec<&Span> = traced
        .iter()
        .copied()
        .filter(|s| s.name == "storage.statement")
        .collect();
    assert!(!statements.is_empty(), "no statement spans: {traced:?}");
    for statement in &statements {
        let call = by_id[statement.parent.as_str()];
        assert_eq!(call.name, "plugin.call", "{statement:?}");
        assert!(
            ["execute", "query"].contains(&statement.attributes["db.operation"].as_str()),
            "{statement:?}"
        );
        assert!(
            !statement.attributes["db.query.text"].is_empty(),
            "{statement:?}"
        );
    }
    // The two requests the client traced, and every handling of every
    // event of the order's saga, each a span of this one trace.
    for (plugin, target) in [
        ("orders", "POST /orders".to_owned()),
        (
            "payments",
            format!("POST /payments/intents/{intent}/confirm"),
        ),
    ] {
        assert!(
            calls.iter().any(|c| c.attributes["plugin"] == plugin
                && c.attributes["target"] == target
                && c.attributes["kind"] == "request"),
            "{plugin} {target}: {calls:?}"
        );
    }
    let mut handled = BTreeSet::new();
    for entry in timeline["entries"].as_array().unwrap() {
        assert_eq!(entry["trace_id"], trace_id.as_str(), "{entry}");
        for handling in entry["handled_by"].as_array().unwrap() {
            let (plugin, target) = (
                handling["plugin"].as_str().unwrap(),
                entry["event_type"].as_str().unwrap(),
            );
            assert!(
                calls.iter().any(|c| c.attributes["plugin"] == plugin
                    && c.attributes["target"] == target
                    && c.attributes["version"] == handling["version"].as_str().unwrap()),
                "{plugin} handling {target} is a span of the trace: {calls:?}"
            );
            handled.insert(target.to_owned());
        }
    }
    for (event_type, _) in SAGA {
        assert!(
            handled.contains(event_type),
            "{event_type} handled: {handled:?}"
        );
    }
    // The JSON log names the trace on the lines of its requests.
    let of_trace = log
        .iter()
        .filter(|l| l["spans"][0]["trace_id"] == trace_id.as_str())
        .count();
    assert!(
        of_trace >= 4,
        "the traced requests' lines carry trace_id: {log:?}"
    );
}
