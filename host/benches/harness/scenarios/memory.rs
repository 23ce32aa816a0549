//! (6) Memory: the process's RSS idle and at its peak under the saga, and the
//! RSS one live instance costs (its store, its linear memory from the pool,
//! the host-side call state).
use super::{Plan, saga};
use crate::calls::in_sandbox;
use crate::machine::rss_bytes;
use crate::report::Row;
use crate::shop::Shop;
use anyhow::{Context, ensure};
use mercato::bindings::Request;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;
use tokio_util::sync::CancellationToken;

const MIB: f64 = 1024.0 * 1024.0;

pub async fn run(
    shop: &Shop,
    plan: &Plan,
    idle_rss: u64,
    saga_peak_rss: Option<u64>,
) -> anyhow::Result<Vec<Row>> {
    let peak = match saga_peak_rss {
        Some(peak) => peak,
        // Run on its own: load the host with the saga to see its peak.
        None => saga::run(shop, plan, "SQLite", "sqlite", None).await?.1,
    };
    let noop = per_instance(shop, plan, "noop", "/").await?;
    // A path no route matches: the orders plugin answers 404 without its database.
    let orders = per_instance(shop, plan, "orders", "/no/such/route").await?;
    let scenario = "memory (process RSS)";
    Ok(vec![
        Row::new(
            6,
            "memory.idle_mib",
            scenario,
            "idle, MiB",
            Some(idle_rss as f64 / MIB),
        ),
        Row::new(
            6,
            "memory.saga_peak_mib",
            scenario,
            "peak under the SQLite saga, MiB",
            Some(peak as f64 / MIB),
        ),
        Row::new(
            6,
            "memory.noop_instance_kib",
            scenario,
            &format!(
                "per live instance, noop ({} alive), KiB",
                plan.live_instances
            ),
            Some(noop / 1024.0),
        ),
        Row::new(
            6,
            "memory.orders_instance_kib",
            scenario,
            &format!(
                "per live instance, orders ({} alive), KiB",
                plan.live_instances
            ),
            Some(orders / 1024.0),
        ),
    ])
}

/// RSS per instance with `plan.live_instances` instances of `plugin` alive at
/// once (each has answered `GET path` and is held until all have), in bytes.
/// An identical warm-up round first, so allocator arenas and pool slots are warm.
async fn per_instance(shop: &Shop, plan: &Plan, plugin: &str, path: &str) -> anyhow::Result<f64> {
    hold(shop, plan.live_instances, plugin, path, |_| ()).await?;
    let before = rss_bytes();
    let mut alive = 0;
    hold(shop, plan.live_instances, plugin, path, |rss| alive = rss).await?;
    Ok(alive.saturating_sub(before) as f64 / plan.live_instances as f64)
}

/// Keeps `n` instances alive at once and calls `measure` with the RSS then.
async fn hold(
    shop: &Shop,
    n: usize,
    plugin: &str,
    path: &str,
    measure: impl FnOnce(u64),
) -> anyhow::Result<()> {
    let plugin = shop
        .host
        .registry()
        .get(plugin)
        .with_context(|| format!("plugin {plugin} is not running"))?;
    let all_alive = Arc::new(Barrier::new(n + 1));
    let release = CancellationToken::new();
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let (host, plugin) = (shop.host.clone(), plugin.clone());
            let (all_alive, release) = (all_alive.clone(), release.clone());
            let request = Request {
                method: "GET".into(),
                path: path.to_owned(),
                query: String::new(),
                headers: Vec::new(),
                body: Vec::new(),
            };
            tokio::spawn(async move {
                let response = in_sandbox(&host, &plugin, |instance, store| {
                    Box::pin(async move {
                        let response = instance
                            .mercato_plugin_plugin()
                            .call_handle_request(store, &request)
                            .await;
                        all_alive.wait().await;
                        release.cancelled().await;
                        response
                    })
                })
                .await?;
                anyhow::Ok(response.status)
            })
        })
        .collect();
    let waited = tokio::time::timeout(Duration::from_secs(5), all_alive.wait()).await;
    if waited.is_ok() {
        measure(rss_bytes());
    }
    release.cancel();
    for call in futures_util::future::join_all(calls).await {
        let status = call.context("an instance task panicked")??;
        ensure!(status < 500, "{} answered {status}", plugin.name);
    }
    ensure!(
        waited.is_ok(),
        "{n} instances of {} never were alive at once",
        plugin.name
    );
    Ok(())
}
