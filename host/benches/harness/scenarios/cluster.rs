//! (9) Cluster mode: the saga through `mercato serve --cluster` processes on
//! one PostgreSQL and one NATS JetStream, for 1, 2 and 3 hosts (a fresh
//! cluster each, torn down after).
//!
//! Buyers in a closed loop, spread round-robin over the hosts: each places an
//! order on its host, then polls the order every 2 ms on the *next* host (its
//! own when there is one) until it is AWAITING_PAYMENT (the relay latency:
//! the placement acknowledged → its reservation visible, which crosses hosts,
//! since inventory's and orders' streams may run on any host), finds the
//! payment intent, confirms it with `pm_card_ok` on its host and polls until
//! the order is PAID. Every host, PostgreSQL, NATS and the load generator
//! share this machine's cores: the figures say what the cluster costs, not
//! what more machines would add.
use super::{Plan, SKUS, sku};
use crate::report::Row;
use crate::stats::Samples;
use anyhow::{Context, bail, ensure};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Each host's config file (the command line sets the rest): three hosts of
/// nine plugins stay under PostgreSQL's default 100 connections; the 10 s
/// plugin deadline of every other scenario (`shop.rs`) with the default
/// memory limit (a `[limits]` table names both).
const SETTINGS: &str =
    "[storage]\nmax_connections = 3\n[limits]\nmemory_mib = 64\ndeadline_ms = 10000\n";
/// How often a buyer asks whether its order has moved on.
const POLL: Duration = Duration::from_millis(2);
/// Longest a buyer waits for the next step of one order.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a host may take to serve (its first start compiles every component).
const START_TIMEOUT: Duration = Duration::from_secs(300);

pub async fn run(plan: &Plan, quick: bool) -> anyhow::Result<Vec<Row>> {
    let services = Services::reachable().await?;
    // Compiled components, shared by every host of every cluster: each host
    // starts on a fresh data directory seeded with them, so only the first
    // start of the run compiles.
    let cache = tempfile::tempdir()?;
    let sizes: &[usize] = if quick { &[1, 2] } else { &[1, 2, 3] };
    let mut rows = Vec::new();
    for &n in sizes {
        let started = Instant::now();
        let cluster = Cluster::start(&services, n, cache.path())
            .await
            .with_context(|| format!("starting a cluster of {n} host(s)"))?;
        eprintln!(
            "bench: cluster {} of {n} host(s) serving after {:.1} s",
            cluster.name,
            started.elapsed().as_secs_f64()
        );
        let outcome = measure(&cluster, plan).await;
        if outcome.is_err() {
            cluster.print_logs();
        }
        let torn_down = cluster.teardown().await;
        rows.extend(outcome.with_context(|| format!("the cluster of {n} host(s)"))?);
        torn_down?;
    }
    Ok(rows)
}

/// PostgreSQL and NATS with JetStream, checked before any host starts.
struct Services {
    pg_url: String,
    nats_url: String,
}

impl Services {
    async fn reachable() -> anyhow::Result<Services> {
        let pg_url = crate::shop::postgres_url().await.map_err(|why| {
            anyhow::anyhow!(
                "{why}; the cluster scenario needs PostgreSQL (set MERCATO_TEST_DATABASE_URL)"
            )
        })?;
        let nats_url = std::env::var("MERCATO_TEST_NATS_URL")
            .unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        let unreachable = |why: String| {
            anyhow::anyhow!(
                "NATS with JetStream is not reachable at {nats_url}: {why}; the cluster scenario \
                 needs it (start `nats-server -js`, or point MERCATO_TEST_NATS_URL at one)"
            )
        };
        let check = async {
            let client = async_nats::connect(&nats_url)
                .await
                .map_err(|e| e.to_string())?;
            // Listing the streams is a JetStream API call: it fails when the
            // server runs without JetStream. (`query_account` cannot parse
            // the answer of this server's version.)
            let js = async_nats::jetstream::new(client);
            match js.stream_names().next().await {
                Some(Err(e)) => Err(format!("JetStream: {e}")),
                _ => Ok(()),
            }
        };
        match tokio::time::timeout(Duration::from_secs(5), check).await {
            Ok(Ok(_)) => {}
            Ok(Err(why)) => return Err(unreachable(why)),
            Err(_) => return Err(unreachable("no answer within 5 s".into())),
        }
        Ok(Services { pg_url, nats_url })
    }
}

