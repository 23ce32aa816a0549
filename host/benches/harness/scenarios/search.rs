//! (7) Full-text search: `GET /search/products?q=…` over 10,000 products
//! (the search read model on SQLite, loopback HTTP, closed loop), beside the
//! ceiling of the same database: the two statements the plugin runs for such
//! a query (the match with its page's ids and facet counts, then the page's
//! rows), run natively with rusqlite on the same file in the same run.
use super::Plan;
use crate::load::{self, Load};
use crate::report::Row;
use crate::shop::{Backend, Shop};
use crate::stats::Samples;
use anyhow::ensure;
use futures_util::future::join_all;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

/// Words product names are made of; queries use them whole and as prefixes.
const WORDS: [&str; 24] = [
    "cotton",
    "linen",
    "wool",
    "denim",
    "silk",
    "canvas",
    "classic",
    "vintage",
    "organic",
    "slim",
    "oversized",
    "striped",
    "tee",
    "shirt",
    "hoodie",
    "jacket",
    "mug",
    "cap",
    "poster",
    "socks",
    "scarf",
    "bag",
    "apron",
    "blanket",
];
const COLORS: [&str; 6] = ["red", "blue", "green", "black", "white", "grey"];
const QUERIES: [&str; 8] = [
    "tee",
    "cott",
    "vintage mug",
    "wool scarf",
    "silk",
    "den",
    "classic",
    "organic cap",
];

pub async fn run(plan: &Plan) -> anyhow::Result<Vec<Row>> {
    let shop = Shop::start_with(Backend::Sqlite, &["products", "inventory", "search"]).await?;
    let outcome = measure(&shop, plan).await;
    shop.stop().await?;
    outcome
}

async fn measure(shop: &Shop, plan: &Plan) -> anyhow::Result<Vec<Row>> {
    let n = plan.search_products;
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let posts = chunk.iter().map(|i| {
            let i = *i;
            let name = format!(
                "{} {} {}",
                WORDS[i % 24],
                WORDS[(i / 24 + 7) % 24],
                WORDS[(i / 576 + 13) % 24]
            );
            let body = json!({ "sku": format!("S-{i:05}"), "name": name, "price_minor": 500 + (i % 97) * 25,
                "currency": "EUR", "seller_id": format!("seller-{}", i % 3), "attributes": { "color": COLORS[i % 6] } });
            async move { shop.gateway.ok("POST", "/products", Some(&body)).await }
        });
        for posted in join_all(posts).await {
            posted?;
        }
    }
    shop.drain().await?;
    eprintln!(
        "bench: {n} products published and indexed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let first = shop
        .gateway
        .ok("GET", "/search/products?q=tee", None)
        .await?;
    ensure!(
        first["data"].as_array().is_some_and(|d| !d.is_empty()),
        "a search found nothing: {first}"
    );

    let urls: Vec<String> = QUERIES
        .iter()
        .map(|q| format!("{}/search/products?q={}", shop.url, q.replace(' ', "+")))
        .collect();
    // One shopper at a time: the latency a search costs, beside the native
    // ceiling (also one connection). Then every connection of the plan at
    // once: the throughput, and latency with queueing on this machine's cores.
    let single = Load {
        connections: 1,
        warmup: plan.warmup,
        duration: plan.long,
    };
    let urls = Arc::new(urls);
    let mut alone = load::get(single, urls.clone(), None).await?;
    let load = Load {
        connections: plan.connections,
        warmup: plan.warmup,
        duration: plan.long,
    };
    let mut busy = load::get(load, urls, None).await?;
    let path = shop.data_dir.path().join("search.db");
    let mut native = tokio::task::spawn_blocking(move || ceiling(&path, single)).await??;

    let one = format!("search over {n} products, 1 connection");
    let many = format!("search over {n} products, {} connections", plan.connections);
    let (a50, a99) = alone.latencies.p50_p99_ms();
    let (b50, b99) = busy.latencies.p50_p99_ms();
    let (n50, n99) = native.p50_p99_ms();
    Ok(vec![
        Row::new(7, "search.alone_p50_ms", &one, "p50 ms", a50).native(n50),
        Row::new(7, "search.alone_p99_ms", &one, "p99 ms", a99).native(n99),
        Row::new(
            7,
            "search.req_per_s",
            &many,
            "req/s",
            Some(busy.per_second()),
        ),
        Row::new(7, "search.p50_ms", &many, "p50 ms", b50),
        Row::new(7, "search.p99_ms", &many, "p99 ms", b99),
    ])
}

