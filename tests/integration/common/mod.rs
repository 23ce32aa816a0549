//! `TestApp`: a real host with real plugin components on a real port, a fresh
//! data directory, and `drain()` to wait for event delivery instead of sleeping.

pub mod receiver;

use mercato::app::App;
use mercato::config::{Config, EventsConfig, StorageConfig};
use mercato::deploy::Component;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct TestApp {
    pub host: App,
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
    _turn: Turn,
}

/// Whose turn it is to run a host. Every test shares one process; tests that
/// measure a rate under load (`hotswap_load`) run theirs while no other test's
/// host runs, as they did in a test binary of their own.
struct Turns {
    /// Hosts of ordinary tests running now.
    shared: usize,
    /// A load test's host is running.
    alone: bool,
}

static TURNS: std::sync::Mutex<Turns> = std::sync::Mutex::new(Turns {
    shared: 0,
    alone: false,
});
static TURN_ENDED: tokio::sync::Notify = tokio::sync::Notify::const_new();

enum Turn {
    Shared,
    Alone,
}

impl Turn {
    /// Waits until `ready` holds for the turns, then takes one with `take`.
    async fn wait(ready: impl Fn(&Turns) -> bool, take: impl Fn(&mut Turns)) {
        loop {
            let ended = TURN_ENDED.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            {
                let mut turns = TURNS.lock().unwrap();
                if ready(&turns) {
                    take(&mut turns);
                    return;
                }
            }
            ended.await;
        }
    }

    /// Any number of ordinary hosts run together, but not beside a load test.
    async fn shared() -> Turn {
        Turn::wait(|t| !t.alone, |t| t.shared += 1).await;
        Turn::Shared
    }

    /// A load test waits until no other host runs; meanwhile new ones still
    /// start (a test may be between its first and its second host), so it
    /// takes its turn in a gap between tests.
    async fn alone() -> Turn {
        Turn::wait(|t| !t.alone && t.shared == 0, |t| t.alone = true).await;
        Turn::Alone
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut turns = TURNS.lock().unwrap_or_else(|e| e.into_inner());
        match self {
            Turn::Shared => turns.shared -= 1,
            Turn::Alone => turns.alone = false,
        }
        drop(turns);
        TURN_ENDED.notify_waiters();
    }
}

/// A turn taken with [`alone`]: while it is held no [`TestApp`] host runs.
pub struct Alone(#[allow(dead_code)] Turn);

/// Waits until no other test's in-process host runs and keeps them from
/// starting until the answer is dropped: for tests that run hosts of their own
/// as processes (`cluster`) and time how fast they react under load.
pub async fn alone() -> Alone {
    Alone(Turn::alone().await)
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
            bytes: std::fs::read(mercato_test_artifacts::path(name)).expect("plugin artifact"),
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
            backend: mercato::storage::BackendKind::Postgres,
            url: Some(postgres_url().await),
            namespace,
            // Two tests run at once, each host with up to nine plugins: with
            // eight connections a plugin they could pass the test server's
            // `max_connections = 100` and fail on "too many clients".
            max_connections: 4,
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

/// Where a test's plugins keep their data. The suites that must hold on both
/// backends write each test once, as `async fn name(backend: Backend)`, and
/// declare its two tests with [`on_both_backends!`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file per plugin in the data dir.
    Sqlite,
    /// One schema and role per plugin on the test server, under a fresh namespace.
    Postgres,
}

impl Backend {
    /// [`config`] on this backend.
    pub async fn config(self, data_dir: &Path) -> Config {
        self.storage(config(data_dir)).await
    }

    /// [`shop_config`] on this backend.
    pub async fn shop_config(self, data_dir: &Path) -> Config {
        self.storage(shop_config(data_dir)).await
    }

    /// `config` as it is on SQLite; on PostgreSQL the same settings with
    /// [`postgres_config`]'s storage (a fresh namespace on the test server).
    pub async fn storage(self, mut config: Config) -> Config {
        if self == Backend::Postgres {
            config.storage = postgres_config(&config.data_dir).await.storage;
        }
        config
    }
}

/// `on_both_backends!(name, name_on_sqlite, name_on_postgres)`: two tests that
/// run `async fn name(backend: Backend)`, one on each backend.
macro_rules! on_both_backends {
    ($body:ident, $sqlite:ident, $postgres:ident $(,)?) => {
        const _: () = assert!(
            $crate::common::same(
                stringify!($sqlite),
                concat!(stringify!($body), "_on_sqlite")
            ) && $crate::common::same(
                stringify!($postgres),
                concat!(stringify!($body), "_on_postgres")
            ),
            "the tests are named after their body"
        );

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            $body($crate::common::Backend::Sqlite).await
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            $body($crate::common::Backend::Postgres).await
        }
    };
}
pub(crate) use on_both_backends;

