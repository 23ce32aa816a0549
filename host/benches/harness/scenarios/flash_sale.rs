//! (5) A flash sale: many concurrent buyers, one hot SKU, a little stock.
use super::Plan;
use crate::report::Row;
use crate::shop::Shop;
use anyhow::{Context, ensure};
use std::time::{Duration, Instant};

pub async fn run(shop: &Shop, plan: &Plan) -> anyhow::Result<Vec<Row>> {
    let mut rounds = Vec::with_capacity(plan.flash_rounds);
    for round in 0..plan.flash_rounds {
        rounds.push(sale(shop, plan, round).await?);
    }
    rounds.sort();
    let median = rounds[rounds.len() / 2];
    let scenario = format!(
        "flash sale: {} buyers, 1 SKU, {} units",
        plan.flash_buyers, plan.flash_units
    );
    Ok(vec![
        Row::new(
            5,
            "flash_sale.reservations_per_s",
            &scenario,
            "reservations/s",
            Some(plan.flash_units as f64 / median.as_secs_f64()),
        ),
        Row::new(
            5,
            "flash_sale.orders_settled_per_s",
            &scenario,
            "orders settled/s",
            Some(plan.flash_buyers as f64 / median.as_secs_f64()),
        ),
        Row::new(
            5,
            "flash_sale.settle_ms",
            &scenario,
            "first POST → all settled, ms",
            Some(median.as_secs_f64() * 1e3),
        ),
    ])
}

/// One sale: every buyer at once, then until every event is handled. Exactly
/// the stock must be reserved.
async fn sale(shop: &Shop, plan: &Plan, round: usize) -> anyhow::Result<Duration> {
    let sku = format!("FLASH-{round}");
    shop.seed(&sku, plan.flash_units).await?;
    let started = Instant::now();
    // Each buyer is its own task, as each HTTP connection would be.
    let orders = (0..plan.flash_buyers).map(|n| {
        let (gateway, sku) = (shop.gateway.clone(), sku.clone());
        tokio::spawn(async move { gateway.place(&format!("flash-{round}-{n}"), &sku).await })
    });
    for placed in futures_util::future::join_all(orders).await {
        placed.context("a buyer panicked")??;
    }
    shop.drain().await?;
    let settled = started.elapsed();
    let item = shop
        .gateway
        .ok("GET", &format!("/inventory/items/{sku}"), None)
        .await?;
    ensure!(
        item["available"] == 0 && item["reserved"] == plan.flash_units,
        "the flash sale oversold or undersold: {item}"
    );
    Ok(settled)
}
