//! (8) Restart and rollback with a coupon rule in Python deployed: the
//! compiled-code cache (`<data_dir>/plugins/compiled`) makes a restart, a
//! rollback and a redeploy load machine code instead of compiling the 18.6 MB
//! component again. The host is what `mercato serve` runs (every embedded
//! plugin and rule) on SQLite; the Python `tiered-spend`
//! (`plugins/python-rules/tiered-spend`, built by `tools/rules/build-python`)
//! is deployed over the embedded Rust one, then each round restarts the host,
//! rolls the rule back, redeploys it, and rolls back onto it. Every step must
//! load from the cache (`mercato_component_compilations_total`) and leave the
//! rule pricing a quote.
//!
//! The quick smoke (`cargo test`, CI) needs no pip: it deploys the embedded Rust
//! rule with a custom section appended (the same code under another sha256).
use super::Plan;
use crate::options::workspace_root;
use crate::report::Row;
use crate::shop::{Backend, Shop};
use crate::stats::Samples;
use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const RULE: &str = "tiered-spend";
const COUPON: &str = "SPEND";

/// The version deployed over the embedded rule.
struct Deployed {
    /// What it is, for the metrics: `Python rule`…
    what: &'static str,
    /// How it was built, for the scenario's name.
    built: &'static str,
    bytes: Vec<u8>,
    sha256: String,
}

pub async fn run(plan: &Plan, quick: bool) -> anyhow::Result<Vec<Row>> {
    let deployed = if quick {
        rust_variant()?
    } else {
        python().await?
    };
    // What `mercato serve` loads: the shop, its other plugins, both example rules.
    let plugins: Vec<&'static str> = mercato::artifacts::EMBEDDED
        .iter()
        .map(|(name, _)| *name)
        .collect();
    ensure!(
        plugins.contains(&RULE),
        "`{RULE}` is no longer an embedded rule"
    );
    let shop = Shop::start_with(Backend::Sqlite, &plugins).await?;
    let mut shop = Some(shop);
    let outcome = measure(&mut shop, plan, &deployed, plugins.len()).await;
    // A failed restart leaves no host to stop.
    let stopped = match shop {
        Some(shop) => shop.stop().await,
        None => Ok(()),
    };
    let rows = outcome?;
    stopped?;
    Ok(rows)
}

/// The Python rule, built (or found up to date) by `tools/rules/build-python`.
async fn python() -> anyhow::Result<Deployed> {
    let root = workspace_root();
    let script = root.join("tools/rules/build-python");
    let status = tokio::task::spawn_blocking({
        let script = script.clone();
        move || std::process::Command::new(&script).status()
    })
    .await?
    .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!(
            "{} failed ({status}): the restart scenario deploys the Python rule it builds \
             (it needs python3 with venv, and pip's registry for componentize-py the first time); \
             `--quick` uses the Rust rule instead",
            script.display()
        );
    }
    let path = root.join("target/python-rule/tiered_spend.wasm");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Deployed {
        what: "Python rule",
        built: "Python, componentize-py 0.25.1",
        sha256: sha256(&bytes),
        bytes,
    })
}

/// The embedded Rust rule with a custom section appended: the same code, but
/// other bytes than those serving, so it deploys, compiles and rolls back as a
/// version of its own.
fn rust_variant() -> anyhow::Result<Deployed> {
    let mut bytes = std::fs::read(mercato_test_artifacts::path(RULE))
        .with_context(|| format!("reading the {RULE} component"))?;
    let (name, payload) = (b"mercato-bench", b"restart scenario");
    let mut section = leb128(name.len());
    section.extend_from_slice(name);
    section.extend_from_slice(payload);
    bytes.push(0); // custom section
    bytes.extend(leb128(section.len()));
    bytes.extend(section);
    Ok(Deployed {
        what: "Rust copy",
        built: "the embedded Rust rule + a custom section (smoke)",
        sha256: sha256(&bytes),
        bytes,
    })
}

fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Figures of each round, in milliseconds.
#[derive(Default)]
struct Rounds {
    restart: Samples,
    rollback: Samples,
    redeploy: Samples,
    rollback_onto: Samples,
}