/// One `mercato serve` process.
struct Host {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    url: String,
    /// Its id in `/admin/cluster`.
    id: String,
    dir: tempfile::TempDir,
}

/// A cluster of a fresh name: its hosts, and what to tear down.
struct Cluster {
    name: String,
    pg_url: String,
    nats_url: String,
    hosts: Vec<Host>,
    /// Sends the admin token with every request.
    http: reqwest::Client,
}

/// `mercato` (the bench profile's build of this package) with none of the
/// environment's settings.
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
        "DATA_DIR",
    ] {
        command.env_remove(format!("MERCATO_{name}"));
    }
    command
}

/// Copies every file of `from` missing in `to` (compiled components; a file
/// torn by a concurrent write fails its seal and is compiled again).
fn copy_missing(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_file() && !target.exists() {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The last lines of a host's logs, for an error.
fn log_tail(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["stdout.log", "stderr.log"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        out.push_str(&format!("\n---- {} ----\n{tail}", dir.join(name).display()));
    }
    out
}

impl Cluster {
    /// Starts `n` hosts one after the other and waits until every stream is owned.
    async fn start(services: &Services, n: usize, cache: &Path) -> anyhow::Result<Cluster> {
        let name = format!("b{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut auth = reqwest::header::HeaderMap::new();
        auth.insert("authorization", format!("Bearer {token}").parse()?);
        let http = reqwest::Client::builder()
            .default_headers(auth)
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()?;
        let mut cluster = Cluster {
            name,
            pg_url: services.pg_url.clone(),
            nats_url: services.nats_url.clone(),
            hosts: Vec::new(),
            http,
        };
        for i in 0..n {
            if let Err(e) = cluster.launch(i, &token, cache).await {
                // What started is torn down; the start's error is the one to report.
                if let Err(also) = cluster.teardown().await {
                    eprintln!("bench: tearing down after a failed start: {also:#}");
                }
                return Err(e);
            }
        }
        if let Err(e) = cluster.settled(n).await {
            cluster.print_logs();
            let _ = cluster.teardown().await;
            return Err(e);
        }
        Ok(cluster)
    }

    /// The last lines of every host's logs, on stderr (before an error).
    fn print_logs(&self) {
        for host in &self.hosts {
            eprintln!("{}", log_tail(host.dir.path()));
        }
    }

    /// Starts host `i` on a fresh data directory seeded from `cache`.
    async fn launch(&mut self, i: usize, token: &str, cache: &Path) -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let compiled = dir.path().join("plugins").join("compiled");
        copy_missing(cache, &compiled).context("seeding the compiled-code cache")?;
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, SETTINGS)?;
        let log = |name: &str| std::fs::File::create(dir.path().join(name));
        let mut child = mercato()
            .arg("serve")
            .args(["--cluster", &self.name])
            .args(["--nats-url", &self.nats_url])
            .args(["--database-url", &self.pg_url])
            .args(["--listen", "127.0.0.1:0", "--admin-token", token])
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log("stderr.log")?)
            .spawn()
            .with_context(|| format!("starting {}", env!("CARGO_BIN_EXE_mercato")))?;
        // Its stdout goes on to stdout.log; "mercato is serving" carries the address.
        let (serving, address) = tokio::sync::oneshot::channel();
        let (stdout, mut file) = (
            child.stdout.take().context("no stdout")?,
            log("stdout.log")?,
        );
        std::thread::spawn(move || {
            let mut serving = Some(serving);
            let lines = std::io::BufReader::new(stdout).lines();
            for line in lines.map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                if line.contains("mercato is serving")
                    && let Some(address) = line.split("address=").nth(1)
                    && let Some(serving) = serving.take()
                {
                    let address = address.split_whitespace().next().unwrap_or_default();
                    let _ = serving.send(address.to_owned());
                }
            }
        });
        let address = match tokio::time::timeout(START_TIMEOUT, address).await {
            Ok(Ok(address)) => address,
            _ => {
                let exit = child.try_wait()?;
                let _ = (child.kill(), child.wait());
                bail!(
                    "host {i} of cluster {} did not serve within {START_TIMEOUT:?} (exit: {exit:?}){}",
                    self.name,
                    log_tail(dir.path())
                );
            }
        };
        let url = format!("http://{address}");
        self.hosts.push(Host {
            child,
            url: url.clone(),
            id: String::new(),
            dir,
        });
        let status = poll(Duration::from_secs(60), "GET /admin/cluster", || {
            get(&self.http, &url, "/admin/cluster")
        })
        .await?;
        ensure!(status["cluster"] == self.name.as_str(), "{status}");
        let host = self.hosts.last_mut().expect("just pushed");
        host.id = status["host"]
            .as_str()
            .context("/admin/cluster names no host")?
            .to_owned();
        // What it compiled, for the next hosts.
        copy_missing(&compiled, cache).context("keeping the compiled code")?;
        Ok(())
    }

    /// Waits until the cluster lists `n` hosts and every stream has an owner.
    async fn settled(&self, n: usize) -> anyhow::Result<()> {
        let url = &self.hosts[0].url;
        poll(
            Duration::from_secs(60),
            "every host listed and every stream owned",
            || async {
                let status = get(&self.http, url, "/admin/cluster").await?;
                let hosts = status["hosts"].as_array().map_or(0, Vec::len);
                let streams = status["streams"].as_array().context("no streams")?;
                let owned = !streams.is_empty() && streams.iter().all(|s| s["owner"].is_string());
                ensure!(hosts == n && owned, "{status}");
                Ok(())
            },
        )
        .await
    }

    /// Streams each host owns, in host order.
    async fn owners(&self) -> anyhow::Result<Vec<usize>> {
        let status = get(&self.http, &self.hosts[0].url, "/admin/cluster").await?;
        let streams = status["streams"].as_array().context("no streams")?;
        Ok(self
            .hosts
            .iter()
            .map(|h| {
                streams
                    .iter()
                    .filter(|s| s["owner"] == h.id.as_str())
                    .count()
            })
            .collect())
    }

    /// Stops every host (SIGTERM, then SIGKILL after 15 s), drops the
    /// cluster's PostgreSQL schemas and roles and deletes its JetStream streams.
    async fn teardown(mut self) -> anyhow::Result<()> {
        for host in &self.hosts {
            let _ = Command::new("kill")
                .args(["-TERM", &host.child.id().to_string()])
                .status();
        }
        let until = Instant::now() + Duration::from_secs(15);
        for host in &mut self.hosts {
            while host.child.try_wait()?.is_none() && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if host.child.try_wait()?.is_none() {
                eprintln!("bench: a host of {} ignored SIGTERM; killed", self.name);
                let _ = (host.child.kill(), host.child.wait());
            }
        }
        let namespace = format!("mercato_{}_", self.name);
        let dropped = drop_postgres(&self.pg_url, &namespace).await;
        let deleted = delete_streams(&self.nats_url, &self.name).await;
        dropped.with_context(|| format!("dropping PostgreSQL's {namespace}*"))?;
        deleted.with_context(|| format!("deleting the JetStream streams of {}", self.name))
    }
}

