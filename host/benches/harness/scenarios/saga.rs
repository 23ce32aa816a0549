//! (3) The full saga, order placed → PAID through all five plugins, with
//! buyers in a closed loop; also samples the process's RSS for (6).
use super::{Plan, sku};
use crate::machine::rss_bytes;
use crate::outbox::Follower;
use crate::report::Row;
use crate::shop::{Gateway, Shop};
use crate::stats::Samples;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Longest a buyer waits for the next step of one order.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Drives orders to PAID the way a buyer would, waiting on the outboxes.
pub struct Buyers {
    gateway: Gateway,
    /// `payments.PaymentIntentCreated`, by the order it is for.
    intents: Follower,
    /// How each order ended: `orders.OrderPaid` (or a rejection or cancellation).
    outcomes: Follower,
}

/// The order a payments event is about.
fn by_payload(_aggregate: &str, payload: &Value) -> Option<String> {
    payload["order_id"].as_str().map(str::to_owned)
}

/// The order an orders event is about.
fn by_aggregate(aggregate: &str, _payload: &Value) -> Option<String> {
    Some(aggregate.to_owned())
}

impl Buyers {
    pub fn new(shop: &Shop) -> anyhow::Result<Arc<Buyers>> {
        Ok(Arc::new(Buyers {
            gateway: shop.gateway.clone(),
            intents: Follower::start(
                &shop.host,
                "payments",
                &["PaymentIntentCreated"],
                by_payload,
            )?,
            outcomes: Follower::start(
                &shop.host,
                "orders",
                &["OrderPaid", "OrderRejected", "OrderCancelled"],
                by_aggregate,
            )?,
        }))
    }

    /// Places an order, pays it with the test card, waits until it is PAID;
    /// returns its id.
    pub async fn order_to_paid(&self, buyer: &str, sku: &str) -> anyhow::Result<String> {
        let order = self.gateway.place(buyer, sku).await?;
        let intent = self
            .intents
            .wait(&order, STEP_TIMEOUT)
            .await
            .with_context(|| format!("order {order} got no payment intent"))?;
        let intent_id = intent.payload["intent_id"]
            .as_str()
            .context("PaymentIntentCreated without intent_id")?;
        self.gateway
            .ok(
                "POST",
                &format!("/payments/intents/{intent_id}/confirm"),
                Some(&json!({ "payment_method": "pm_card_ok" })),
            )
            .await?;
        let outcome = self.outcomes.wait(&order, STEP_TIMEOUT).await?;
        if outcome.event_type != "OrderPaid" {
            bail!(
                "order {order} ended with {} instead of PAID: {}",
                outcome.event_type,
                outcome.payload
            );
        }
        Ok(order)
    }

    /// `buyers` buyers, each its own task, ordering back to back for `duration`.
    async fn phase(
        self: &Arc<Self>,
        buyers: usize,
        duration: Duration,
    ) -> anyhow::Result<(Samples, Duration)> {
        let started = Instant::now();
        let deadline = started + duration;
        let next = Arc::new(AtomicU64::new(0));
        let runs = (0..buyers).map(|b| {
            let (this, next) = (self.clone(), next.clone());
            tokio::spawn(async move {
                let mut samples = Samples::default();
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let sent = Instant::now();
                    this.order_to_paid(&format!("buyer-{b}"), &sku(n)).await?;
                    samples.record(sent.elapsed());
                }
                anyhow::Ok(samples)
            })
        });
        let mut all = Samples::default();
        for result in futures_util::future::join_all(runs).await {
            all.extend(result.context("a buyer panicked")??);
        }
        Ok((all, started.elapsed()))
    }
}

/// Event deliveries the host has handled (`mercato_event_deliveries_total`,
/// outcome `ok`), over every stream.
fn deliveries(shop: &Shop) -> u64 {
    shop.host
        .metrics()
        .render()
        .lines()
        .filter(|l| {
            l.starts_with("mercato_event_deliveries_total{") && l.contains("outcome=\"ok\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// What the ceiling is measured on.
pub enum Ceiling<'a> {
    /// As many SQLite files as the shop has plugin databases, in this directory.
    Sqlite {
        dir: &'a std::path::Path,
        files: usize,
    },
    Postgres {
        url: &'a str,
    },
}

/// Returns the rows and the peak RSS seen during the timed phase.
pub async fn run(
    shop: &Shop,
    plan: &Plan,
    backend: &str,
    key: &str,
    ceiling: Option<Ceiling<'_>>,
) -> anyhow::Result<(Vec<Row>, u64)> {
    let buyers = Buyers::new(shop)?;
    buyers.phase(plan.buyers, plan.warmup).await?;
    let peak = Arc::new(AtomicU64::new(rss_bytes()));
    let sampler = tokio::spawn({
        let peak = peak.clone();
        async move {
            loop {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let delivered_before = deliveries(shop);
    let result = buyers.phase(plan.buyers, plan.long).await;
    sampler.abort();
    let (mut latencies, elapsed) = result?;
    shop.drain().await?;
    // Write transactions per order without batching: the two requests
    // (place, confirm) and one per event delivered (counted after the drain,
    // so every event of the timed orders is in; a few of the last warm-up
    // orders' are too, which errs towards a lower ceiling by well under 1 %).
    let orders = latencies.len().max(1) as f64;
    let writes_per_order = 2.0 + (deliveries(shop) - delivered_before) as f64 / orders;
    let commits_per_s = match ceiling {
        // Only the memory figure is wanted.
        None => return Ok((Vec::new(), peak.load(Ordering::Relaxed))),
        Some(Ceiling::Sqlite { dir, files }) => {
            let (dir, duration, tasks) = (dir.to_owned(), plan.short, plan.buyers);
            tokio::task::spawn_blocking(move || {
                crate::ceiling::sqlite(&dir, files, tasks, duration)
            })
            .await??
        }
        Some(Ceiling::Postgres { url }) => {
            crate::ceiling::postgres(url, plan.buyers, plan.short).await?
        }
    };
    let ceiling_orders = commits_per_s / writes_per_order;

    let scenario = format!("saga → PAID, {backend}, {} buyers", plan.buyers);
    let orders_per_s = latencies.len() as f64 / elapsed.as_secs_f64();
    let (p50, p99) = latencies.p50_p99_ms();
    let rows = vec![
        Row::new(
            3,
            &format!("saga_{key}.orders_per_s"),
            &scenario,
            "orders/s (native: the ceiling)",
            Some(orders_per_s),
        )
        .native(Some(ceiling_orders)),
        Row::new(
            3,
            &format!("saga_{key}.writes_per_order"),
            &scenario,
            "write transactions per order, unbatched",
            Some(writes_per_order),
        ),
        Row::new(
            3,
            &format!("saga_{key}.ceiling_commits_per_s"),
            &scenario,
            "ceiling: one-row commits/s, same database and concurrency",
            None,
        )
        .native(Some(commits_per_s)),
        Row::new(3, &format!("saga_{key}.p50_ms"), &scenario, "p50 ms", p50),
        Row::new(3, &format!("saga_{key}.p99_ms"), &scenario, "p99 ms", p99),
    ];
    Ok((rows, peak.load(Ordering::Relaxed)))
}