async fn measure(
    slot: &mut Option<Shop>,
    plan: &Plan,
    deployed: &Deployed,
    components: usize,
) -> anyhow::Result<Vec<Row>> {
    let shop = slot.as_ref().context("no shop")?;
    let first_start = shop.start_time;
    Counts::of(shop).expect(Counts::default(), components, 0, "the first start")?;
    let embedded = serving(shop)?;
    ensure!(
        embedded != deployed.sha256,
        "the component to deploy is the one serving"
    );
    shop.gateway
        .ok(
            "POST",
            "/coupons",
            Some(&json!({ "code": COUPON, "kind": "rule", "rule": RULE, "config": tiers(), "currency": "EUR" })),
        )
        .await?;
    priced(shop, &embedded, "the first start").await?;

    // The first deploy of these bytes compiles them (and keeps the code).
    let before = Counts::of(shop);
    let first_deploy = deploy(shop, &deployed.bytes).await?;
    Counts::of(shop).expect(before, 1, 0, "the first deploy")?;
    priced(shop, &deployed.sha256, "the first deploy").await?;

    let mut rounds = Rounds::default();
    for _ in 0..plan.restart_rounds {
        // Restart: every component, the deployed rule too, from the cache.
        let shop = slot.take().context("no shop")?.restart().await?;
        let shop = slot.insert(shop);
        rounds.restart.record(shop.start_time);
        Counts::of(shop).expect(Counts::default(), 0, components, "the restart")?;
        priced(shop, &deployed.sha256, "the restart").await?;

        // Rollback to the embedded rule, whose code was kept at the first start.
        let before = Counts::of(shop);
        rounds.rollback.record(rollback(shop).await?);
        Counts::of(shop).expect(before, 0, 1, "the rollback")?;
        priced(shop, &embedded, "the rollback").await?;

        // Redeploy of the version that served before the rollback.
        let before = Counts::of(shop);
        rounds.redeploy.record(deploy(shop, &deployed.bytes).await?);
        Counts::of(shop).expect(before, 0, 1, "the redeploy")?;
        priced(shop, &deployed.sha256, "the redeploy").await?;

        // A rollback that lands on the deployed rule: deploy the embedded
        // bytes again (untimed), then roll back onto the deployed version.
        let rust = std::fs::read(mercato_test_artifacts::path(RULE))?;
        let before = Counts::of(shop);
        deploy(shop, &rust).await?;
        Counts::of(shop).expect(before, 0, 1, "the deploy of the embedded rule")?;
        priced(shop, &embedded, "the deploy of the embedded rule").await?;
        let before = Counts::of(shop);
        rounds.rollback_onto.record(rollback(shop).await?);
        Counts::of(shop).expect(before, 0, 1, "the rollback onto the deployed rule")?;
        priced(
            shop,
            &deployed.sha256,
            "the rollback onto the deployed rule",
        )
        .await?;
    }

    let what = deployed.what;
    let scenario = format!(
        "restart & rollback, `{RULE}` deployed: {}, {:.1} MB",
        deployed.built,
        deployed.bytes.len() as f64 / 1e6
    );
    let n = plan.restart_rounds;
    let ms = |d: Duration| Some(d.as_secs_f64() * 1e3);
    let median = |s: &mut Samples| s.percentile(50.0).and_then(ms);
    let worst = |s: &mut Samples| s.percentile(100.0).and_then(ms);
    let row = |key: &str, metric: String, value| Row::new(8, key, &scenario, &metric, value);
    Ok(vec![
        row(
            "restart.first_start_ms",
            format!("first start, {components} components compiled (information), ms"),
            ms(first_start),
        ),
        row(
            "restart.first_deploy_ms",
            format!("first deploy of the {what}, compiled (information), ms"),
            ms(first_deploy),
        ),
        row(
            "restart.ready_ms",
            format!("restart with the {what} deployed → ready, median of {n}, ms"),
            median(&mut rounds.restart),
        ),
        row(
            "restart.ready_max_ms",
            format!("restart → ready, worst of {n}, ms"),
            worst(&mut rounds.restart),
        ),
        row(
            "restart.rollback_ms",
            format!("rollback of the {what} (to the embedded Rust rule), median, ms"),
            median(&mut rounds.rollback),
        ),
        row(
            "restart.rollback_max_ms",
            format!("rollback, worst of {n}, ms"),
            worst(&mut rounds.rollback),
        ),
        row(
            "restart.redeploy_ms",
            format!("redeploy of the {what} (served before), median, ms"),
            median(&mut rounds.redeploy),
        ),
        row(
            "restart.rollback_onto_ms",
            format!("rollback onto the {what}, median, ms"),
            median(&mut rounds.rollback_onto),
        ),
    ])
}

