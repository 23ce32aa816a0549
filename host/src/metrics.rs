//! Prometheus metrics, one registry per host (tests run several hosts at once).
//!
//! Every label value is bounded: `plugin`, `subscriber` and `source` are names
//! of running plugins, `rule` and `version` those of deployed rules, `kind`,
//! `outcome` and `reason` fixed codes, and any other name is counted under
//! [`UNKNOWN`]. A value a guest or client chooses never becomes a label, since
//! each one is a new series kept for the life of the process.
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The host's metrics.
pub struct Metrics {
    registry: Registry,
    /// Plugin calls by plugin, kind (`request`/`event`) and outcome.
    pub calls: IntCounterVec,
    /// Call latency by plugin and kind.
    pub call_seconds: HistogramVec,
    /// Requests to plugin routes by plugin, documented route, method and
    /// status class (`2xx`…`5xx`), answered by the plugin or by the host.
    pub http_requests: IntCounterVec,
    /// Event deliveries by subscriber, source and outcome (`ok`, `retry`, `dead_letter`).
    pub deliveries: IntCounterVec,
    /// Events a stream delivered in one transaction, by subscriber and source.
    pub delivery_batch: HistogramVec,
    /// Calls running right now, by plugin.
    pub in_flight: IntGaugeVec,
    /// Components made ready to run at start, deploy and rollback, by
    /// outcome: `compiled` (by Cranelift) or `cached` (compiled code loaded
    /// from `data_dir/plugins/compiled`).
    pub compilations: IntCounterVec,
    /// Events a subscriber has yet to consume from a source.
    pub outbox_lag: IntGaugeVec,
    /// Seconds the oldest event a subscriber has not consumed has waited.
    pub oldest_unconsumed: prometheus::GaugeVec,
    /// Unpublished events in each plugin's outbox.
    pub outbox_depth: IntGaugeVec,
    /// Expired idempotency records deleted, by plugin.
    pub idempotency_pruned: IntCounterVec,
    /// Outbound HTTP attempts by plugin, destination (the matching
    /// `allowed_hosts` entry, or `denied`) and outcome (`delivered`,
    /// `retrying`, `dead`).
    pub outbound_attempts: IntCounterVec,
    /// Outbound attempt latency by plugin and destination.
    pub outbound_seconds: HistogramVec,
    /// Outbound requests waiting for an attempt or for their report, by plugin.
    pub outbound_pending: IntGaugeVec,
    /// Events replayed into a read model's new copy, by plugin and source.
    pub rebuild_replayed: IntCounterVec,
    /// Events of a source the new copy has yet to replay.
    pub rebuild_lag: IntGaugeVec,
    /// In a cluster: the leases this host holds (streams, schedulers,
    /// sources), set when the metrics are read.
    pub cluster_leases: IntGaugeVec,
}

/// The label value standing for any name that is not a running plugin's or a
/// deployed rule's. Those names start with a letter, so none can be this.
pub const UNKNOWN: &str = "_unknown";

/// `metric`, registered in `registry`.
fn registered<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

/// A counter registered in `registry`.
pub fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

/// A gauge registered in `registry`.
pub fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    registered(
        registry,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

/// A histogram with `buckets`, registered in `registry`.
pub fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets);
    registered(
        registry,
        HistogramVec::new(opts, labels).expect("valid metric"),
    )
}

