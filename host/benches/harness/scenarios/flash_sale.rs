//! (5) A hot SKU: many concurrent buyers, one SKU, half as many units.
//!
//! Two timings per sale. First every buyer places an order at once while
//! inventory's deliveries are held (its stream gate), so the orders pile up
//! in the outbox as they would behind a slow consumer; then the gate opens and
//! the clock times inventory's reservation path alone, from the first
//! reservation to the last decision. The end-to-end time (first POST to every
//! event handled) is reported beside it.
use super::Plan;
use crate::report::Row;
use crate::shop::Shop;
use anyhow::{Context, ensure};
use std::time::{Duration, Instant};

/// How one sale went.
#[derive(Debug, Clone, Copy)]
struct Sale {
    /// Inventory deciding every order (reserve or reject), gate opened to caught up.
    reserving: Duration,
    /// First POST to every event of the sale handled.
    settled: Duration,
}

pub async fn run(shop: &Shop, plan: &Plan) -> anyhow::Result<Vec<Row>> {
    let mut rounds = Vec::with_capacity(plan.flash_rounds);
    for round in 0..plan.flash_rounds {
        rounds.push(sale(shop, plan, round).await?);
    }
    rounds.sort_by_key(|sale| sale.reserving);
    let median = rounds[rounds.len() / 2];
    let scenario = format!(
        "hot SKU: {} buyers, 1 SKU, {} units",
        plan.flash_buyers, plan.flash_units
    );
    let per_s = |n: f64, d: Duration| Some(n / d.as_secs_f64());
    Ok(vec![
        Row::new(
            5,
            "flash_sale.reservations_per_s",
            &scenario,
            "reservations/s (inventory's path)",
            per_s(plan.flash_units as f64, median.reserving),
        ),
        Row::new(
            5,
            "flash_sale.decisions_per_s",
            &scenario,
            "orders decided/s (reserved or rejected)",
            per_s(plan.flash_buyers as f64, median.reserving),
        ),
        Row::new(
            5,
            "flash_sale.settle_ms",
            &scenario,
            "first POST → all settled, ms",
            Some(median.settled.as_secs_f64() * 1e3),
        ),
    ])
}

/// One sale: every buyer at once, then until every event is handled. Exactly
/// the stock must be reserved: none oversold, none left.
async fn sale(shop: &Shop, plan: &Plan, round: usize) -> anyhow::Result<Sale> {
    let sku = format!("FLASH-{round}");
    shop.seed(&sku, plan.flash_units).await?;
    let relay = shop.host.relay();
    let started = Instant::now();
    relay
        .paused("inventory", async {
            // Each buyer is its own task, as each HTTP connection would be.
            let orders = (0..plan.flash_buyers).map(|n| {
                let (gateway, sku) = (shop.gateway.clone(), sku.clone());
                tokio::spawn(
                    async move { gateway.place(&format!("flash-{round}-{n}"), &sku).await },
                )
            });
            for placed in futures_util::future::join_all(orders).await {
                placed.context("a buyer panicked")??;
            }
            anyhow::Ok(())
        })
        .await?;
    let opened = Instant::now();
    relay
        .drain_stream("inventory", "orders", Duration::from_secs(600))
        .await
        .map_err(anyhow::Error::msg)?;
    let reserving = opened.elapsed();
    shop.drain().await?;
    let settled = started.elapsed();
    let item = shop
        .gateway
        .ok("GET", &format!("/inventory/items/{sku}"), None)
        .await?;
    ensure!(
        item["available"] == 0 && item["reserved"] == plan.flash_units,
        "the sale oversold or undersold: {item}"
    );
    Ok(Sale { reserving, settled })
}