impl Drop for Cluster {
    /// A cluster never outlives the harness (an error or a panic between
    /// start and teardown): its processes at least are stopped.
    fn drop(&mut self) {
        for host in &mut self.hosts {
            if let Ok(None) = host.child.try_wait() {
                let _ = (host.child.kill(), host.child.wait());
            }
        }
    }
}

/// Drops every schema and role under `namespace`, after ending their sessions.
async fn drop_postgres(url: &str, namespace: &str) -> anyhow::Result<()> {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let roles = "SELECT rolname::text FROM pg_roles WHERE starts_with(rolname, $1)";
    let running: Vec<String> = sqlx::query_scalar(roles)
        .bind(namespace)
        .fetch_all(&mut conn)
        .await?;
    for role in &running {
        conn.execute(format!("ALTER ROLE \"{role}\" NOLOGIN").as_str())
            .await?;
    }
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE starts_with(usename, $1)",
    )
    .bind(namespace)
    .execute(&mut conn)
    .await?;
    let schemas: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)")
            .bind(namespace)
            .fetch_all(&mut conn)
            .await?;
    for schema in schemas {
        conn.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str())
            .await?;
    }
    for role in running {
        for statement in [
            format!("DROP OWNED BY \"{role}\" CASCADE"),
            format!("DROP ROLE IF EXISTS \"{role}\""),
        ] {
            conn.execute(statement.as_str()).await?;
        }
    }
    conn.close().await?;
    Ok(())
}