impl Metrics {
    /// Registers every host metric in a registry of its own.
    pub fn new() -> Self {
        let registry = Registry::new();
        Metrics {
            calls: counter(
                &registry,
                "mercato_plugin_calls_total",
                "Plugin calls by version and outcome: ok; client_error (a 4xx answer); server_error (another non-2xx answer); error (an event handler's error); trap, timeout, out_of_memory, out_of_fuel (the sandbox stopped it)",
                &["plugin", "version", "kind", "outcome"],
            ),
            call_seconds: histogram(
                &registry,
                "mercato_plugin_call_duration_seconds",
                "Plugin call latency, instantiate to return",
                &["plugin", "kind"],
                vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5,
                ],
            ),
            http_requests: counter(
                &registry,
                "mercato_http_requests_total",
                "Requests to plugin routes by documented route template (or `other`), method and status class",
                &["plugin", "route", "method", "status_class"],
            ),
            deliveries: counter(
                &registry,
                "mercato_event_deliveries_total",
                "Event deliveries by outcome (ok, retry, dead_letter; fenced: refused because another host of the cluster took the stream over)",
                &["subscriber", "source", "outcome"],
            ),
            delivery_batch: histogram(
                &registry,
                "mercato_event_delivery_batch_size",
                "Events delivered in one subscriber transaction by a stream that was behind",
                &["subscriber", "source"],
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
            ),
            in_flight: gauge(
                &registry,
                "mercato_plugin_calls_in_flight",
                "Plugin calls running now",
                &["plugin"],
            ),
            compilations: counter(
                &registry,
                "mercato_component_compilations_total",
                "Components made ready to run by outcome: compiled (by Cranelift) or cached (compiled code loaded from the data dir)",
                &["outcome"],
            ),
            outbox_lag: gauge(
                &registry,
                "mercato_outbox_lag",
                "Outbox sequences a subscriber has not yet consumed",
                &["subscriber", "source"],
            ),
            oldest_unconsumed: registered(
                &registry,
                prometheus::GaugeVec::new(
                    Opts::new(
                        "mercato_stream_oldest_unconsumed_age_seconds",
                        "Seconds the oldest event a subscriber has not yet consumed from a source has waited (0 when caught up)",
                    ),
                    &["subscriber", "source"],
                )
                .expect("valid metric"),
            ),
            outbox_depth: gauge(
                &registry,
                "mercato_outbox_depth",
                "Unpublished events in a plugin's outbox",
                &["plugin"],
            ),
            idempotency_pruned: counter(
                &registry,
                "mercato_idempotency_pruned_total",
                "Idempotency records deleted after their retention",
                &["plugin"],
            ),
            outbound_attempts: counter(
                &registry,
                "mercato_outbound_attempts_total",
                "Outbound HTTP attempts by destination and outcome (delivered, retrying, dead)",
                &["plugin", "destination", "outcome"],
            ),
            outbound_seconds: histogram(
                &registry,
                "mercato_outbound_attempt_duration_seconds",
                "Outbound HTTP attempt latency, connect to the end of the answer",
                &["plugin", "destination"],
                vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ],
            ),
            outbound_pending: gauge(
                &registry,
                "mercato_outbound_pending",
                "Outbound requests waiting for an attempt or for their report",
                &["plugin"],
            ),
            rebuild_replayed: counter(
                &registry,
                "mercato_rebuild_replayed_total",
                "Events replayed into a read model's new copy during a rebuild",
                &["plugin", "source"],
            ),
            rebuild_lag: gauge(
                &registry,
                "mercato_rebuild_lag",
                "Events of a source a rebuilding read model's new copy has yet to replay",
                &["plugin", "source"],
            ),
            cluster_leases: gauge(
                &registry,
                "mercato_cluster_leases_held",
                "In a cluster: leases this host holds (a stream, a scheduler or a source's jobs each)",
                &["cluster"],
            ),
            registry,
        }
    }

    /// The registry, for capabilities that register metrics of their own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records one finished call.
    pub fn call(&self, plugin: &str, version: &str, kind: &str, outcome: &str, seconds: f64) {
        self.calls
            .with_label_values(&[plugin, version, kind, outcome])
            .inc();
        self.call_seconds
            .with_label_values(&[plugin, kind])
            .observe(seconds);
    }

    /// Counts a call as running until the returned guard drops.
    pub fn start_call(&self, plugin: &str) -> InFlight {
        let gauge = self.in_flight.with_label_values(&[plugin]);
        gauge.inc();
        InFlight(gauge)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Decrements the in-flight gauge when dropped.
pub struct InFlight(prometheus::IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