/// String equality in a constant (for [`on_both_backends!`]).
pub const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Drops a PostgreSQL test's schemas and roles when it goes out of scope: at
/// the end of a passing test, and while a failing one unwinds. Nothing to do on
/// SQLite (the data dir is a `TempDir`). Create it before the first `TestApp`.
pub struct Teardown {
    postgres: Option<(String, String)>,
    plugins: Vec<String>,
}

impl Teardown {
    /// Tears down `plugins` under `config`'s namespace with [`drop_postgres`],
    /// then any other schema or role the host created under that namespace.
    pub fn new(config: &Config, plugins: &[&str]) -> Teardown {
        let postgres =
            (config.storage.backend == mercato::storage::BackendKind::Postgres).then(|| {
                (
                    config.storage.url.clone().expect("postgres url"),
                    config.storage.namespace.clone(),
                )
            });
        Teardown {
            postgres,
            plugins: plugins.iter().map(|p| p.to_string()).collect(),
        }
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        let Some((url, namespace)) = self.postgres.take() else {
            return;
        };
        let plugins = std::mem::take(&mut self.plugins);
        // `drop` cannot await, and the test's runtime may be the one unwinding:
        // a thread with a runtime of its own does the work.
        let outcome = std::thread::spawn({
            let namespace = namespace.clone();
            move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async {
                        let drop = drop_namespace(&url, &namespace, &plugins);
                        tokio::time::timeout(Duration::from_secs(60), drop)
                            .await
                            .unwrap_or_else(|_| Err("timed out".into()))
                    })
            }
        })
        .join()
        .unwrap_or_else(|_| Err("drop_postgres panicked".into()));
        match outcome {
            Ok(()) => {}
            // Never a second panic while the test's own failure unwinds.
            Err(e) if std::thread::panicking() => eprintln!("tearing down {namespace}*: {e}"),
            Err(e) => panic!("tearing down {namespace}*: {e}"),
        }
    }
}

async fn drop_namespace(url: &str, namespace: &str, plugins: &[String]) -> Result<(), String> {
    use sqlx::{Connection, Executor};
    let e = |e: sqlx::Error| e.to_string();
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(e)?;
    let roles = "SELECT rolname::text FROM pg_roles WHERE starts_with(rolname, $1)";
    // A failing test leaves its host running: lock its roles out and end their
    // sessions, or dropping would wait for (or deadlock with) their transactions.
    let running: Vec<String> = sqlx::query_scalar(roles)
        .bind(namespace)
        .fetch_all(&mut conn)
        .await
        .map_err(e)?;
    for role in running {
        conn.execute(format!("ALTER ROLE \"{role}\" NOLOGIN").as_str())
            .await
            .map_err(e)?;
    }
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE starts_with(usename, $1)",
    )
    .bind(namespace)
    .execute(&mut conn)
    .await
    .map_err(e)?;

    let mut config = Config::default();
    config.storage.url = Some(url.to_owned());
    config.storage.namespace = namespace.to_owned();
    let plugins: Vec<&str> = plugins.iter().map(String::as_str).collect();
    drop_postgres(&config, &plugins).await;

    // What `drop_postgres` does not know of: plugins the test deployed, host schemas.
    let schemas: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)")
            .bind(namespace)
            .fetch_all(&mut conn)
            .await
            .map_err(e)?;
    for schema in schemas {
        conn.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str())
            .await
            .map_err(e)?;
    }
    let left: Vec<String> = sqlx::query_scalar(roles)
        .bind(namespace)
        .fetch_all(&mut conn)
        .await
        .map_err(e)?;
    for role in left {
        // Grants and default privileges elsewhere would keep the role alive.
        for statement in [
            format!("DROP OWNED BY \"{role}\" CASCADE"),
            format!("DROP ROLE IF EXISTS \"{role}\""),
        ] {
            conn.execute(statement.as_str()).await.map_err(e)?;
        }
    }
    conn.close().await.map_err(e)
}

