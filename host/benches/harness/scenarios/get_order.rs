//! (2) `GET /orders/{id}` over loopback through Mercato and through the native
//! axum + sqlx baseline on the same database file, in the same run.
use super::saga::Buyers;
use super::{Plan, sku};
use crate::load::{self, Load, Outcome};
use crate::native::NativeServer;
use crate::report::Row;
use crate::shop::Shop;
use anyhow::ensure;
use serde_json::Value;
use std::sync::Arc;

pub async fn run(shop: &Shop, plan: &Plan) -> anyhow::Result<Vec<Row>> {
    let buyers = Buyers::new(shop)?;
    let mut ids = Vec::with_capacity(plan.orders_to_read);
    for n in 0..plan.orders_to_read {
        ids.push(
            buyers
                .order_to_paid(&format!("reader-{n}"), &sku(n))
                .await?,
        );
    }
    drop(buyers);
    shop.drain().await?;

    let native = NativeServer::start(&shop.data_dir.path().join("orders.db")).await?;
    let result = compare(shop, &native.url, &ids, plan).await;
    native.stop().await?;
    let (mut mercato, mut baseline) = result?;

    let scenario = format!("GET /orders/{{id}}, {} connections", plan.connections);
    let (m50, m99) = mercato.latencies.p50_p99_ms();
    let (n50, n99) = baseline.latencies.p50_p99_ms();
    Ok(vec![
        Row::new(
            2,
            "get_order.req_per_s",
            &scenario,
            "req/s",
            Some(mercato.per_second()),
        )
        .native(Some(baseline.per_second())),
        Row::new(2, "get_order.p50_ms", &scenario, "p50 ms", m50).native(n50),
        Row::new(2, "get_order.p99_ms", &scenario, "p99 ms", m99).native(n99),
    ])
}

/// Checks both servers give the same answer, then loads each in turn.
async fn compare(
    shop: &Shop,
    native_url: &str,
    ids: &[String],
    plan: &Plan,
) -> anyhow::Result<(Outcome, Outcome)> {
    let client = reqwest::Client::new();
    let token = shop.host.admin_token().to_owned();
    for id in ids.iter().take(3) {
        let fetch = |base: String| {
            let client = client.clone();
            let token = token.clone();
            async move {
                client
                    .get(base)
                    .bearer_auth(token)
                    .send()
                    .await?
                    .json::<Value>()
                    .await
            }
        };
        let mercato = fetch(format!("{}/orders/{id}", shop.url)).await?;
        let native = fetch(format!("{native_url}/orders/{id}")).await?;
        ensure!(
            mercato == native,
            "the native baseline answers differently from the orders plugin:\n{mercato}\n{native}"
        );
        ensure!(
            mercato["status"] == "PAID",
            "order {id} is not PAID: {mercato}"
        );
    }
    let load = Load {
        connections: plan.connections,
        warmup: plan.warmup,
        duration: plan.long,
    };
    let urls = |base: &str| {
        Arc::new(
            ids.iter()
                .map(|id| format!("{base}/orders/{id}"))
                .collect::<Vec<_>>(),
        )
    };
    let mercato = load::get(load, urls(&shop.url), Some(shop.host.admin_token())).await?;
    let native = load::get(load, urls(native_url), None).await?;
    Ok((mercato, native))
}
