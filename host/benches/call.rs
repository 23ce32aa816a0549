//! Criterion figures for one plugin call: the no-op plugin through the host's
//! unit of work, through the sandbox alone, and the same empty write
//! transaction on a native SQLite connection. (The harness reports the same
//! three with p50 / p99; criterion gives means with confidence intervals.)
//! Under `cargo test` criterion runs each once.
#[path = "harness/calls.rs"]
mod calls;

use criterion::{Criterion, criterion_group, criterion_main};
use mercato::app::App;
use mercato::deploy::Component;
use std::path::Path;

/// A host running only the `noop` plugin, on `data_dir`.
async fn noop_host(data_dir: &Path) -> anyhow::Result<App> {
    let config = mercato::config::Config {
        data_dir: data_dir.to_owned(),
        ..Default::default()
    };
    let component = Component {
        origin: "benchmark plugin noop".into(),
        name: Some("noop".into()),
        bytes: std::fs::read(mercato_test_artifacts::path("noop"))?,
    };
    Ok(App::start(config, vec![component]).await?)
}

fn plugin_call(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let host = runtime
        .block_on(noop_host(dir.path()))
        .expect("host with the noop plugin starts");
    let plugin = calls::noop_plugin(&host).expect("noop plugin");
    let native = calls::NativeTx::open(&dir.path().join("native.db")).expect("native database");

    let mut group = c.benchmark_group("plugin_call");
    group.bench_function("host_unit_of_work", |b| {
        b.to_async(&runtime).iter(|| async {
            calls::host_call(&host, &plugin).await.expect("noop call");
        })
    });
    group.bench_function("sandbox_only", |b| {
        b.to_async(&runtime).iter(|| async {
            calls::sandbox_call(&host, &plugin)
                .await
                .expect("noop call");
        })
    });
    group.bench_function("native_begin_commit", |b| {
        b.iter(|| native.begin_commit().expect("native transaction"))
    });
    group.finish();
    runtime.block_on(host.shutdown());
}

criterion_group!(benches, plugin_call);
criterion_main!(benches);