/// `SELECT COUNT(*) …` (any query answering one integer) over a plugin's own
/// tables, read outside the host: its SQLite file, or its PostgreSQL schema
/// through the admin URL.
pub async fn count(config: &Config, plugin: &str, sql: &str) -> i64 {
    if config.storage.backend != mercato::storage::BackendKind::Postgres {
        return sqlite_count(&config.data_dir, plugin, sql);
    }
    let schema = mercato::storage::postgres::schema_name(&config.storage.namespace, plugin);
    postgres_count(config, &[schema], sql).await
}

/// [`count`] over the host's tables in a plugin's database (`outbox_events`,
/// `mercato_cursors`, `mercato_dead_letters`, `mercato_idempotency`,
/// `_sqlx_migrations`). On PostgreSQL they are looked up in the plugin's host
/// schema (`<schema>_host`) first, then in the plugin's schema.
pub async fn host_count(config: &Config, plugin: &str, sql: &str) -> i64 {
    if config.storage.backend != mercato::storage::BackendKind::Postgres {
        return sqlite_count(&config.data_dir, plugin, sql);
    }
    let schema = mercato::storage::postgres::schema_name(&config.storage.namespace, plugin);
    postgres_count(config, &[format!("{schema}_host"), schema], sql).await
}

async fn postgres_count(config: &Config, search_path: &[String], sql: &str) -> i64 {
    use sqlx::{Connection, Executor};
    let url = config.storage.url.as_deref().expect("postgres url");
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    // Unqualified names resolve in these schemas, in order; a schema that does
    // not exist is skipped.
    let path: Vec<String> = search_path.iter().map(|s| format!("\"{s}\"")).collect();
    conn.execute(format!("SET search_path TO {}", path.join(", ")).as_str())
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar(sql)
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql} in {search_path:?}: {e}"));
    conn.close().await.unwrap();
    n
}

impl TestApp {
    pub async fn start(config: Config, plugins: &[&str]) -> TestApp {
        TestApp::start_in(Turn::shared().await, config, plugins).await
    }

    /// A host that runs while no other test's host does: for tests that
    /// measure a rate under load.
    pub async fn start_alone(config: Config, plugins: &[&str]) -> TestApp {
        TestApp::start_in(Turn::alone().await, config, plugins).await
    }