/// Deletes every JetStream stream (buckets are streams too) named for `cluster`.
async fn delete_streams(url: &str, cluster: &str) -> anyhow::Result<()> {
    let js = async_nats::jetstream::new(async_nats::connect(url).await?);
    let names: Vec<String> = js
        .stream_names()
        .filter_map(|n| async move { n.ok() })
        .collect()
        .await;
    for name in names {
        if name.to_ascii_lowercase().contains(cluster) {
            js.delete_stream(&name)
                .await
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        }
    }
    Ok(())
}

/// Calls `check` every 50 ms until it succeeds; after `within`, its last error.
async fn poll<T, F, Fut>(within: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let started = Instant::now();
    loop {
        match check().await {
            Ok(done) => return Ok(done),
            Err(e) if started.elapsed() >= within => {
                return Err(e.context(format!("{what}: not within {within:?}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Sends `request`: its status and JSON body (`Null` if none).
async fn answer(request: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// GET `path` of the host at `url`: its JSON, which must come with a 200.
async fn get(http: &reqwest::Client, url: &str, path: &str) -> anyhow::Result<Value> {
    let (status, body) = answer(http.get(format!("{url}{path}"))).await?;
    ensure!(status == 200, "GET {url}{path} answered {status}: {body}");
    Ok(body)
}

/// POST `body` to `path` of the host at `url`: the answer, whatever its status.
async fn post(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    body: &Value,
) -> anyhow::Result<(u16, Value)> {
    answer(http.post(format!("{url}{path}")).json(body)).await
}

/// An order for one unit of `sku`.
fn order(buyer: &str, sku: &str) -> Value {
    json!({ "buyer_id": buyer, "currency": "EUR", "items": [{ "sku": sku, "quantity": 1 }], "shipping_address": { "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB" } })
}

/// One order's timings.
struct Trip {
    /// `POST /orders` sent → the order seen PAID.
    paid: Duration,
    /// `POST /orders` answered → the order seen AWAITING_PAYMENT.
    relay: Duration,
}

/// A buyer: places and pays through `place`, watches through `watch`.
struct Buyer {
    http: reqwest::Client,
    place: String,
    watch: String,
    /// GETs sent while waiting, over every buyer.
    polls: Arc<AtomicU64>,
}

impl Buyer {
    /// Polls `GET path` on the watch host every 2 ms until `done` says
    /// what it waited for (`Some`); `done` fails on a state it cannot leave.
    async fn wait<T>(
        &self,
        path: &str,
        what: &str,
        done: impl Fn(&Value) -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        loop {
            let body = get(&self.http, &self.watch, path).await?;
            self.polls.fetch_add(1, Ordering::Relaxed);
            if let Some(found) = done(&body)? {
                return Ok(found);
            }
            if started.elapsed() > STEP_TIMEOUT {
                bail!("{what}: not within {STEP_TIMEOUT:?}, last {body}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls the order until its status is `status`; any status but PENDING,
    /// AWAITING_PAYMENT and `status` is an error.
    async fn until_status(&self, id: &str, status: &str) -> anyhow::Result<()> {
        self.wait(
            &format!("/orders/{id}"),
            &format!("order {id} {status}"),
            |o| match o["status"].as_str() {
                Some(s) if s == status => Ok(Some(())),
                Some("PENDING" | "AWAITING_PAYMENT") => Ok(None),
                _ => bail!("order {id} went elsewhere than {status}: {o}"),
            },
        )
        .await
    }

    /// Places an order; `None` while the saga does not know the product yet (404).
    async fn place(&self, buyer: &str, sku: &str) -> anyhow::Result<Option<String>> {
        let (status, body) = post(&self.http, &self.place, "/orders", &order(buyer, sku)).await?;
        match status {
            201 => Ok(Some(
                body["id"]
                    .as_str()
                    .context("POST /orders answered without an id")?
                    .to_owned(),
            )),
            404 => Ok(None),
            _ => bail!("POST {}/orders answered {status}: {body}", self.place),
        }
    }

    /// From an acknowledged order to PAID; returns when it was seen AWAITING_PAYMENT.
    async fn pay(&self, id: &str) -> anyhow::Result<Instant> {
        self.until_status(id, "AWAITING_PAYMENT").await?;
        let reserved = Instant::now();
        let path = format!("/payments/intents?order_id={id}");
        let intent = self
            .wait(&path, &format!("order {id}'s payment intent"), |list| {
                Ok(list["data"][0]["id"].as_str().map(str::to_owned))
            })
            .await?;
        let confirm = format!("/payments/intents/{intent}/confirm");
        let (status, body) = post(
            &self.http,
            &self.place,
            &confirm,
            &json!({ "payment_method": "pm_card_ok" }),
        )
        .await?;
        ensure!(status == 200, "POST {confirm} answered {status}: {body}");
        self.until_status(id, "PAID").await?;
        Ok(reserved)
    }

    /// One order, placed → PAID.
    async fn trip(&self, buyer: &str, sku: &str) -> anyhow::Result<Trip> {
        let sent = Instant::now();
        let id = self
            .place(buyer, sku)
            .await?
            .with_context(|| format!("POST /orders: {sku} unknown to the saga"))?;
        let acked = Instant::now();
        let reserved = self.pay(&id).await?;
        Ok(Trip {
            paid: sent.elapsed(),
            relay: reserved - acked,
        })
    }
}

/// The buyers' view of the cluster: buyer `b` places on host `b % n` and
/// watches on the next one.
fn buyer(cluster: &Cluster, b: usize, polls: &Arc<AtomicU64>) -> Buyer {
    let n = cluster.hosts.len();
    Buyer {
        http: cluster.http.clone(),
        place: cluster.hosts[b % n].url.clone(),
        watch: cluster.hosts[(b + 1) % n].url.clone(),
        polls: polls.clone(),
    }
}

/// 16 SKUs with ample stock, made round-robin through the hosts; then one
/// order of each, placed once the saga knows the product (404 until then)
/// and paid.
async fn seed(cluster: &Cluster) -> anyhow::Result<()> {
    let polls = Arc::new(AtomicU64::new(0));
    for n in 0..SKUS {
        let (url, sku) = (&cluster.hosts[n % cluster.hosts.len()].url, sku(n));
        let product = json!({ "sku": sku, "name": sku, "price_minor": 1_000, "currency": "EUR" });
        let stock = json!({ "sku": sku, "on_hand": 1_000_000_000i64 });
        for (path, body) in [("/products", product), ("/inventory/items", stock)] {
            let (status, answer) = post(&cluster.http, url, path, &body).await?;
            ensure!(
                status == 201,
                "POST {url}{path} answered {status}: {answer}"
            );
        }
    }
    for n in 0..SKUS {
        let buyer = buyer(cluster, n, &polls);
        let id = poll(Duration::from_secs(60), "the saga to know the SKU", || {
            let buyer = &buyer;
            async move { buyer.place("seed", &sku(n)).await?.context("404: not yet") }
        })
        .await?;
        buyer.pay(&id).await?;
    }
    Ok(())
}

/// What a phase measured.
struct Phase {
    paid: Samples,
    relay: Samples,
    elapsed: Duration,
    polls: u64,
}

/// `buyers` buyers, each its own task, ordering back to back for `duration`.
async fn phase(cluster: &Cluster, buyers: usize, duration: Duration) -> anyhow::Result<Phase> {
    let polls = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let runs = (0..buyers).map(|b| {
        let (buyer, next) = (buyer(cluster, b, &polls), next.clone());
        tokio::spawn(async move {
            let (mut paid, mut relay) = (Samples::default(), Samples::default());
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                let trip = buyer.trip(&format!("buyer-{b}"), &sku(n)).await?;
                paid.record(trip.paid);
                relay.record(trip.relay);
            }
            anyhow::Ok((paid, relay))
        })
    });
    let (mut paid, mut relay) = (Samples::default(), Samples::default());
    for result in futures_util::future::join_all(runs).await {
        let (p, r) = result.context("a buyer panicked")??;
        paid.extend(p);
        relay.extend(r);
    }
    Ok(Phase {
        paid,
        relay,
        elapsed: started.elapsed(),
        polls: polls.load(Ordering::Relaxed),
    })
}

/// Seeds, warms up and times one cluster.
async fn measure(cluster: &Cluster, plan: &Plan) -> anyhow::Result<Vec<Row>> {
    let n = cluster.hosts.len();
    seed(cluster).await?;
    phase(cluster, plan.buyers, plan.warmup).await?;
    // Streams may have moved while the load began (a host takes its share).
    cluster.settled(n).await?;
    let owners = cluster.owners().await?;
    let mut timed = phase(cluster, plan.buyers, plan.long).await?;
    let owners_after = cluster.owners().await?;
    // One buyer alone: the relay's latency when nothing else waits for the
    // cores, which under 16 buyers is mostly queueing.
    let mut alone = phase(cluster, 1, plan.short).await?;
    eprintln!(
        "bench: cluster of {n}: streams owned per host {owners:?} before the timed phase, \
         {owners_after:?} after"
    );

    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let (hosts, processes, seen) = if n == 1 {
        ("1 host".to_owned(), "1 mercato process".to_owned(), "on it")
    } else {
        (
            format!("{n} hosts"),
            format!("{n} mercato processes"),
            "on another host",
        )
    };
    let scenario = format!(
        "cluster: {hosts}, saga → PAID, PostgreSQL + NATS, {} buyers",
        plan.buyers
    );
    let key = |metric: &str| format!("cluster_{n}.{metric}");
    let orders = timed.paid.len();
    let (paid_p50, paid_p99) = timed.paid.p50_p99_ms();
    let (relay_p50, relay_p99) = timed.relay.p50_p99_ms();
    let (alone_p50, alone_p99) = alone.relay.p50_p99_ms();
    let context = format!(
        "none measured: {processes} + PostgreSQL + NATS + the load generator share the same \
         {cores} cores"
    );
    Ok(vec![
        Row::new(
            9,
            &key("orders_per_s"),
            &scenario,
            "PAID orders/s",
            Some(orders as f64 / timed.elapsed.as_secs_f64()),
        ),
        Row::new(
            9,
            &key("p50_ms"),
            &scenario,
            "order → PAID p50 ms",
            paid_p50,
        ),
        Row::new(
            9,
            &key("p99_ms"),
            &scenario,
            "order → PAID p99 ms",
            paid_p99,
        ),
        Row::new(
            9,
            &key("relay_p50_ms"),
            &scenario,
            &format!("relay: placed → AWAITING_PAYMENT seen {seen}, p50 ms"),
            relay_p50,
        ),
        Row::new(
            9,
            &key("relay_p99_ms"),
            &scenario,
            "relay p99 ms",
            relay_p99,
        ),
        Row::new(
            9,
            &key("relay_alone_p50_ms"),
            &scenario,
            &format!(
                "relay with 1 buyer alone ({} orders), p50 ms",
                alone.paid.len()
            ),
            alone_p50,
        ),
        Row::new(
            9,
            &key("relay_alone_p99_ms"),
            &scenario,
            "relay with 1 buyer alone, p99 ms",
            alone_p99,
        ),
        Row::new(
            9,
            &key("polls_per_order"),
            &scenario,
            "GETs polled per order (load the measuring adds)",
            Some(timed.polls as f64 / orders.max(1) as f64),
        ),
        Row::new(9, &key("ceiling"), &scenario, "ceiling", None).note(&context),
    ])
}
