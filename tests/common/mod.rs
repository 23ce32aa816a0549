//! `TestApp`: a real host with real plugin components on a real port, a fresh
//! data directory, and `drain()` to wait for event delivery instead of sleeping.
#![allow(dead_code)]

use mercato::config::{Config, EventsConfig, StorageConfig};
use mercato::host::{Component, Host};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct TestApp {
    pub host: Host,
    pub url: String,
    /// The address `url` points at, for raw connections.
    pub addr: std::net::SocketAddr,
    /// Sends the host's admin token with every request (an explicit
    /// `authorization` header replaces it).
    pub client: reqwest::Client,
    /// Sends no admin token.
    pub anonymous: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A configuration for tests: fresh data dir, fast retries, a small instance pool.
pub fn config(data_dir: &Path) -> Config {
    Config {
        data_dir: data_dir.to_owned(),
        max_instances: 64,
        events: EventsConfig {
            max_attempts: 5,
            backoff_base_ms: 10,
            backoff_max_ms: 200,
            poll_ms: 200,
        },
        ..Config::default()
    }
}

pub fn components(names: &[&str]) -> Vec<Component> {
    names
        .iter()
        .map(|name| Component {
            origin: format!("test plugin {name}"),
            name: None,
            bytes: std::fs::read(mercato::artifacts::path(name)).expect("plugin artifact"),
        })
        .collect()
}

/// PostgreSQL for tests: `MERCATO_TEST_DATABASE_URL` or the local server. Fails
/// with a clear message when it is not reachable; it never skips.
pub async fn postgres_url() -> String {
    let url = std::env::var("MERCATO_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    if let Err(e) = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await {
        panic!(
            "PostgreSQL is required for this test and is not reachable at {url}: {e}. \
             Start it, or point MERCATO_TEST_DATABASE_URL at a server (trust or password auth, superuser)."
        );
    }
    url
}

/// A configuration storing every plugin in PostgreSQL under a fresh namespace.
pub async fn postgres_config(data_dir: &Path) -> Config {
    let namespace = format!("t{}_", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    Config {
        storage: StorageConfig {
            backend: "postgres".into(),
            url: Some(postgres_url().await),
            namespace,
            max_connections: 8,
        },
        ..config(data_dir)
    }
}

/// Drops the schemas and roles a PostgreSQL test created.
pub async fn drop_postgres(config: &Config, plugins: &[&str]) {
    let url = config.storage.url.as_deref().expect("postgres url");
    for plugin in plugins {
        mercato::storage::postgres::PgDb::drop_schema(url, &config.storage.namespace, plugin)
            .await
            .expect("dropping test schema");
    }
}

impl TestApp {
    pub async fn start(config: Config, plugins: &[&str]) -> TestApp {
        let host = Host::start(config, components(plugins))
            .await
            .expect("host starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(mercato::http::serve(host.clone(), listener, async move {
            let _ = stopped.await;
        }));
        let mut auth = reqwest::header::HeaderMap::new();
        auth.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", host.admin_token()).parse().unwrap(),
        );
        let client = reqwest::Client::builder()
            .default_headers(auth)
            .build()
            .unwrap();
        TestApp {
            host,
            url,
            addr,
            client,
            anonymous: reqwest::Client::new(),
            stop: Some(stop),
            server: Some(server),
        }
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        self.send(&self.client, method, path, body, headers).await
    }

    /// [`TestApp::request`] without the admin token.
    pub async fn request_anonymous(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        self.send(&self.anonymous, method, path, body, headers)
            .await
    }

    async fn send(
        &self,
        client: &reqwest::Client,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = client.request(method.parse().unwrap(), format!("{}{path}", self.url));
        if let Some(body) = body {
            req = req.json(body);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request("GET", path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.request("POST", path, Some(body), &[]).await
    }

    /// Waits until every committed event has been consumed by its subscribers.
    pub async fn drain(&self) {
        self.host
            .drain(Duration::from_secs(60))
            .await
            .expect("events drained");
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let resp = self
            .client
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap();
        resp.text().await.unwrap()
    }

    /// Events the audit plugin has recorded.
    pub async fn seen(&self) -> Vec<Value> {
        let (status, body) = self.get("/audit/seen").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["events"].as_array().unwrap().clone()
    }

    /// Stops the server (in-flight requests finish) and the router.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

/// Rows of a plugin's SQLite database, read directly (outside the host).
pub fn sqlite_count(data_dir: &Path, plugin: &str, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(data_dir.join(format!("{plugin}.db"))).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

// ---- shop and hot-swap helpers ----

pub fn component(name: &str) -> Vec<u8> {
    std::fs::read(mercato::artifacts::path(name)).expect("built component")
}

pub async fn put_component(
    app: &TestApp,
    plugin: &str,
    bytes: Vec<u8>,
    signature: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .put(format!("{}/admin/plugins/{plugin}", app.url))
        .header("content-type", "application/wasm")
        .body(bytes);
    if let Some(sig) = signature {
        req = req.header("x-mercato-signature", sig);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn plugin_version(app: &TestApp, name: &str) -> (String, String) {
    let (_, plugins) = app.get("/admin/plugins").await;
    let p = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} not loaded"))
        .clone();
    (
        p["version"].as_str().unwrap().to_owned(),
        p["sha256"].as_str().unwrap().to_owned(),
    )
}

pub fn shop_config(dir: &std::path::Path) -> Config {
    let mut config = config(dir);
    config.limits.deadline_ms = 10_000;
    // A rule's 100 ms deadline is a production budget; a debug build running
    // several hosts on two cores can miss it for no fault of the rule.
    config.rules.limits.deadline_ms = 10_000;
    config.max_instances = 256;
    config
}

pub const SHOP: [&str; 5] = ["products", "orders", "inventory", "payments", "coupons"];

pub async fn seed(app: &TestApp, sku: &str, on_hand: i64) {
    product(app, sku, 1_000, on_hand).await;
    app.drain().await;
}

/// Creates product `sku` at `price_minor` EUR with `on_hand` units in stock.
pub async fn product(app: &TestApp, sku: &str, price_minor: i64, on_hand: i64) {
    let (status, body) = app
        .post(
            "/products",
            &json!({ "sku": sku, "name": sku, "price_minor": price_minor, "currency": "EUR" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .post(
            "/inventory/items",
            &json!({ "sku": sku, "on_hand": on_hand }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

pub async fn place(app: &TestApp, sku: &str, buyer: &str) -> String {
    let (status, body) = app
        .post("/orders", &json!({ "buyer_id": buyer, "currency": "EUR", "items": [{ "sku": sku, "quantity": 1 }] }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Polls until `check` holds; returns how long it took.
pub async fn within(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        tokio::task::yield_now().await;
    }
    started.elapsed()
}

/// A copy of the `hostile` test plugin whose second migration is `sql`: the
/// component carries a slot of dots (`plugins/testing/hostile/migration-slot.sql`)
/// that is overwritten in place, padded with spaces, so the component stays valid.
pub fn hostile_with_migration(sql: &str) -> Vec<u8> {
    const MARKER: &[u8] = b"-- mercato-test-migration-slot ";
    let mut bytes = component("hostile");
    let start = bytes
        .windows(MARKER.len())
        .position(|w| w == MARKER)
        .expect("the hostile component carries its migration slot");
    let len = MARKER.len()
        + bytes[start + MARKER.len()..]
            .iter()
            .take_while(|b| **b == b'.')
            .count();
    assert!(
        sql.len() < len,
        "migration of {} bytes does not fit the {len}-byte slot",
        sql.len()
    );
    let slot = &mut bytes[start..start + len];
    slot.fill(b' ');
    slot[..sql.len()].copy_from_slice(sql.as_bytes());
    bytes
}
