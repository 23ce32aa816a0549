//! The shop under test: a real host with the five shop plugins (plus `noop`) on
//! a fresh data directory, started in-process the way `tests/common` does, and
//! served on a loopback port for the HTTP scenarios. It can be restarted on the
//! same data directory (the restart scenario).
use anyhow::{Context, bail, ensure};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use mercato::app::App;
use mercato::config::{Config, StorageConfig};
use mercato::deploy::Component;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// The five bounded contexts of the shop.
pub const SHOP: [&str; 5] = ["products", "orders", "inventory", "payments", "coupons"];

/// Where the plugins keep their data.
pub enum Backend {
    Sqlite,
    /// Every plugin in its own schema under a fresh namespace.
    Postgres {
        url: String,
    },
}

pub struct Shop {
    pub host: App,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub gateway: Gateway,
    pub data_dir: tempfile::TempDir,
    /// How long this host took to start: `App::start` (loading every
    /// component) until `GET /readyz` answered 200 over loopback.
    pub start_time: Duration,
    config: Config,
    plugins: Vec<&'static str>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The configuration: defaults, a fresh data directory, and the test suite's
/// 10 s plugin deadline (the default 1 s is for a machine that is not also
/// running the load generator at 100 % CPU).
fn config(data_dir: &std::path::Path, backend: &Backend) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_owned(),
        ..Config::default()
    };
    config.limits.deadline_ms = 10_000;
    if let Backend::Postgres { url } = backend {
        config.storage = StorageConfig {
            backend: mercato::storage::BackendKind::Postgres,
            url: Some(url.clone()),
            namespace: format!("bench{}_", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            ..StorageConfig::default()
        };
    }
    config
}

fn components(names: &[&str]) -> anyhow::Result<Vec<Component>> {
    names
        .iter()
        .map(|name| {
            Ok(Component {
                origin: format!("plugin {name}"),
                name: Some((*name).to_owned()),
                bytes: std::fs::read(mercato_test_artifacts::path(name))
                    .with_context(|| format!("reading the {name} component"))?,
            })
        })
        .collect()
}

/// The PostgreSQL server the tests use (`MERCATO_TEST_DATABASE_URL`, else the
/// local one), or why it cannot be reached.
pub async fn postgres_url() -> Result<String, String> {
    let url = std::env::var("MERCATO_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let connect = <sqlx::PgConnection as sqlx::Connection>::connect(&url);
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => Ok(url),
        Ok(Err(e)) => Err(format!("PostgreSQL is not reachable at {url}: {e}")),
        Err(_) => Err(format!("PostgreSQL at {url} did not answer within 5 s")),
    }
}

impl Shop {
    pub async fn start(backend: Backend) -> anyhow::Result<Shop> {
        let mut plugins = SHOP.to_vec();
        plugins.push("noop");
        Shop::start_with(backend, &plugins).await
    }

    /// A host with just `plugins`.
    pub async fn start_with(backend: Backend, plugins: &[&'static str]) -> anyhow::Result<Shop> {
        let data_dir = tempfile::tempdir()?;
        let config = config(data_dir.path(), &backend);
        Shop::launch(data_dir, config, plugins.to_vec()).await
    }

    /// Stops this host and starts another on the same data directory with the
    /// same plugins: their databases, deployed versions and compiled code are
    /// kept, as across a restart of `mercato serve`. `start_time` is the new
    /// host's.
    pub async fn restart(self) -> anyhow::Result<Shop> {
        let Shop {
            host,
            gateway,
            data_dir,
            config,
            plugins,
            stop,
            server,
            ..
        } = self;
        let _ = stop.send(());
        // The server shuts the host down (relay, pruner) once it has stopped.
        server.await??;
        drop((host, gateway));
        Shop::launch(data_dir, config, plugins).await
    }

    /// Starts a host on `data_dir` and serves it on a loopback port.
    async fn launch(
        data_dir: tempfile::TempDir,
        config: Config,
        plugins: Vec<&'static str>,
    ) -> anyhow::Result<Shop> {
        // Read before the clock starts: `mercato serve` has them in its binary.
        let components = components(&plugins)?;
        let client = reqwest::Client::new();
        let started = Instant::now();
        let host = App::start(config.clone(), components).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(mercato::http::serve(host.clone(), listener, async move {
            let _ = stopped.await;
        }));
        let ready = client
            .get(format!("{url}/readyz"))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .context("GET /readyz")?;
        ensure!(
            ready.status() == reqwest::StatusCode::OK,
            "GET /readyz answered {}",
            ready.status()
        );
        let start_time = started.elapsed();
        Ok(Shop {
            gateway: Gateway {
                router: mercato::http::app(host.clone()),
                bearer: format!("Bearer {}", host.admin_token()),
            },
            host,
            url,
            data_dir,
            start_time,
            config,
            plugins,
            stop,
            server,
        })
    }

    /// A product with `on_hand` units in stock, projected into orders.
    pub async fn seed(&self, sku: &str, on_hand: i64) -> anyhow::Result<()> {
        self.gateway
            .ok(
                "POST",
                "/products",
                Some(&json!({ "sku": sku, "name": sku, "price_minor": 1_000, "currency": "EUR" })),
            )
            .await?;
        self.gateway
            .ok(
                "POST",
                "/inventory/items",
                Some(&json!({ "sku": sku, "on_hand": on_hand })),
            )
            .await?;
        self.drain().await
    }

    /// Waits until every committed event has been handled.
    pub async fn drain(&self) -> anyhow::Result<()> {
        self.host
            .drain(Duration::from_secs(120))
            .await
            .map_err(anyhow::Error::msg)
    }

    /// Stops the server and the router; drops a PostgreSQL namespace.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.server.await??;
        if let (Some(url), mercato::storage::BackendKind::Postgres) = (
            self.config.storage.url.as_deref(),
            self.config.storage.backend,
        ) {
            for plugin in &self.plugins {
                mercato::storage::postgres::PgDb::drop_schema(
                    url,
                    &self.config.storage.namespace,
                    plugin,
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// The shop's HTTP gateway (the full axum router: middleware, routing, the unit
/// of work) called in-process, without a socket. Cheap to clone, so each
/// buyer can be its own task and the load spreads over the runtime's workers.
#[derive(Clone)]
pub struct Gateway {
    router: axum::Router,
    /// The merchant's credential (the admin token), sent with every call.
    bearer: String,
}

impl Gateway {
    /// One request.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("authorization", &self.bearer)
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))?;
        let response = self.router.clone().oneshot(request).await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// A request that must succeed (2xx).
    pub async fn ok(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let (status, value) = self.call(method, path, body).await?;
        ensure!(
            status.is_success(),
            "{method} {path} answered {status}: {value}"
        );
        Ok(value)
    }

    /// Places an order for one unit of `sku`; returns its id.
    pub async fn place(&self, buyer: &str, sku: &str) -> anyhow::Result<String> {
        let body = json!({ "buyer_id": buyer, "currency": "EUR", "items": [{ "sku": sku, "quantity": 1 }], "shipping_address": shipping_address() });
        let (status, value) = self.call("POST", "/orders", Some(&body)).await?;
        if status != StatusCode::CREATED {
            bail!("POST /orders answered {status}: {value}");
        }
        value["id"]
            .as_str()
            .map(str::to_owned)
            .context("POST /orders answered without an id")
    }
}

/// The `shipping_address` every `POST /orders` body carries.
fn shipping_address() -> Value {
    json!({ "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB" })
}
