//! The benchmark harness: `cargo bench -p mercato --bench harness` runs the nine
//! scenarios of the benchmark issues against an in-process host (the cluster
//! scenario against `mercato serve --cluster` processes), prints a markdown
//! table and writes `docs/benchmarks.md` plus a JSON of the figures.
//! Under `cargo test` (started without `--bench`) it runs the same scenarios
//! (`cluster` only when the filter names it: `cargo test -p mercato --bench
//! harness cluster`) with tiny durations as a smoke test: it asserts nothing
//! about speed, but any scenario error (an order that never reaches PAID, an
//! oversold flash sale, an unreachable PostgreSQL) fails it.
mod calls;
mod ceiling;
mod load;
mod machine;
mod native;
mod options;
mod outbox;
mod report;
mod scenarios;
mod shop;
mod stats;

use options::Command;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let options = match options::parse(std::env::args().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::List | Command::Skip) => return ExitCode::SUCCESS,
        Ok(Command::Help) => {
            println!("{}", options::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("harness: {e:#}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("harness: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &options::Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let rows = runtime.block_on(scenarios::run(options))?;
    let report = report::Report::new(
        options.label.clone(),
        options.quick,
        rows,
        started.elapsed(),
    );
    println!("{}", report.table());
    if let Some(path) = &options.out {
        report.write_markdown(path)?;
        eprintln!("bench: wrote {}", path.display());
    }
    if let Some(path) = &options.json {
        report.write_json(path)?;
        eprintln!("bench: wrote {}", path.display());
    }
    if options.smoke {
        // The closing line CI reads: one per scenario that ran (a failure exits early).
        let ran = options::SCENARIOS
            .iter()
            .filter(|s| options.runs(s))
            .count();
        println!("smoke: {ran} passed, 0 failed");
    }
    eprintln!("bench: done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