/// The same statements on the same file, one connection, back to back.
fn ceiling(path: &std::path::Path, load: Load) -> anyhow::Result<Samples> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut samples = Samples::with_capacity(64 * 1024);
    let run = |conn: &rusqlite::Connection, query: &str| -> anyhow::Result<()> {
        // As `plugins/search/src/store/matching.rs` writes them: one grouped
        // range scan of the word index per word, joined on the product.
        let words: Vec<String> = query.split(' ').map(str::to_owned).collect();
        let mut params: Vec<String> = Vec::new();
        let mut from = String::new();
        let mut levels = Vec::new();
        for (i, w) in words.iter().enumerate() {
            let mut upper = w.clone();
            let last = upper.pop().expect("a word");
            upper.push(char::from_u32(last as u32 + 1).expect("a next character"));
            params.push(w.clone());
            params.push(upper);
            let (lo, hi) = (params.len() - 1, params.len());
            let scan = format!(
                "(SELECT t.product_id, MIN(CASE WHEN t.field <> 'name' THEN 2 WHEN t.term = ?{lo} THEN 0 ELSE 1 END) AS lvl \
                 FROM product_search_terms t WHERE t.term >= ?{lo} AND t.term < ?{hi} GROUP BY t.product_id) w{i}"
            );
            if i == 0 {
                from = scan;
            } else {
                from.push_str(&format!(" JOIN {scan} ON w{i}.product_id = w0.product_id"));
            }
            levels.push(format!("w{i}.lvl"));
        }
        from.push_str(" JOIN product_search_view p ON p.product_id = w0.product_id");
        params.push(words.join(" "));
        let key = params.len();
        let all = |lvl: u8| {
            levels
                .iter()
                .map(|l| format!("{l} <= {lvl}"))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        let tier = format!(
            "CASE WHEN p.name_key = ?{key} THEN 0 WHEN {} THEN 1 WHEN {} THEN 2 ELSE 3 END",
            all(0),
            all(1)
        );
        let statement = format!(
            "WITH r AS (SELECT p.product_id, p.created_at, p.price_minor, p.seller_id, p.in_stock, {tier} AS tier FROM {from}) \
             SELECT 'page', pg.product_id, '', ROW_NUMBER() OVER (ORDER BY pg.tier ASC, pg.created_at DESC, pg.product_id DESC) AS n \
               FROM (SELECT * FROM r ORDER BY r.tier ASC, r.created_at DESC, r.product_id DESC LIMIT 21) pg \
             UNION ALL SELECT 'seller_id', r.seller_id, '', COUNT(*) FROM r GROUP BY r.seller_id \
             UNION ALL SELECT 'in_stock', CAST(r.in_stock AS TEXT), '', COUNT(*) FROM r GROUP BY r.in_stock \
             UNION ALL SELECT 'attribute', a.name, a.value, COUNT(*) FROM product_search_attributes a \
               WHERE a.product_id IN (SELECT r.product_id FROM r) GROUP BY a.name, a.value"
        );
        let mut page: Vec<String> = Vec::new();
        let mut stmt = conn.prepare_cached(&statement)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        while let Some(row) = rows.next()? {
            if row.get::<_, String>(0)? == "page" {
                page.push(row.get(1)?);
            }
        }
        if !page.is_empty() {
            let marks: Vec<String> = (1..=page.len()).map(|i| format!("?{i}")).collect();
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT * FROM product_search_view WHERE product_id IN ({})",
                marks.join(", ")
            ))?;
            let rows = stmt.query_map(rusqlite::params_from_iter(page.iter()), |_| Ok(()))?;
            for row in rows {
                row?;
            }
        }
        Ok(())
    };
    let deadline = Instant::now() + load.warmup + load.duration;
    let measure_from = Instant::now() + load.warmup;
    let mut i = 0;
    while Instant::now() < deadline {
        let query = QUERIES[i % QUERIES.len()];
        i += 1;
        let started = Instant::now();
        run(&conn, query)?;
        if started >= measure_from {
            samples.record(started.elapsed());
        }
    }
    Ok(samples)
}
