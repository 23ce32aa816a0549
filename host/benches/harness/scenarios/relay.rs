//! (4) Event relay latency on an idle host: `orders.OrderPlaced` committed →
//! inventory's handler committed (its stream cursor passed the event).
use super::{Plan, sku};
use crate::report::Row;
use crate::shop::Shop;
use crate::stats::Samples;
use anyhow::Context;
use std::time::{Duration, Instant};

const SCENARIO: &str = "relay: OrderPlaced committed → inventory handled";

pub async fn run(shop: &Shop, plan: &Plan) -> anyhow::Result<Vec<Row>> {
    let mut warm = Samples::default();
    let until = Instant::now() + plan.warmup;
    while Instant::now() < until {
        warm.record(one(shop, warm.len()).await?);
    }
    let mut samples = Samples::default();
    let handler_start = handler_seconds(shop);
    let until = Instant::now() + plan.short;
    while Instant::now() < until {
        samples.record(one(shop, samples.len()).await?);
    }
    let handler_end = handler_seconds(shop);
    let (p50, p99) = samples.p50_p99_ms();
    // Without payments, OrderPlaced is the only event inventory runs a handler
    // for here, so its mean call time is the handler's share of the relay.
    let calls = (handler_end.1 - handler_start.1).max(1) as f64;
    let handler_mean_ms = (handler_end.0 - handler_start.0) / calls * 1e3;
    Ok(vec![
        Row::new(4, "relay.p50_ms", SCENARIO, "p50 ms", p50),
        Row::new(4, "relay.p99_ms", SCENARIO, "p99 ms", p99),
        Row::new(
            4,
            "relay.handler_mean_ms",
            SCENARIO,
            "of which the handler call (instantiate + run), mean ms",
            Some(handler_mean_ms),
        ),
    ])
}

/// One order: the time from its commit to inventory having handled it; then
/// the rest of the saga settles, so the next order starts on an idle host.
async fn one(shop: &Shop, n: usize) -> anyhow::Result<Duration> {
    shop.gateway.place(&format!("relay-{n}"), &sku(n)).await?;
    let committed = Instant::now();
    shop.host
        .relay()
        .drain_stream("inventory", "orders", Duration::from_secs(30))
        .await
        .map_err(anyhow::Error::msg)
        .context("inventory did not handle OrderPlaced")?;
    let latency = committed.elapsed();
    shop.drain().await?;
    Ok(latency)
}

/// Sum and count of inventory's event-call durations (the host's histogram).
fn handler_seconds(shop: &Shop) -> (f64, u64) {
    let histogram = shop
        .host
        .metrics()
        .call_seconds
        .with_label_values(&["inventory", "event"]);
    (histogram.get_sample_sum(), histogram.get_sample_count())
}
