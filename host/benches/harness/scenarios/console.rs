//! (10) The operator's console on a shop of 10,000 orders (SQLite, what
//! `mercato serve` runs): each page's load as the page makes it — its
//! HTML and scripts, then the admin API calls its script sends (in parallel
//! where the script sends them so) — through the full router in-process, so
//! the time is the host's, without a browser's rendering. Beside the
//! heaviest page's ceiling: the statements of an order's timeline (one
//! indexed query per outbox, then the handlings and dead letters of its
//! events in every database) run natively with rusqlite on the same files.
use super::Plan;
use crate::report::Row;
use crate::shop::{Backend, Shop};
use crate::stats::Samples;
use anyhow::{Context, ensure};
use futures_util::future::join_all;
use serde_json::Value;
use std::time::Instant;

/// What `mercato serve` runs by default: the shop's plugins and the
/// example coupon rules.
fn plugins() -> Vec<&'static str> {
    mercato::artifacts::EMBEDDED
        .iter()
        .map(|(name, _)| *name)
        .collect()
}

/// The console's files, as `index.html` and its modules load them.
const ASSETS: [&str; 8] = [
    "console.css",
    "console.js",
    "api.js",
    "dom.js",
    "plugins.js",
    "events.js",
    "orders.js",
    "rules.js",
];

/// In flight at once while the orders are made.
const BUYERS: usize = 16;

/// One order in this many is paid (and so shipped).
const PAID_EVERY: usize = 10;

pub async fn run(plan: &Plan) -> anyhow::Result<Vec<Row>> {
    let shop = Shop::start_with(Backend::Sqlite, &plugins()).await?;
    let outcome = measure(&shop, plan).await;
    shop.stop().await?;
    outcome
}

async fn measure(shop: &Shop, plan: &Plan) -> anyhow::Result<Vec<Row>> {
    let n = plan.console_orders;
    shop.seed("CONSOLE", 1_000_000_000).await?;
    let started = Instant::now();
    let mut orders = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(BUYERS) {
        let placed = chunk.iter().map(|i| {
            let buyer = format!("buyer-{}", i % 500);
            async move { shop.gateway.place(&buyer, "CONSOLE").await }
        });
        for id in join_all(placed).await {
            orders.push(id?);
        }
    }
    shop.drain().await?;
    let paid: Vec<&String> = orders.iter().step_by(PAID_EVERY).collect();
    for chunk in paid.chunks(BUYERS) {
        let payments = chunk.iter().map(|order| pay(shop, order));
        for paid in join_all(payments).await {
            paid?;
        }
    }
    shop.drain().await?;
    eprintln!(
        "bench: {n} orders placed, {} paid and shipped, in {:.1} s",
        paid.len(),
        started.elapsed().as_secs_f64()
    );

    let mut pages: Vec<(&str, Samples)> =
        ["shell", "plugins", "events", "orders", "order", "rules"]
            .into_iter()
            .map(|p| (p, Samples::with_capacity(plan.console_rounds)))
            .collect();
    let mut checked = false;
    for round in 0..plan.console_rounds {
        let order = paid[round * 7919 % paid.len()];
        for (page, samples) in &mut pages {
            let began = Instant::now();
            let answers = load(shop, page, order).await?;
            samples.record(began.elapsed());
            if !checked && *page == "order" {
                let timeline = &answers[1];
                ensure!(
                    timeline["entries"].as_array().is_some_and(|e| e.len() >= 7),
                    "a paid order's timeline is its saga: {timeline}"
                );
            }
        }
        checked = true;
    }
    let order = paid[0].clone();
    let dir = shop.data_dir.path().to_owned();
    let rounds = plan.console_rounds;
    let mut native = tokio::task::spawn_blocking(move || ceiling(&dir, &order, rounds)).await??;
    let (t50, t99) = native.p50_p99_ms();

    let scenario = format!("console pages, {n} orders, SQLite");
    let mut rows = Vec::new();
    for (page, mut samples) in pages {
        let (p50, p99) = samples.p50_p99_ms();
        let (r50, r99) = if page == "order" {
            (t50, t99)
        } else {
            (None, None)
        };
        rows.push(
            Row::new(
                10,
                &format!("console.{page}_p50_ms"),
                &scenario,
                &format!("{page} page p50 ms"),
                p50,
            )
            .native(r50),
        );
        rows.push(
            Row::new(
                10,
                &format!("console.{page}_p99_ms"),
                &scenario,
                &format!("{page} page p99 ms"),
                p99,
            )
            .native(r99),
        );
    }
    Ok(rows)
}

