//! Command-line options. `cargo bench` starts the harness with `--bench`;
//! `cargo test` starts it without, and then it runs as a quick smoke: tiny
//! durations, nothing written, any scenario error fails the run.
use anyhow::{Context, bail};
use std::path::PathBuf;

/// The scenarios, in the order they run.
pub const SCENARIOS: &[&str] = &[
    "overhead",
    "get-order",
    "saga",
    "relay",
    "flash-sale",
    "memory",
    "search",
    "restart",
    "console",
    "cluster",
];

/// Scenarios the `cargo test` smoke leaves out unless its filter names them:
/// `cluster` starts `mercato serve` processes, whose first start compiles
/// every component in the debug build (see `scenarios/cluster.rs`).
pub const ON_REQUEST_IN_SMOKE: &[&str] = &["cluster"];

pub const USAGE: &str = "\
usage: cargo bench -p mercato --bench harness -- [options]

  --quick           tiny durations, the Rust rule instead of the Python one in `restart`,
                    clusters of 1 and 2 hosts (not 3) in `cluster` (what `cargo test` runs);
                    writes nothing unless --out/--json
  --only <list>     run only these scenarios (comma-separated): overhead, get-order, saga,
                    relay, flash-sale, memory, search, restart, console, cluster (needs PostgreSQL
                    and NATS with JetStream; `cargo test` runs it only when named)
  --label <text>    tag this run (a column header in the table, a field in the JSON)
  --out <path>      the markdown report (default docs/benchmarks.md; none in quick mode)
  --json <path>     the results as JSON (default target/bench-results[-<label>].json;
                    none in quick mode)
  --help            this text";

#[derive(Debug, Clone)]
pub struct Options {
    /// Tiny durations and small counts.
    pub quick: bool,
    /// Started by `cargo test`: quick, and PostgreSQL is required.
    pub smoke: bool,
    pub only: Vec<String>,
    pub label: Option<String>,
    pub out: Option<PathBuf>,
    pub json: Option<PathBuf>,
}

/// What the process should do.
pub enum Command {
    Run(Options),
    /// `--list` from a test runner: this binary has no libtest-style tests to list.
    List,
    /// A test-name filter matched no scenario.
    Skip,
    Help,
}

impl Options {
    pub fn runs(&self, scenario: &str) -> bool {
        if self.only.is_empty() {
            !(self.smoke && ON_REQUEST_IN_SMOKE.contains(&scenario))
        } else {
            self.only.iter().any(|s| s == scenario)
        }
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Command> {
    let args: Vec<String> = args.into_iter().collect();
    let bench = args.iter().any(|a| a == "--bench");
    if !bench {
        return Ok(smoke(&args));
    }
    let mut options = Options {
        quick: false,
        smoke: false,
        only: Vec::new(),
        label: None,
        out: None,
        json: None,
    };
    let (mut out, mut json) = (None, None);
    let mut args = args.into_iter().filter(|a| a != "--bench");
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--only" => options.only = scenario_list(&value()?)?,
            "--label" => options.label = Some(value()?),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--json" => json = Some(PathBuf::from(value()?)),
            "--help" | "-h" => return Ok(Command::Help),
            other => bail!("unknown argument `{other}`\n\n{USAGE}"),
        }
    }
    let root = workspace_root();
    options.out = out.or_else(|| (!options.quick).then(|| root.join("docs/benchmarks.md")));
    options.json = json.or_else(|| {
        (!options.quick).then(|| {
            let name = match &options.label {
                Some(label) => format!("bench-results-{}.json", file_safe(label)),
                None => "bench-results.json".into(),
            };
            root.join("target").join(name)
        })
    });
    Ok(Command::Run(options))
}

/// Under `cargo test`: libtest flags are ignored; a name filter that matches no
/// scenario (`cargo test -p mercato some_test`) runs nothing, as libtest would.
fn smoke(args: &[String]) -> Command {
    if args.iter().any(|a| a == "--list") {
        return Command::List;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let only: Vec<String> = SCENARIOS
        .iter()
        .filter(|s| filters.iter().any(|f| s.contains(f.as_str())))
        .map(|s| s.to_string())
        .collect();
    if !filters.is_empty() && only.is_empty() {
        return Command::Skip;
    }
    Command::Run(Options {
        quick: true,
        smoke: true,
        only,
        label: None,
        out: None,
        json: None,
    })
}

fn scenario_list(text: &str) -> anyhow::Result<Vec<String>> {
    text.split(',')
        .map(str::trim)
        .map(|s| {
            if SCENARIOS.contains(&s) {
                Ok(s.to_owned())
            } else {
                bail!("unknown scenario `{s}` (one of: {})", SCENARIOS.join(", "))
            }
        })
        .collect()
}

fn file_safe(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The workspace root: `host/`'s parent (cargo runs benches in the package dir).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}
