//! The ten scenarios (the benchmark issue's six, full-text search, restart
//! and rollback with a Python rule, cluster mode and the console's pages), run in one process
//! against one SQLite shop (a PostgreSQL shop for the saga, a search shop and a
//! restarted shop of their own; `mercato serve --cluster` processes for the
//! cluster), each for a fixed time or a fixed number of rounds.
mod cluster;
mod console;
mod flash_sale;
mod get_order;
mod memory;
mod overhead;
mod relay;
mod restart;
mod saga;
mod search;

use crate::machine::rss_bytes;
use crate::options::Options;
use crate::report::Row;
use crate::shop::{Backend, Shop, postgres_url};
use std::time::Duration;

/// Durations and sizes: the full run fits in a few minutes on two cores; the
/// quick one (CI smoke, debug build) in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub warmup: Duration,
    /// Each timed phase of scenarios 1 and 4.
    pub short: Duration,
    /// Each timed phase of scenarios 2 and 3.
    pub long: Duration,
    pub connections: usize,
    pub orders_to_read: usize,
    pub buyers: usize,
    pub flash_buyers: usize,
    pub flash_units: i64,
    pub flash_rounds: usize,
    pub live_instances: usize,
    /// Products the search scenario indexes.
    pub search_products: usize,
    /// Restarts (each followed by a rollback, a redeploy and a rollback onto
    /// the deployed rule) of the restart scenario.
    pub restart_rounds: usize,
    /// Orders the console scenario's shop holds.
    pub console_orders: usize,
    /// Loads of each console page.
    pub console_rounds: usize,
}

impl Plan {
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                warmup: Duration::from_millis(100),
                short: Duration::from_millis(300),
                long: Duration::from_millis(500),
                connections: 4,
                orders_to_read: 8,
                buyers: 4,
                flash_buyers: 200,
                flash_units: 100,
                flash_rounds: 1,
                live_instances: 20,
                search_products: 300,
                restart_rounds: 1,
                console_orders: 40,
                console_rounds: 3,
            }
        } else {
            Plan {
                warmup: Duration::from_secs(2),
                short: Duration::from_secs(10),
                long: Duration::from_secs(20),
                connections: 8,
                orders_to_read: 64,
                buyers: 16,
                flash_buyers: 20_000,
                flash_units: 10_000,
                flash_rounds: 1,
                live_instances: 200,
                search_products: 10_000,
                restart_rounds: 5,
                console_orders: 10_000,
                console_rounds: 50,
            }
        }
    }
}

/// SKUs the saga spreads its orders over, with stock for any run.
pub const SKUS: usize = 16;

pub fn sku(n: usize) -> String {
    format!("BENCH-{:02}", n % SKUS)
}

/// Runs the selected scenarios; any error fails the run.
pub async fn run(options: &Options) -> anyhow::Result<Vec<Row>> {
    let plan = Plan::new(options.quick);
    let mut rows = Vec::new();
    let shop = Shop::start(Backend::Sqlite).await?;
    for n in 0..SKUS {
        shop.seed(&sku(n), 1_000_000_000).await?;
    }
    let idle_rss = rss_bytes();
    let mut peak_rss = None;
    if options.runs("overhead") {
        step("1 per-call overhead");
        rows.extend(overhead::run(&shop, &plan).await?);
    }
    if options.runs("get-order") {
        step("2 GET /orders/{id}");
        rows.extend(get_order::run(&shop, &plan).await?);
    }
    if options.runs("saga") {
        step("3 saga on SQLite");
        let ceiling = tempfile::tempdir()?;
        let (saga_rows, peak) = saga::run(
            &shop,
            &plan,
            "SQLite",
            "sqlite",
            Some(saga::Ceiling::Sqlite {
                dir: ceiling.path(),
                files: crate::shop::SHOP.len(),
            }),
        )
        .await?;
        rows.extend(saga_rows);
        peak_rss = Some(peak);
    }
    if options.runs("relay") {
        step("4 relay latency");
        rows.extend(relay::run(&shop, &plan).await?);
    }
    if options.runs("flash-sale") {
        step("5 flash sale");
        rows.extend(flash_sale::run(&shop, &plan).await?);
    }
    if options.runs("memory") {
        step("6 memory");
        rows.extend(memory::run(&shop, &plan, idle_rss, peak_rss).await?);
    }
    shop.stop().await?;
    if options.runs("search") {
        step("7 full-text search");
        rows.extend(search::run(&plan).await?);
    }
    if options.runs("restart") {
        step("8 restart and rollback with a Python rule");
        rows.extend(restart::run(&plan, options.quick).await?);
    }
    if options.runs("saga") {
        step("3 saga on PostgreSQL");
        match postgres_url().await {
            Ok(url) => {
                let shop = Shop::start(Backend::Postgres { url: url.clone() }).await?;
                for n in 0..SKUS {
                    shop.seed(&sku(n), 1_000_000_000).await?;
                }
                let result = saga::run(
                    &shop,
                    &plan,
                    "PostgreSQL",
                    "postgres",
                    Some(saga::Ceiling::Postgres { url: &url }),
                )
                .await;
                shop.stop().await?;
                rows.extend(result?.0);
            }
            Err(why) if options.smoke => {
                anyhow::bail!("{why}; the smoke run needs PostgreSQL (CI has it)")
            }
            Err(why) => {
                eprintln!("{why}");
                rows.push(Row::skipped(
                    3,
                    "saga_postgres",
                    "saga → PAID, PostgreSQL",
                    "skipped: PostgreSQL unreachable",
                ));
            }
        }
    }
    if options.runs("console") {
        step("10 console pages on a shop of orders");
        rows.extend(console::run(&plan).await?);
    }
    if options.runs("cluster") {
        // Last, once every in-process host has stopped: the cluster's
        // processes get the machine to themselves (with PostgreSQL and NATS).
        step("9 cluster mode: 1 to 3 `mercato serve --cluster` processes");
        rows.extend(cluster::run(&plan, options.quick).await?);
    }
    rows.sort_by_key(|r| r.number);
    Ok(rows)
}

/// Progress on stderr, so stdout carries only the table.
fn step(what: &str) {
    eprintln!("bench: {what}…");
}