fn tiers() -> Value {
    json!({ "tiers": [
        { "min_subtotal": 10_000, "percent": 5 },
        { "min_subtotal": 20_000, "percent": 10 },
        { "min_subtotal": 50_000, "percent": 15 },
    ] })
}

/// The sha256 of the `tiered-spend` serving now.
fn serving(shop: &Shop) -> anyhow::Result<String> {
    Ok(shop
        .host
        .rules()
        .get(RULE)
        .with_context(|| format!("rule `{RULE}` is not running"))?
        .sha256
        .clone())
}

/// Checks that the rule serving is `sha256` and prices a quote: 9 × 25.00 EUR
/// reaches the 10 % tier.
async fn priced(shop: &Shop, sha256: &str, after: &str) -> anyhow::Result<()> {
    let serving = serving(shop)?;
    ensure!(
        serving == sha256,
        "after {after}, `{RULE}` {serving} serves, not {sha256}"
    );
    let quote = shop
        .gateway
        .ok(
            "POST",
            &format!("/coupons/{COUPON}/quote"),
            Some(&json!({ "currency": "EUR", "buyer_id": "bench",
                "lines": [{ "sku": "TEE", "quantity": 9, "unit_price_minor": 2_500 }] })),
        )
        .await?;
    ensure!(
        quote["applicable"] == true
            && quote["discount_minor"] == 2_250
            && quote["rule"]["reason"] == "10% off orders of 200.00 EUR or more",
        "after {after}, the quote is {quote}"
    );
    Ok(())
}

/// `mercato_component_compilations_total` of the running host.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    compiled: u64,
    cached: u64,
}

impl Counts {
    fn of(shop: &Shop) -> Counts {
        let count = |outcome: &str| {
            shop.host
                .metrics()
                .compilations
                .with_label_values(&[outcome])
                .get()
        };
        Counts {
            compiled: count("compiled"),
            cached: count("cached"),
        }
    }

    /// Fails unless `step` compiled `compiled` components and loaded `cached`
    /// from the cache since `before`: a compilation where the cache should
    /// have served would make the step's time meaningless.
    fn expect(
        self,
        before: Counts,
        compiled: usize,
        cached: usize,
        step: &str,
    ) -> anyhow::Result<()> {
        let done = (self.compiled - before.compiled, self.cached - before.cached);
        ensure!(
            done == (compiled as u64, cached as u64),
            "{step} compiled {} and loaded {} components from the cache; expected {compiled} and {cached}",
            done.0,
            done.1
        );
        Ok(())
    }
}

/// The admin API over loopback, as `mercato deploy` / `rollback` call it.
fn admin(shop: &Shop) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", shop.host.admin_token()).parse()?,
    );
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        // A debug build compiles an interpreter for minutes.
        .timeout(Duration::from_secs(600))
        .build()?)
}

/// `PUT /admin/plugins/tiered-spend` with `bytes`: the time until its answer
/// was read. The version must switch.
async fn deploy(shop: &Shop, bytes: &[u8]) -> anyhow::Result<Duration> {
    let request = admin(shop)?
        .put(format!("{}/admin/plugins/{RULE}", shop.url))
        .header("content-type", "application/wasm")
        .body(bytes.to_vec());
    let (took, answer) = timed(request).await?;
    ensure!(
        answer["unchanged"] == false,
        "PUT /admin/plugins/{RULE} changed nothing: {answer}"
    );
    Ok(took)
}

/// `POST /admin/plugins/tiered-spend/rollback`: the time until its answer was read.
async fn rollback(shop: &Shop) -> anyhow::Result<Duration> {
    let request = admin(shop)?.post(format!("{}/admin/plugins/{RULE}/rollback", shop.url));
    Ok(timed(request).await?.0)
}

async fn timed(request: reqwest::RequestBuilder) -> anyhow::Result<(Duration, Value)> {
    let (client, request) = request.build_split();
    let request = request?;
    let what = format!("{} {}", request.method(), request.url().path());
    let started = Instant::now();
    let response = client.execute(request).await.context(what.clone())?;
    let status = response.status();
    let body = response.bytes().await?;
    let took = started.elapsed();
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    ensure!(status.is_success(), "{what} answered {status}: {answer}");
    Ok((took, answer))
}