    async fn start_in(turn: Turn, config: Config, plugins: &[&str]) -> TestApp {
        let host = App::start(config, components(plugins))
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
        // A pooled connection is dropped by the client well before the
        // server's idle keep-alive timeout closes it: reusing one in the very
        // moment the server closes it fails the request with a reset (seen when
        // a slow run reused a connection idle since the test's start).
        let idle = Duration::from_millis(host.config().http.keep_alive_timeout_ms / 2);
        let client = reqwest::Client::builder()
            .default_headers(auth)
            .pool_idle_timeout(idle)
            .build()
            .unwrap();
        let anonymous = reqwest::Client::builder()
            .pool_idle_timeout(idle)
            .build()
            .unwrap();
        TestApp {
            host,
            url,
            addr,
            client,
            anonymous,
            stop: Some(stop),
            server: Some(server),
            _turn: turn,
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

    /// Waits until every committed event is numbered into its outbox (on
    /// PostgreSQL that happens just after commit), delivering nothing.
    pub async fn numbered(&self) {
        self.host
            .drain_numbering(Duration::from_secs(60))
            .await
            .expect("events numbered");
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

/// A `mercato serve --log-format json` child (its stdout piped) as it comes
/// up: the log lines up to the one saying it serves, the rest of its stdout
/// (one JSON object per line), and the address it serves on.
pub struct JsonLogged {
    pub child: std::process::Child,
    pub log: Vec<Value>,
    pub lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    pub address: String,
}

/// Starts `command` (`mercato serve --log-format json …`, stdout piped) and
/// reads its log until it serves; every line must be one JSON object.
pub fn serve_json_logged(mut command: std::process::Command) -> JsonLogged {
    use std::io::BufRead;
    let mut child = command.spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut log = Vec::new();
    let address = loop {
        let line = lines
            .next()
            .expect("mercato stopped before serving")
            .unwrap();
        let line: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let serving = line["message"] == "mercato is serving";
        let address = line["address"].as_str().map(str::to_owned);
        log.push(line);
        if serving {
            break address.expect("the serving line names the address");
        }
    };
    JsonLogged {
        child,
        log,
        lines,
        address,
    }
}

/// Rows of a plugin's SQLite database, read directly (outside the host).
/// The address a `mercato serve` child logs once it listens (`address=…`),
/// read from its piped stdout.
pub fn logged_address(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout is piped"));
    stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            line.split("address=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next().map(str::to_owned))
        })
        .expect("the server logs its address")
}

pub fn sqlite_count(data_dir: &Path, plugin: &str, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(data_dir.join(format!("{plugin}.db"))).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

// ---- shop and hot-swap helpers ----

pub fn component(name: &str) -> Vec<u8> {
    std::fs::read(mercato_test_artifacts::path(name)).expect("built component")
}

pub async fn put_component(
    app: &TestApp,
    plugin: &str,
    bytes: Vec<u8>,
    signature: Option<&str>,
) -> (StatusCode, Value) {
    let send = || {
        let mut req = app
            .client
            .put(format!("{}/admin/plugins/{plugin}", app.url))
            .header("content-type", "application/wasm")
            .body(bytes.clone());
        if let Some(sig) = signature {
            req = req.header("x-mercato-signature", sig);
        }
        req.send()
    };
    // A deploy is idempotent (the same bytes again change nothing), so a
    // client may resend it when the connection broke before any answer. Under
    // the load of `hotswap_load` on SQLite, the PUT was seen reset by the
    // server in two full-suite runs of about five (never alone, cause not yet
    // found); the retry is logged so it stays visible.
    let resp = match send().await {
        Ok(resp) => resp,
        Err(e) if e.is_request() && !e.is_timeout() => {
            eprintln!("PUT /admin/plugins/{plugin}: {e:?}; resending it once");
            send().await.unwrap()
        }
        Err(e) => panic!("PUT /admin/plugins/{plugin}: {e:?}"),
    };
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

/// Every context of the seed design, the search read model included.
pub const FULL_SHOP: [&str; 9] = [
    "products",
    "orders",
    "inventory",
    "payments",
    "coupons",
    "shipping",
    "checkout",
    "notifications",
    "search",
];

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

/// A valid `shipping_address`, which every `POST /orders` body needs.
pub fn shipping_address() -> Value {
    json!({ "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB" })
}

pub async fn place(app: &TestApp, sku: &str, buyer: &str) -> String {
    let (status, body) = app
        .post("/orders", &json!({ "buyer_id": buyer, "currency": "EUR", "items": [{ "sku": sku, "quantity": 1 }], "shipping_address": shipping_address() }))
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

/// Every object of a list endpoint (`{"object": "list", "data", "has_more"}`),
/// newest first: pages of 100, each `starting_after` the last object's `id`
/// until `has_more` is false. `path` may carry filters.
pub async fn list_all(app: &TestApp, path: &str) -> Vec<Value> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut all: Vec<Value> = Vec::new();
    loop {
        let mut page_path = format!("{path}{separator}limit=100");
        if let Some(last) = all.last() {
            let id = last["id"].as_str().expect("listed objects have an id");
            page_path.push_str(&format!("&starting_after={id}"));
        }
        let (status, page) = app.get(&page_path).await;
        assert_eq!(status, StatusCode::OK, "GET {page_path} → {page}");
        assert_eq!(page["object"], "list", "GET {page_path} → {page}");
        all.extend(page["data"].as_array().expect("data").iter().cloned());
        if page["has_more"] != true {
            return all;
        }
    }
}
