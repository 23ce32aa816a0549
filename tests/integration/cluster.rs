//! Cluster mode: `mercato serve --cluster` processes on one PostgreSQL and one
//! NATS JetStream share a shop. A saga load is spread over the hosts while one
//! is killed, deployed through or restarted; at the end no acknowledged order
//! is lost or doubled and the shop's invariants hold (as `shop.rs` checks them).
use crate::common::{Alone, Teardown, alone, component, postgres_url, shipping_address};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LEASE_MS: u64 = 1_500;
/// (sku, price, on hand): one never runs out, one does (orders are rejected).
const STOCK: [(&str, i64, i64); 2] = [("PLENTY", 1_000, 1_000_000), ("SCARCE", 2_500, 25)];
/// (code, usage limit, per-customer limit), on every third order.
const COUPON: (&str, i64, i64) = ("CLU10", 40, 2);
const ENDED: [&str; 5] = [
    "PAID",
    "PARTIALLY_REFUNDED",
    "REFUNDED",
    "CANCELLED",
    "REJECTED",
];
/// Every host's config file (the command line sets the rest): three hosts of
/// nine plugins stay under the test server's 100 connections; a debug build's
/// deadlines; quick retries.
const SETTINGS: &str = "[storage]\nmax_connections = 3\n[limits]\nmemory_mib = 64\n\
    deadline_ms = 10000\n[events]\nmax_attempts = 10\nbackoff_base_ms = 20\n\
    backoff_max_ms = 1000\npoll_ms = 200\n";

/// Returns early with the message unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

/// `mercato` with none of the environment's settings.
fn mercato() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mercato"));
    command.env("RUST_LOG", "info").env("NO_COLOR", "1");
    for name in [
        "DATABASE_URL",
        "CONFIG",
        "CLUSTER",
        "NATS_URL",
        "ADMIN_TOKEN",
        "LISTEN",
    ] {
        command.env_remove(format!("MERCATO_{name}"));
    }
    command.env_remove("MERCATO_DATA_DIR");
    command
}

