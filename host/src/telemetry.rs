//! What `mercato` writes to its log — lines for a terminal, or one JSON
//! object per line for a log pipeline (`--log-format json`) — and the traces
//! it exports over OTLP when the standard `OTEL_*` variables ask for them.
//!
//! Every request runs in a `request` span and every plugin call in a
//! `plugin.call` span, both carrying `trace_id` (`crate::trace`), so each
//! line logged while serving a request or handling an event names its trace,
//! in either format.
//!
//! Export is off unless `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (or `OTEL_TRACES_EXPORTER=otlp`),
//! and `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turns it off.
//! When off, no OpenTelemetry layer is installed: spans cost what the log
//! already paid. `MERCATO_TRACE_STORAGE=true` adds a child span per guest
//! SQL statement.
use clap::ValueEnum;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::time::Duration;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Layer};

/// The log's format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, the spans as a `request{…}:` prefix.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, the
    /// event's fields (`message` among them) at the top level, and `spans`,
    /// the enclosing spans' names and fields (`trace_id` among them) from
    /// the outermost in.
    Json,
}

/// Levels when `RUST_LOG` says nothing: the host at `info`; the libraries'
/// per-request and per-statement chatter only when it is a warning.
const DEFAULT_FILTER: &str = "info,tower_http=warn,sqlx=warn,wasmtime=warn,cranelift=warn";

/// Longest an export may take, answer included (as OTLP's default).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The process's telemetry; [`Telemetry::shutdown`] flushes the spans not yet
/// exported.
#[must_use = "shut it down before exit, or the last spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is buffered and stops the exporter. Blocks (up to the
    /// export timeout), so it runs off the async workers.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = flushed {
                eprintln!("mercato: flushing traces failed: {e}");
            }
        }
    }
}

/// Installs the process's log subscriber (on stdout; `RUST_LOG` filters it)
/// and, when configured, the OTLP trace exporter. Called once, by `main`,
/// inside the tokio runtime, before anything logs.
pub fn init(format: LogFormat) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_FILTER.into());
    let log = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .boxed(),
    }
    .with_filter(filter);
    let (provider, problem) = match exporter_wanted() {
        false => (None, None),
        true => match provider() {
            Ok(provider) => (Some(provider), None),
            Err(e) => (None, Some(e)),
        },
    };
    let spans = provider.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider as _;
        // Only the host's own spans: `request`, `plugin.call` and, when
        // asked, `storage.statement` (debug).
        let level = if env_true("MERCATO_TRACE_STORAGE") {
            LevelFilter::DEBUG
        } else {
            LevelFilter::INFO
        };
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("mercato"))
            .with_filter(Targets::new().with_target("mercato", level))
    });
    tracing_subscriber::registry().with(log).with(spans).init();
    if provider.is_some() {
        crate::trace::set_exporting();
        tracing::info!("exporting traces over OTLP");
    }
    if let Some(problem) = problem {
        tracing::error!(error = %problem, "the OTLP trace exporter could not be built; traces are not exported");
    }
    Telemetry { provider }
}

fn env_true(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// Whether the `OTEL_*` variables ask for OTLP trace export.
fn exporter_wanted() -> bool {
    if env_true("OTEL_SDK_DISABLED") {
        return false;
    }
    match std::env::var("OTEL_TRACES_EXPORTER") {
        Ok(exporter) if !exporter.trim().is_empty() => exporter.trim() == "otlp",
        _ => {
            env_set("OTEL_EXPORTER_OTLP_ENDPOINT") || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        }
    }
}

/// The tracer provider: a batch processor (its own thread, `OTEL_BSP_*`)
/// feeding the OTLP/HTTP exporter (endpoint, headers, protocol and timeout
/// from `OTEL_EXPORTER_OTLP_*`), the service named by `OTEL_SERVICE_NAME`
/// (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`), else `mercato`.
fn provider() -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::WithHttpConfig;
    let client = TokioClient {
        runtime: tokio::runtime::Handle::current(),
        client: reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default(),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .build()?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    let named_in_attributes = std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| {
        a.split(',')
            .any(|kv| kv.trim().starts_with("service.name="))
    });
    if !env_set("OTEL_SERVICE_NAME") && !named_in_attributes {
        resource = resource.with_service_name("mercato");
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// The exporter's HTTP client. The batch processor exports from a thread of
/// its own, outside the runtime, so each request is handed to the runtime
/// (the host's reqwest client needs it) and awaited from there.
#[derive(Debug)]
struct TokioClient {
    runtime: tokio::runtime::Handle,
    client: reqwest::Client,
}

/// The collector's answer is read only this far: it is an acknowledgement.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[async_trait::async_trait]
impl HttpClient for TokioClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let request = reqwest::Request::try_from(request)?;
            let mut response = client.execute(request).await?;
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            let mut answer = Response::builder()
                .status(response.status().as_u16())
                .body(Bytes::from(body))?;
            for (name, value) in response.headers() {
                answer.headers_mut().append(name.clone(), value.clone());
            }
            Ok::<_, HttpError>(answer)
        });
        sent.await?
    }
}