/// Pays `order`'s intent with a card that succeeds.
async fn pay(shop: &Shop, order: &str) -> anyhow::Result<()> {
    let intents = shop
        .gateway
        .ok("GET", &format!("/payments/intents?order_id={order}"), None)
        .await?;
    let intent = intents["data"][0]["id"]
        .as_str()
        .with_context(|| format!("no intent for order {order}: {intents}"))?;
    shop.gateway
        .ok(
            "POST",
            &format!("/payments/intents/{intent}/confirm"),
            Some(&serde_json::json!({ "payment_method": "pm_card_ok" })),
        )
        .await?;
    Ok(())
}

/// One page's load: its calls, each checked, their answers in order.
async fn load(shop: &Shop, page: &str, order: &str) -> anyhow::Result<Vec<Value>> {
    let get = |path: String| async move {
        let (status, value) = shop.gateway.call("GET", &path, None).await?;
        ensure!(status.is_success(), "GET {path} answered {status}: {value}");
        Ok::<_, anyhow::Error>(value)
    };
    let all = |paths: Vec<String>| async move {
        join_all(paths.into_iter().map(get))
            .await
            .into_iter()
            .collect::<anyhow::Result<Vec<Value>>>()
    };
    match page {
        // The document, then its stylesheet and modules together.
        "shell" => {
            get("/admin/console".into()).await?;
            all(ASSETS
                .iter()
                .map(|a| format!("/admin/console/assets/{a}"))
                .collect())
            .await
        }
        // The list, then every plugin's versions.
        "plugins" => {
            let plugins = get("/admin/plugins".into()).await?;
            let names: Vec<String> = plugins["plugins"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["name"].as_str())
                .map(|name| format!("/admin/plugins/{name}/versions"))
                .collect();
            all(names).await
        }
        "events" => all(vec!["/admin/events".into(), "/admin/cluster".into()]).await,
        "orders" => all(vec!["/search/orders?limit=20".into()]).await,
        "order" => {
            all(vec![
                format!("/orders/{order}"),
                format!("/admin/orders/{order}/timeline"),
                "/admin/console/config.json".into(),
            ])
            .await
        }
        "rules" => all(vec!["/admin/plugins".into()]).await,
        other => anyhow::bail!("no page {other}"),
    }
}

/// The timeline's statements on the same files, natively, `rounds` times.
fn ceiling(dir: &std::path::Path, order: &str, rounds: usize) -> anyhow::Result<Samples> {
    // Every plugin's database (a coupon rule has none).
    let dbs = plugins()
        .iter()
        .map(|p| dir.join(format!("{p}.db")))
        .filter(|path| path.exists())
        .map(rusqlite::Connection::open)
        .collect::<Result<Vec<_>, _>>()?;
    let mut samples = Samples::with_capacity(rounds);
    for _ in 0..rounds {
        let began = Instant::now();
        let mut ids: Vec<String> = Vec::new();
        for db in &dbs {
            let mut events = db.prepare_cached(
                "SELECT id, sequence, event_type, aggregate_id, created_at, traceparent \
                 FROM outbox_events WHERE correlation_id = ?1 ORDER BY sequence LIMIT 500",
            )?;
            let found = events.query_map([order], |r| r.get::<_, String>(0))?;
            for id in found {
                ids.push(id?);
            }
        }
        let list = vec!["?"; ids.len()].join(", ");
        for db in &dbs {
            for sql in [
                format!(
                    "SELECT event_id, version, handled_at FROM mercato_handled WHERE event_id IN ({list})"
                ),
                format!(
                    "SELECT event_id, error, attempts, failed_at FROM mercato_dead_letters WHERE event_id IN ({list})"
                ),
            ] {
                let mut rows = db.prepare_cached(&sql)?;
                let n = rows
                    .query_map(rusqlite::params_from_iter(&ids), |_| Ok(()))?
                    .count();
                std::hint::black_box(n);
            }
        }
        samples.record(began.elapsed());
        ensure!(
            ids.len() >= 7,
            "the native timeline found {} events",
            ids.len()
        );
    }
    Ok(samples)
}
