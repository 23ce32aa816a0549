//! What `mercato` writes to its log: lines for a terminal, or one JSON object
//! per line for a log pipeline (`--log-format json`). Every request runs in
//! a `request` span carrying its `x-request-id` (`http::app`), so each line
//! logged while serving it names the request, in either format.
use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// The log's format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, the spans as a `request{…}:` prefix.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, the
    /// event's fields (`message` among them) at the top level, and `spans`,
    /// the enclosing spans' names and fields from the outermost in.
    Json,
}

/// Levels when `RUST_LOG` says nothing: the host at `info`; the libraries'
/// per-request and per-statement chatter only when it is a warning.
const DEFAULT_FILTER: &str = "info,tower_http=warn,sqlx=warn,wasmtime=warn,cranelift=warn";

/// Installs the process's log subscriber (on stdout); `RUST_LOG` filters it.
/// Called once, by `main`, before anything logs.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_FILTER.into());
    let log = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => log.init(),
        LogFormat::Json => log
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .init(),
    }
}
