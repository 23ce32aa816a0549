//! (1) What the host adds to one call: the no-op plugin through the unit of
//! work, through the sandbox alone, and the same empty transaction natively.
use super::Plan;
use crate::calls::{NativeTx, host_call, noop_plugin, sandbox_call};
use crate::report::Row;
use crate::shop::Shop;
use crate::stats::Samples;
use std::time::Instant;

const SCENARIO: &str = "no-op plugin call (instantiate + call + empty write tx)";

pub async fn run(shop: &Shop, plan: &Plan) -> anyhow::Result<Vec<Row>> {
    let host = &shop.host;
    let plugin = noop_plugin(host)?;
    let mut mercato = timed(plan, async || host_call(host, &plugin).await).await?;
    let mut sandbox = timed(plan, async || sandbox_call(host, &plugin).await).await?;
    let native_tx = NativeTx::open(&shop.data_dir.path().join("native-noop.db"))?;
    let mut native = timed(plan, async || native_tx.begin_commit()).await?;

    let (m50, m99) = mercato.p50_p99_us();
    let (s50, s99) = sandbox.p50_p99_us();
    let (n50, n99) = native.p50_p99_us();
    Ok(vec![
        Row::new(1, "overhead.p50_us", SCENARIO, "p50 µs", m50).native(n50),
        Row::new(1, "overhead.p99_us", SCENARIO, "p99 µs", m99).native(n99),
        Row::new(
            1,
            "overhead.sandbox_p50_us",
            SCENARIO,
            "of which instance + call, no tx: p50 µs",
            s50,
        ),
        Row::new(
            1,
            "overhead.sandbox_p99_us",
            SCENARIO,
            "of which instance + call, no tx: p99 µs",
            s99,
        ),
    ])
}

/// Calls `op` back to back: untimed for the warm-up, then each call timed.
async fn timed(
    plan: &Plan,
    mut op: impl AsyncFnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Samples> {
    let until = Instant::now() + plan.warmup;
    while Instant::now() < until {
        op().await?;
    }
    let mut samples = Samples::with_capacity(1 << 20);
    let until = Instant::now() + plan.short;
    while Instant::now() < until {
        let started = Instant::now();
        op().await?;
        samples.record(started.elapsed());
    }
    Ok(samples)
}