/// Polls `check` every 50 ms until it holds; after `secs`, panics with its last answer.
async fn until<T>(secs: u64, what: &str, mut check: impl AsyncFnMut() -> Result<T, String>) -> T {
    let started = Instant::now();
    loop {
        match check().await {
            Ok(done) => return done,
            Err(e) if started.elapsed().as_secs() >= secs => panic!("{what} within {secs} s: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// How `child` exited, or `None` if it still runs after `secs`.
async fn exited(child: &mut Child, secs: u64) -> Option<ExitStatus> {
    let started = Instant::now();
    while started.elapsed().as_secs() < secs {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Sends `req`: its status and JSON body (`Null` if none).
async fn answer(req: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// GET `path` of the host at `url`: its JSON when the answer is 200.
async fn get(http: &reqwest::Client, url: &str, path: &str) -> Result<Value, String> {
    let (status, body) = answer(http.get(format!("{url}{path}"))).await?;
    ensure!(status == 200, "GET {url}{path} → {status} {body}");
    Ok(body)
}

/// Every object of a list endpoint, page by page (`common::list_all` by URL).
async fn list_all(http: &reqwest::Client, url: &str, path: &str) -> Result<Vec<Value>, String> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut all: Vec<Value> = Vec::new();
    loop {
        let mut page = format!("{path}{separator}limit=100");
        if let Some(last) = all.last().and_then(|o| o["id"].as_str()) {
            page.push_str(&format!("&starting_after={last}"));
        }
        let body = get(http, url, &page).await?;
        all.extend(
            body["data"]
                .as_array()
                .ok_or(format!("{page}: {body}"))?
                .clone(),
        );
        if body["has_more"] != true {
            return Ok(all);
        }
    }
}

/// How many times each value's `field` occurs.
fn tally<'a>(all: impl IntoIterator<Item = &'a Value>, field: &str) -> HashMap<String, usize> {
    let mut times = HashMap::new();
    for v in all {
        *times
            .entry(v[field].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    times
}

/// The last lines of a host's logs, for a failing test.
fn print_logs(dir: &Path) {
    for name in ["stdout.log", "stderr.log"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        eprintln!("---- {} ----\n{tail}", dir.join(name).display());
    }
}

/// One `mercato serve` process of the cluster.
struct Host {
    child: Child,
    url: String,
    /// Its id in `/admin/cluster`.
    id: String,
    dir: PathBuf,
}

impl Host {
    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(sent.success(), "kill {signal} {pid}");
    }

    /// SIGSTOP: the process stays, frozen, holding its leases and connections.
    fn stop(&self) {
        self.signal("-STOP");
    }

    fn cont(&self) {
        self.signal("-CONT");
    }
}

/// Hosts of a cluster of a fresh name, torn down (processes, schemas, roles,
/// JetStream streams) when dropped. Runs while no other test's host does.
struct Cluster {
    name: String,
    token: String,
    pg_url: String,
    nats_url: String,
    hosts: Vec<Option<Host>>,
    dirs: Vec<tempfile::TempDir>,
    /// The shop's client; its targets follow the hosts' addresses.
    client: Client,
    _teardown: Teardown,
    _alone: Alone,
}

impl Cluster {
    async fn start(n: usize) -> Cluster {
        let pg_url = postgres_url().await;
        let nats_url = std::env::var("MERCATO_TEST_NATS_URL");
        let nats_url = nats_url.unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        let nats = std::net::ToSocketAddrs::to_socket_addrs(nats_url.trim_start_matches("nats://"));
        let timeout = Duration::from_secs(2);
        let mut nats = nats.into_iter().flatten();
        assert!(
            nats.any(|a| std::net::TcpStream::connect_timeout(&a, timeout).is_ok()),
            "NATS with JetStream is required for this test and is not reachable at {nats_url}. \
             Start it (`nats-server -js`), or point MERCATO_TEST_NATS_URL at one."
        );
        let _alone = alone().await;
        let name = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let token = uuid::Uuid::new_v4().simple().to_string();
        // The cluster's schemas and roles are `mercato_<name>_*`.
        let mut config = mercato::config::Config::default();
        config.storage.backend = mercato::storage::BackendKind::Postgres;
        config.storage.url = Some(pg_url.clone());
        config.storage.namespace = format!("mercato_{name}_");
        let mut auth = reqwest::header::HeaderMap::new();
        auth.insert("authorization", format!("Bearer {token}").parse().unwrap());
        let http = reqwest::Client::builder().default_headers(auth);
        let http = http
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(20));
        let (targets, stats) = (Arc::new(Mutex::new(vec![None; n])), Arc::default());
        let mut cluster = Cluster {
            name,
            token,
            pg_url,
            nats_url,
            hosts: (0..n).map(|_| None).collect(),
            dirs: (0..n).map(|_| tempfile::tempdir().unwrap()).collect(),
            client: Client {
                http: http.build().unwrap(),
                targets,
                stats,
            },
            _teardown: Teardown::new(&config, &[]),
            _alone,
        };
        for i in 0..n {
            cluster.restart(i).await;
        }
        cluster
    }

    /// Starts host `i`: a fresh process on its data dir (which may have run before).
    async fn restart(&mut self, i: usize) {
        assert!(self.hosts[i].is_none(), "host {i} is running");
        let dir = self.dirs[i].path().to_owned();
        std::fs::write(dir.join("cluster.toml"), SETTINGS).unwrap();
        let log = |name: &str| {
            let path = dir.join(name);
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap()
        };
        let (name, nats, pg, token) = (&self.name, &self.nats_url, &self.pg_url, &self.token);
        let args = format!(
            "serve --cluster {name} --nats-url {nats} --database-url {pg} --lease-ms {LEASE_MS} \
             --listen 127.0.0.1:0 --admin-token {token} --config"
        );
        let mut child = mercato()
            .args(args.split(' '))
            .arg(dir.join("cluster.toml"))
            .arg("--data-dir")
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(log("stderr.log"))
            .spawn()
            .unwrap();
        // Its stdout goes on to stdout.log; "mercato is serving" carries the address.
        let (serving, address) = tokio::sync::oneshot::channel();
        let (stdout, mut file) = (child.stdout.take().unwrap(), log("stdout.log"));
        std::thread::spawn(move || {
            let mut serving = Some(serving);
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = writeln!(file, "{line}");
                if line.contains("mercato is serving")
                    && let Some(address) = line.split("address=").nth(1)
                    && let Some(serving) = serving.take()
                {
                    let _ = serving.send(address.split(' ').next().unwrap().to_owned());
                }
            }
        });
        let Ok(Ok(address)) = tokio::time::timeout(Duration::from_secs(120), address).await else {
            let exit = child.try_wait().unwrap();
            let _ = (child.kill(), child.wait());
            print_logs(&dir);
            panic!("host {i} of cluster {name} never served (exit: {exit:?})");
        };
        let url = format!("http://{address}");
        let id = String::new();
        self.hosts[i] = Some(Host {
            child,
            url: url.clone(),
            id,
            dir,
        });
        let http = &self.client.http;
        let status = until(60, "GET /admin/cluster", async || {
            get(http, &url, "/admin/cluster").await
        });
        let status = status.await;
        assert_eq!(status["cluster"], self.name.as_str(), "{status}");
        let id = status["host"]
            .as_str()
            .expect("/admin/cluster names its host");
        self.hosts[i].as_mut().unwrap().id = id.to_owned();
        self.client.targets.lock().unwrap()[i] = Some(url);
    }

    fn host(&self, i: usize) -> &Host {
        self.hosts[i].as_ref().expect("host is running")
    }

    fn running(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().flatten()
    }

    /// Through every host, round robin.
    fn everywhere(&self) -> Via {
        Via {
            hosts: (0..self.hosts.len()).collect(),
            next: 0,
        }
    }

    /// SIGKILL: host `i` is gone at once; its clients are not told. Its id.
    fn kill(&mut self, i: usize) -> String {
        let mut host = self.hosts[i].take().expect("host is running");
        host.child.kill().unwrap();
        host.child.wait().unwrap();
        host.id
    }

    /// SIGTERM, then waits for a graceful exit.
    async fn term(&mut self, i: usize) {
        let host = self.hosts[i].as_mut().expect("host is running");
        host.signal("-TERM");
        let exit = exited(&mut host.child, 30).await;
        if !exit.is_some_and(|e| e.success()) {
            print_logs(&host.dir);
            panic!("host {i} did not exit gracefully on SIGTERM: {exit:?}");
        }
        self.hosts[i] = None;
    }

    async fn status(&self, i: usize) -> Result<Value, String> {
        get(&self.client.http, &self.host(i).url, "/admin/cluster").await
    }

    /// Waits until the cluster lists exactly the running hosts and each
    /// stream is owned by one of them.
    async fn settled(&self) {
        let live: HashSet<&str> = self.running().map(|h| h.id.as_str()).collect();
        let first = self.hosts.iter().position(Option::is_some).unwrap();
        until(60, "the running hosts sharing every stream", async || {
            let status = self.status(first).await?;
            let hosts = status["hosts"].as_array().into_iter().flatten();
            let hosts: HashSet<&str> = hosts.filter_map(|h| h["id"].as_str()).collect();
            let streams = status["streams"].as_array().ok_or("no streams")?;
            let owned = |s: &Value| s["owner"].as_str().is_some_and(|o| live.contains(o));
            let shared = !streams.is_empty() && streams.iter().all(owned);
            ensure!(hosts == live && shared, "{status}");
            Ok(())
        })
        .await;
    }

    /// `GET /admin/plugins` of every running host once they all agree (a
    /// rule's evaluation counts are its host's own and left out). Each host
    /// compiles a deployed component itself: seconds in a debug build.
    async fn plugins_agree(&self) -> Value {
        let (http, started) = (&self.client.http, Instant::now());
        let agreed = until(15, "GET /admin/plugins equal on every host", async || {
            let mut answers = Vec::new();
            for host in self.running() {
                let mut plugins = get(http, &host.url, "/admin/plugins").await?;
                for p in plugins["plugins"].as_array_mut().into_iter().flatten() {
                    p.as_object_mut()
                        .into_iter()
                        .for_each(|p| _ = p.remove("evaluations"));
                }
                answers.push(plugins);
            }
            ensure!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
            Ok(answers.swap_remove(0))
        })
        .await;
        eprintln!(
            "GET /admin/plugins agreed on every host after {:?}",
            started.elapsed()
        );
        agreed
    }
}

/// Deletes every JetStream stream (buckets are streams too) named for `cluster`.
async fn delete_streams(url: &str, cluster: &str) -> Result<(), async_nats::Error> {
    let js = async_nats::jetstream::new(async_nats::connect(url).await?);
    let names = js.stream_names().filter_map(|n| async move { n.ok() });
    for name in names.collect::<Vec<String>>().await {
        if name.to_ascii_lowercase().contains(cluster) {
            js.delete_stream(name).await?;
        }
    }
    Ok(())
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for host in self.hosts.iter_mut().flatten() {
            let _ = (host.child.kill(), host.child.wait());
        }
        if std::thread::panicking() {
            self.dirs.iter().for_each(|d| print_logs(d.path()));
        }
        // The schemas and roles go with `_teardown`; the streams here, on a
        // runtime of their own (the test's may be the one unwinding).
        let (url, name) = (self.nats_url.clone(), self.name.clone());
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            runtime.unwrap().block_on(async {
                let deleting = delete_streams(&url, &name);
                let deleted = tokio::time::timeout(Duration::from_secs(10), deleting).await;
                deleted
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            })
        });
        let deleted = deleted.join().unwrap_or_else(|_| Err("panicked".into()));
        if let Err(e) = deleted {
            eprintln!("deleting the JetStream streams of {}: {e}", self.name);
        }
    }
}

/// A shop's client: sends each request to one of the hosts and, when it
/// gives no answer, to the next.
#[derive(Clone)]
struct Client {
    /// Sends the admin token (the merchant's role) with every request.
    http: reqwest::Client,
    /// Each host's last known URL; a dead host's stays until it is restarted.
    targets: Arc<Mutex<Vec<Option<String>>>>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    acked: AtomicU64,
    resent: AtomicU64,
    /// Optimistic-write conflicts retried (not a host's doing).
    conflicts: AtomicU64,
    failed: AtomicU64,
}

/// The hosts a client sends through, round robin.
struct Via {
    hosts: Vec<usize>,
    next: usize,
}

impl Client {
    /// Sends `"METHOD /path"` through the next host of `via`. Without an
    /// answer (the host is dead or stopping: no connection, a reset, a 503),
    /// or while its key is in use, it is sent again through the next host with
    /// the same Idempotency-Key, as a real client does. A status not in `ok`
    /// is a failure: counted, logged, `None`.
    async fn send(
        &self,
        via: &mut Via,
        request: &str,
        body: Option<&Value>,
        key: Option<&str>,
        ok: &[u16],
    ) -> Option<(u16, Value)> {
        let (method, path) = request.split_once(' ').unwrap();
        let started = Instant::now();
        loop {
            via.next += 1;
            let url = self.targets.lock().unwrap()[via.hosts[via.next % via.hosts.len()]].clone();
            let url = format!("{}{path}", url.unwrap_or_default());
            let mut req = self.http.request(method.parse().unwrap(), url);
            if let Some(body) = body {
                req = req.json(body);
            }
            if let Some(key) = key {
                req = req.header("idempotency-key", key);
            }
            let code = |body: &Value| {
                body["error"]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            };
            let stats = &self.stats;
            let (why, counted) = match answer(req).await {
                Ok((status, body)) if ok.contains(&status) => return Some((status, body)),
                Ok((503, body)) => (body.to_string(), &stats.resent),
                // The key is still in flight on another host.
                Ok((409, body)) if code(&body) == "idempotency_key_in_use" => {
                    (body.to_string(), &stats.resent)
                }
                // An optimistic write lost a race with the saga ("changed
                // concurrently; retry"). The host stored nothing under the
                // key, so the client sends the same request again. This says
                // nothing about the hosts, so it is counted on its own.
                Ok((409, body)) if code(&body) == "conflict" => {
                    (body.to_string(), &stats.conflicts)
                }
                Ok((status, body)) => {
                    stats.failed.fetch_add(1, Relaxed);
                    eprintln!("{request}: {status} {body}");
                    return None;
                }
                Err(e) => (e, &stats.resent),
            };
            counted.fetch_add(1, Relaxed);
            if started.elapsed() > Duration::from_secs(60) {
                self.stats.failed.fetch_add(1, Relaxed);
                eprintln!("{request}: no host answered within 60 s; last: {why}");
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// GET through the next host of `via`: its JSON when the answer is 200.
    async fn get(&self, via: &mut Via, path: &str) -> Option<Value> {
        let got = self
            .send(via, &format!("GET {path}"), None, None, &[200])
            .await;
        got.map(|(_, body)| body)
    }
}

/// An acknowledged order the client has yet to pay or cancel; `n` says which.
struct Placed {
    id: String,
    n: u64,
}

/// Products, stock and the coupon, each made through the next host, then an
/// order of each product, placed once the saga knows it (404 until then).
async fn seed(cluster: &Cluster) -> Vec<Placed> {
    let (c, via) = (&cluster.client, &mut cluster.everywhere());
    for (sku, price_minor, on_hand) in STOCK {
        let product =
            json!({ "sku": sku, "name": sku, "price_minor": price_minor, "currency": "EUR" });
        let key = format!("product-{sku}");
        let made = c
            .send(via, "POST /products", Some(&product), Some(&key), &[201])
            .await;
        made.expect("product created");
        let (stock, key) = (
            json!({ "sku": sku, "on_hand": on_hand }),
            format!("stock-{sku}"),
        );
        let made = c
            .send(
                via,
                "POST /inventory/items",
                Some(&stock),
                Some(&key),
                &[201],
            )
            .await;
        made.expect("stock created");
    }
    let (code, usage_limit, per_customer_limit) = COUPON;
    let coupon = json!({ "code": code, "kind": "percent", "percent": 10, "currency": "EUR", "usage_limit": usage_limit, "per_customer_limit": per_customer_limit });
    let made = c
        .send(via, "POST /coupons", Some(&coupon), Some(code), &[200, 201])
        .await;
    made.expect("coupon created");
    let mut probes = Vec::new();
    for (sku, _, _) in STOCK {
        let order = json!({ "buyer_id": "probe", "currency": "EUR", "items": [{ "sku": sku, "quantity": 1 }], "shipping_address": shipping_address() });
        let (mut attempt, what) = (0, format!("the saga to know {sku}"));
        let id = until(60, &what, async || {
            attempt += 1;
            let key = format!("probe-{sku}-{attempt}");
            let placed = c
                .send(via, "POST /orders", Some(&order), Some(&key), &[201, 404])
                .await;
            let (status, body) = placed.ok_or("failed")?;
            ensure!(status == 201, "{body}");
            Ok(body["id"].as_str().unwrap().to_owned())
        });
        probes.push(Placed { id: id.await, n: 2 });
        c.stats.acked.fetch_add(1, Relaxed);
    }
    probes
}

/// Takes an order past AWAITING_PAYMENT as its number says: most are paid,
/// `n % 10 == 1` with a declined card, `n % 10 == 0` cancelled. `false`: not
/// yet (still PENDING, or its payment intent not made yet).
async fn settle(c: &Client, via: &mut Via, p: &Placed) -> bool {
    let id = &p.id;
    let Some(order) = c.get(via, &format!("/orders/{id}")).await else {
        return true;
    };
    match order["status"].as_str() {
        Some("PENDING") => return false,
        Some("AWAITING_PAYMENT") => {}
        _ => return true,
    }
    if p.n.is_multiple_of(10) {
        let (cancel, key) = (format!("POST /orders/{id}/cancel"), format!("cancel-{id}"));
        c.send(via, &cancel, Some(&json!({})), Some(&key), &[200])
            .await;
        return true;
    }
    let Some(intents) = c
        .get(via, &format!("/payments/intents?order_id={id}"))
        .await
    else {
        return true;
    };
    let Some(intent) = intents["data"][0]["id"].as_str() else {
        return false;
    };
    let declined = p.n % 10 == 1;
    let body =
        json!({ "payment_method": if declined { "pm_card_declined" } else { "pm_card_ok" } });
    let confirm = format!("POST /payments/intents/{intent}/confirm");
    let ok = if declined { 402 } else { 200 };
    c.send(
        via,
        &confirm,
        Some(&body),
        Some(&format!("confirm-{id}")),
        &[ok],
    )
    .await;
    true
}

/// Workers placing orders through some of the hosts, each under its own
/// Idempotency-Key, and settling them as the saga gets them ready.
struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<(Vec<String>, VecDeque<Placed>)>>,
    client: Client,
}

impl Load {
    fn start(cluster: &Cluster, through: &[usize], workers: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tag = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
        let worker = |w: u64| {
            let (c, stop, tag) = (cluster.client.clone(), stop.clone(), tag.clone());
            let mut via = Via {
                hosts: through.to_vec(),
                next: w as usize,
            };
            async move {
                let (mut ids, mut waiting) = (Vec::new(), VecDeque::new());
                for n in 1.. {
                    if stop.load(Relaxed) {
                        break;
                    }
                    let (sku, coupon) = (
                        STOCK[usize::from(n % 5 == 2)].0,
                        (n % 3 == 0).then_some(COUPON.0),
                    );
                    let order = json!({ "buyer_id": format!("b{w}-{}", n % 4), "currency": "EUR", "items": [{ "sku": sku, "quantity": 1 }], "coupon_code": coupon, "shipping_address": shipping_address() });
                    let key = format!("{tag}-w{w}-{n}");
                    let placed = c.send(&mut via, "POST /orders", Some(&order), Some(&key), &[201]);
                    if let Some((_, body)) = placed.await {
                        let id = body["id"].as_str().unwrap().to_owned();
                        c.stats.acked.fetch_add(1, Relaxed);
                        ids.push(id.clone());
                        waiting.push_back(Placed { id, n });
                    }
                    for _ in 0..waiting.len().min(2) {
                        let p = waiting.pop_front().unwrap();
                        if !settle(&c, &mut via, &p).await {
                            waiting.push_back(p);
                        }
                    }
                }
                (ids, waiting)
            }
        };
        let workers = (0..workers).map(|w| tokio::spawn(worker(w))).collect();
        Load {
            stop,
            workers,
            client: cluster.client.clone(),
        }
    }

    /// Waits until `more` orders beyond those acknowledged now are.
    async fn more(&self, more: u64) {
        let acked = &self.client.stats.acked;
        let target = acked.load(Relaxed) + more;
        until(180, &format!("{target} acknowledged orders"), async || {
            let now = acked.load(Relaxed);
            ensure!(now >= target, "{now} acknowledged");
            Ok(())
        })
        .await;
    }
}

/// Stops the load, settles every order, waits until each has ended and the
/// streams have caught up, then checks the invariants.
async fn finish(cluster: &Cluster, load: Load, seeded: Vec<Placed>) {
    load.stop.store(true, Relaxed);
    let mut ids: Vec<String> = seeded.iter().map(|p| p.id.clone()).collect();
    let mut waiting = seeded;
    for worker in load.workers {
        let (placed, unsettled) = worker.await.unwrap();
        ids.extend(placed);
        waiting.extend(unsettled);
    }
    let (c, via) = (&cluster.client, &mut cluster.everywhere());
    until(180, "every order paid or cancelled", async || {
        let mut still = Vec::new();
        for p in std::mem::take(&mut waiting) {
            if !settle(c, via, &p).await {
                still.push(p);
            }
        }
        waiting = still;
        ensure!(waiting.is_empty(), "{} orders still PENDING", waiting.len());
        Ok(())
    })
    .await;
    let (http, url) = (&c.http, &cluster.running().next().unwrap().url);
    let mut open = ids.clone();
    until(120, "every order ended", async || {
        let mut still = Vec::new();
        for id in std::mem::take(&mut open) {
            let order = get(http, url, &format!("/orders/{id}"))
                .await
                .unwrap_or_default();
            if !ENDED.contains(&order["status"].as_str().unwrap_or_default()) {
                still.push(id);
            }
        }
        open = still;
        if let Some(first) = open.first() {
            let order = get(http, url, &format!("/orders/{first}")).await?;
            let status = get(http, url, "/admin/cluster").await?;
            let lagging: Vec<&Value> = status["streams"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s["lag"] != 0 || !s["owner"].is_string())
                .collect();
            let events = get(http, url, "/admin/events").await?;
            return Err(format!(
                "{} orders not ended, as {order}; streams behind: {lagging:?}; dead letters: {}",
                open.len(),
                events["dead_letters"]
            ));
        }
        Ok(())
    })
    .await;
    until(60, "every stream owned and at lag 0", async || {
        let status = get(http, url, "/admin/cluster").await?;
        let streams = status["streams"].as_array().ok_or("no streams")?;
        let done = |s: &Value| s["lag"] == 0 && s["owner"].is_string();
        ensure!(streams.iter().all(done), "{status}");
        Ok(())
    })
    .await;
    // An effect handled just now (a shipment, a search row) is waited for.
    until(60, "the invariants", async || {
        invariants(http, url, &ids).await
    })
    .await;
    let s = &c.stats;
    let [acked, resent, conflicts, failed] =
        [&s.acked, &s.resent, &s.conflicts, &s.failed].map(|n| n.load(Relaxed));
    eprintln!(
        "{acked} orders acknowledged; {resent} requests resent, {conflicts} retried after a \
         write conflict, {failed} failed"
    );
    assert_eq!(failed, 0, "requests answered outside what they expect");
}

fn was_paid(order: &Value) -> bool {
    let mut history = order["status_history"].as_array().into_iter().flatten();
    history.any(|h| h["to"] == "PAID")
}

/// The invariants of `shop.rs`, through the API of the host at `url`.
async fn invariants(http: &reqwest::Client, url: &str, ids: &[String]) -> Result<(), String> {
    // Every acknowledged order exists exactly once, and no other does: a
    // request resent with its key never placed a second order.
    let acked: HashMap<String, usize> = ids.iter().map(|id| (id.clone(), 1)).collect();
    ensure!(
        acked.len() == ids.len(),
        "two placements answered with one order"
    );
    let listed = tally(&list_all(http, url, "/orders").await?, "id");
    ensure!(
        listed == acked,
        "{} orders for {} acknowledged",
        listed.len(),
        ids.len()
    );

    let fetch = |id: &String| {
        let paths = [
            format!("/orders/{id}"),
            format!("/inventory/reservations?order_id={id}"),
            format!("/payments/intents?order_id={id}"),
            format!("/shipping/shipments?order_id={id}"),
        ];
        async move {
            let mut got = Vec::new();
            for path in &paths {
                got.push(get(http, url, path).await?);
            }
            Ok::<_, String>(got)
        }
    };
    let fetched: Vec<_> = futures_util::stream::iter(ids)
        .map(fetch)
        .buffer_unordered(8)
        .collect()
        .await;
    let (mut orders, mut paid_qty) = (Vec::new(), HashMap::<String, i64>::new());
    let (mut captured, mut refunded) = (0, 0);
    for row in fetched {
        let mut got = row?;
        let [reservations, intents, shipments] =
            [1, 2, 3].map(|i| got[i]["data"].as_array().cloned().unwrap_or_default());
        let order = got.swap_remove(0);
        let (status, paid) = (
            order["status"].as_str().unwrap_or_default(),
            was_paid(&order),
        );
        let num = |v: &Value, k: &str| v[k].as_i64().unwrap_or(-1);
        let total = num(&order, "total_minor");
        ensure!(ENDED.contains(&status), "not ended: {order}");
        // Inventory handled OrderPlaced once: one reservation, ended as the order did.
        let one = reservations.len() == 1 || status == "REJECTED" && reservations.len() <= 1;
        let commit = paid && order["stock_status"] != "COMMIT_FAILED";
        let ended = if commit { "COMMITTED" } else { "RELEASED" };
        let ended = reservations.iter().all(|r| r["status"] == ended);
        ensure!(one && ended, "{order}: {reservations:?}");
        // Payments made one intent at most, which agrees with the order.
        ensure!(intents.len() <= 1, "{order}: {intents:?}");
        for intent in &intents {
            let [amount, cap, refd] =
                ["amount_minor", "captured_minor", "refunded_minor"].map(|k| num(intent, k));
            let agree =
                cap == num(&order, "captured_minor") && refd == num(&order, "refunded_minor");
            ensure!(
                agree && amount == total && 0 <= refd && refd <= cap && cap <= amount,
                "{intent}: {order}"
            );
            (captured, refunded) = (captured + cap, refunded + refd);
        }
        ensure!(
            !paid || num(&order, "captured_minor") == total,
            "paid, not captured: {order}"
        );
        // Shipping made one shipment per paid order, none for the others.
        ensure!(
            shipments.len() == usize::from(paid),
            "{order}: {shipments:?}"
        );
        for item in order["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|_| paid)
        {
            let sku = item["sku"].as_str().unwrap_or_default().to_owned();
            *paid_qty.entry(sku).or_default() += num(item, "quantity");
        }
        orders.push(order);
    }
    // Stock: never oversold, nothing left reserved, committed = paid for.
    for (sku, _, seeded) in STOCK {
        let item = get(http, url, &format!("/inventory/items/{sku}")).await?;
        let [on_hand, available, reserved, committed] =
            ["on_hand", "available", "reserved", "committed"]
                .map(|k| item[k].as_i64().unwrap_or(-1));
        let paid = paid_qty.get(sku).copied().unwrap_or(0);
        let consistent = on_hand == available + reserved + committed && available >= 0;
        ensure!(
            consistent && reserved == 0 && committed == paid && committed <= seeded,
            "{item}: {paid} paid"
        );
    }
    // Coupons: usage = live redemptions ≤ limit, per customer ≤ its limit.
    let (code, limit, per_customer) = COUPON;
    let coupon = get(http, url, &format!("/coupons/{code}")).await?;
    let redeemed = |o: &&Value| o["coupon_code"] == code && o["coupon_status"] == "APPLIED";
    let cancelled = |o: &&Value| matches!(o["status"].as_str(), Some("REJECTED" | "CANCELLED"));
    let live: Vec<&Value> = orders
        .iter()
        .filter(redeemed)
        .filter(|o| !cancelled(o))
        .collect();
    let within = live.len() as i64 <= limit && coupon["used"] == live.len();
    ensure!(within, "{coupon}: {} live redemptions", live.len());
    let by_buyer = tally(live, "buyer_id");
    ensure!(
        by_buyer.values().all(|n| *n as i64 <= per_customer),
        "{code}: {by_buyer:?}"
    );
    // Money: the ledger balances and agrees with the intents.
    let balance = get(http, url, "/payments/ledger/trial-balance").await?;
    let account = |name: &str, side: &str| {
        let accounts = balance["accounts"].as_array().into_iter().flatten();
        accounts
            .filter(|a| a["account"] == name)
            .map(|a| a[side].as_i64().unwrap_or(-1))
            .sum::<i64>()
    };
    let revenue = account("merchant_revenue", "credit_minor");
    let refunds = account("merchant_refunds", "debit_minor");
    let balanced = balance["balanced"] == true && balance["unbalanced_transactions"] == 0;
    ensure!(
        balanced && (revenue, refunds) == (captured, refunded),
        "{captured}, {refunded}: {balance}"
    );
    let events = get(http, url, "/admin/events").await?;
    ensure!(
        events["dead_letters"] == json!([]),
        "dead letters: {events}"
    );
    // The search read model handled each OrderPlaced once.
    let rows = tally(&list_all(http, url, "/search/orders").await?, "order_id");
    ensure!(
        rows == acked,
        "{} search rows for {} orders",
        rows.len(),
        ids.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_refuses_to_start_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = dir.path().join("stderr.log");
    let mut child = mercato()
        .args([
            "serve",
            "--cluster",
            "tsqlite",
            "--nats-url",
            "nats://127.0.0.1:4222",
        ])
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let exit = exited(&mut child, 60).await;
    if exit.is_none() {
        let _ = (child.kill(), child.wait());
    }
    let text = std::fs::read_to_string(&stderr).unwrap();
    assert!(
        exit.is_some_and(|e| !e.success()),
        "it must not start: {exit:?}\n{text}"
    );
    assert!(
        text.contains("PostgreSQL"),
        "the refusal names PostgreSQL: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_share_a_saga_load_and_survive_a_host_killed_mid_load() {
    let mut cluster = Cluster::start(3).await;
    cluster.settled().await;
    let seeded = seed(&cluster).await;
    let load = Load::start(&cluster, &[0, 1, 2], 6);
    load.more(40).await;

    // Kill the host owning the most streams, mid-load.
    let status = cluster.status(0).await.unwrap();
    let streams = status["streams"].as_array().unwrap();
    let owned = |i: &usize| {
        streams
            .iter()
            .filter(|s| s["owner"] == cluster.host(*i).id.as_str())
            .count()
    };
    let victim = (0..3).max_by_key(owned).unwrap();
    let owned = owned(&victim);
    assert!(
        owned > 0,
        "the killed host must own work for a takeover: {status}"
    );
    let dead = cluster.kill(victim);
    let killed = Instant::now();
    let survivor = (victim + 1) % 3;
    until(30, "the dead host's work taken over", async || {
        let status = cluster.status(survivor).await?;
        let leases = status["leases"].as_array().ok_or("no leases")?;
        let streams = status["streams"].as_array().ok_or("no streams")?;
        let free = leases.iter().all(|l| l["owner"] != dead.as_str());
        let owned = streams
            .iter()
            .all(|s| s["owner"].is_string() && s["owner"] != dead.as_str());
        ensure!(free && owned && !streams.is_empty(), "{status}");
        Ok(())
    })
    .await;
    let takeover = killed.elapsed();
    eprintln!("host {victim} ({owned} streams) taken over {takeover:?} after SIGKILL");
    // The dead host's leases expire at most a lease after its last renewal,
    // and the survivors look every third of a lease: lease + lease / 3, with
    // the rest of the bound for this test's polling on two busy cores.
    let limit = Duration::from_millis(2 * LEASE_MS);
    assert!(
        takeover < limit,
        "takeover took {takeover:?}, over {limit:?}"
    );

    load.more(30).await;
    cluster.restart(victim).await;
    cluster.settled().await;
    load.more(20).await;
    finish(&cluster, load, seeded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_and_rollback_through_one_host_while_load_runs_through_the_others() {
    let cluster = Cluster::start(3).await;
    cluster.settled().await;
    let seeded = seed(&cluster).await;
    let probe = seeded[0].id.clone();
    let version = |plugins: &Value| {
        let all = plugins["plugins"].as_array().unwrap();
        all.iter().find(|p| p["name"] == "orders").unwrap()["version"].clone()
    };
    let before = version(&cluster.plugins_agree().await);
    let load = Load::start(&cluster, &[1, 2], 4);
    load.more(20).await;
    let http = &cluster.client.http;
    let admin = format!("{}/admin/plugins/orders", cluster.host(0).url);
    // The probe order's `channel`, as hosts 1 and 2 answer it.
    let channel = async |expected: Value| {
        until(
            15,
            &format!("channel {expected} on hosts 1 and 2"),
            async || {
                for i in [1, 2] {
                    let order =
                        get(http, &cluster.host(i).url, &format!("/orders/{probe}")).await?;
                    ensure!(
                        order.get("channel").unwrap_or(&Value::Null) == &expected,
                        "{order}"
                    );
                }
                Ok(())
            },
        )
        .await
    };

    // orders v2 (a migration adds a column; the API returns it) through host 0.
    let deploy = http.put(&admin).header("content-type", "application/wasm");
    let (status, body) = answer(deploy.body(component("orders-v2"))).await.unwrap();
    assert_eq!(
        (status, &body["current"]["version"]),
        (200, &json!("2.0.0")),
        "{body}"
    );
    let deployed = cluster.plugins_agree().await;
    assert_eq!(version(&deployed), "2.0.0", "{deployed}");
    channel(json!("web")).await;
    load.more(20).await;

    // And back, through host 0 again.
    let (status, body) = answer(http.post(format!("{admin}/rollback")))
        .await
        .unwrap();
    assert_eq!(
        (status, &body["current"]["version"]),
        (200, &before),
        "{body}"
    );
    let rolled_back = cluster.plugins_agree().await;
    assert_eq!(version(&rolled_back), before, "{rolled_back}");
    channel(Value::Null).await;
    load.more(20).await;
    finish(&cluster, load, seeded).await;
    let resent = cluster.client.stats.resent.load(Relaxed);
    assert_eq!(resent, 0, "every request answered the first time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_every_host_under_load_loses_no_acknowledged_request() {
    let mut cluster = Cluster::start(3).await;
    cluster.settled().await;
    let seeded = seed(&cluster).await;
    let load = Load::start(&cluster, &[0, 1, 2], 6);
    load.more(20).await;
    for i in 0..3 {
        cluster.term(i).await;
        load.more(10).await;
        cluster.restart(i).await;
        cluster.settled().await;
        load.more(10).await;
    }
    finish(&cluster, load, seeded).await;
}

/// Every `mercato_fences` row of the cluster's plugin databases:
/// (lease name, token, host that last committed under it).
async fn fences(cluster: &Cluster) -> Vec<(String, i64, String)> {
    let pool = sqlx::PgPool::connect(&cluster.pg_url).await.unwrap();
    let prefix = format!("mercato_{}_", cluster.name);
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1) \
         AND nspname LIKE '%\\_host'",
    )
    .bind(&prefix)
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut rows = Vec::new();
    for schema in schemas {
        let sql = format!("SELECT name, token, host FROM \"{schema}\".mercato_fences");
        rows.extend(
            sqlx::query_as::<_, (String, i64, String)>(&sql)
                .fetch_all(&pool)
                .await
                .unwrap(),
        );
    }
    pool.close().await;
    rows
}

/// A host frozen (SIGSTOP) past its leases while its streams deliver, then
/// thawed (SIGCONT): the others take its work over with higher tokens; after
/// the thaw, each of its commits of that work is under a lease it took again
/// (a token above the one it held when frozen), never the old one; and every
/// effect is there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_host_commits_nothing_after_losing_its_leases() {
    let cluster = Cluster::start(3).await;
    cluster.settled().await;
    let seeded = seed(&cluster).await;
    // Requests go through the other two; host 0's share is its leased work.
    let load = Load::start(&cluster, &[1, 2], 4);
    load.more(20).await;
    let frozen = cluster.host(0).id.clone();
    let status = cluster.status(1).await.unwrap();
    let held: Vec<(String, u64)> = status["leases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["owner"] == frozen.as_str() && l["expires_in_ms"].as_i64() > Some(0))
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_owned(),
                l["token"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(!held.is_empty(), "host 0 must hold work: {status}");
    cluster.host(0).stop();
    until(30, "the frozen host's leases taken over", async || {
        let status = cluster.status(1).await?;
        let leases = status["leases"].as_array().ok_or("no leases")?;
        let moved = held.iter().all(|(name, token)| {
            leases.iter().any(|l| {
                l["name"] == name.as_str()
                    && l["owner"] != frozen.as_str()
                    && l["token"].as_u64() > Some(*token)
            })
        });
        ensure!(moved, "{status}");
        Ok(())
    })
    .await;
    // The new holders commit while host 0 sleeps through its leases.
    load.more(20).await;
    cluster.host(0).cont();
    cluster.settled().await;
    load.more(20).await;
    let fences = fences(&cluster).await;
    for (name, old) in &held {
        for (_, token, host) in fences.iter().filter(|(n, _, _)| n == name) {
            assert!(
                host != &frozen || *token > *old as i64,
                "host 0 committed `{name}` under token {token}, the one it lost ({old})"
            );
        }
    }
    let metrics = reqwest::Client::new()
        .get(format!("{}/admin/metrics", cluster.host(0).url))
        .bearer_auth(&cluster.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("mercato_event_deliveries_total") && l.contains("outcome=\"fenced\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    eprintln!(
        "host 0 held {} leases when frozen; after the thaw {refused} of its deliveries were refused by a fence",
        held.len()
    );
    finish(&cluster, load, seeded).await;
}

/// Two hosts on one PostgreSQL database: a request with an Idempotency-Key
/// still running on one makes the same key on the other a 409; once it has
/// committed, the other replays its answer; the effect happens once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_in_flight_on_one_host_is_refused_on_another_and_replayed_after() {
    use crate::common::{TestApp, count, postgres_config};
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = postgres_config(dir_a.path()).await;
    let _teardown = Teardown::new(&config, &["notes"]);
    let a = TestApp::start(config.clone(), &["notes"]).await;
    let b = TestApp::start(
        mercato::config::Config {
            data_dir: dir_b.path().to_owned(),
            ..config.clone()
        },
        &["notes"],
    )
    .await;
    let body = json!({ "id": "slow", "body": "x", "busy_ms": 800 });
    let first = {
        let (client, url, body) = (a.client.clone(), a.url.clone(), body.clone());
        tokio::spawn(async move {
            let resp = client
                .post(format!("{url}/notes/notes"))
                .header("idempotency-key", "key-across")
                .json(&body)
                .send()
                .await
                .unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        })
    };
    // Once host a's request holds the key (in its process; its database
    // lock follows within the same call), host b gets the same request.
    let notes = a.host.registry().get("notes").unwrap();
    crate::common::within(Duration::from_secs(10), async || {
        notes
            .slot
            .inflight_keys
            .lock()
            .unwrap()
            .contains("key-across")
            || first.is_finished()
    })
    .await;
    let key = [("idempotency-key", "key-across")];
    let (status_b, answer_b) = b.request("POST", "/notes/notes", Some(&body), &key).await;
    let (status_a, answer_a) = first.await.unwrap();
    use reqwest::StatusCode as S;
    // One is the original, the other overlapped it on the other host: 409.
    // (Host b's may win the database lock when host a's call is slow to
    // reach it; then host a's request is the one refused.)
    let original = match (status_a, status_b) {
        (S::CREATED, S::CONFLICT) => answer_a,
        (S::CONFLICT, S::CREATED) => answer_b,
        other => panic!(
            "one request must be refused while the other runs on the other host: \
             {other:?} {answer_a} {answer_b}"
        ),
    };
    for (host, app) in [("a", &a), ("b", &b)] {
        let (status, replay) = app.request("POST", "/notes/notes", Some(&body), &key).await;
        assert_eq!(status, S::CREATED, "{replay}");
        assert_eq!(replay, original, "host {host} replays the original answer");
    }
    assert_eq!(
        count(&config, "notes", "SELECT COUNT(*) FROM notes").await,
        1
    );
    b.stop().await;
    a.stop().await;
}
