//! Prometheus metrics, one registry per host (tests run several hosts at once).
//!
//! Every label value is bounded: `plugin`, `subscriber` and `source` are names
//! of running plugins, `rule` and `version` those of deployed rules, `kind`,
//! `outcome` and `reason` fixed codes, and any other name is counted under
//! [`UNKNOWN`]. A value a guest or client chooses never becomes a label, since
//! each one is a new series kept for the life of the process.
use crate::rules::{Reason, Rule};
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
    /// Event deliveries by subscriber, source and outcome (`ok`, `retry`, `dead_letter`).
    pub deliveries: IntCounterVec,
    /// Calls running right now, by plugin.
    pub in_flight: IntGaugeVec,
    /// Events a subscriber has yet to consume from a source.
    pub outbox_lag: IntGaugeVec,
    /// Unpublished events in each plugin's outbox.
    pub outbox_depth: IntGaugeVec,
    /// Expired idempotency records deleted, by plugin.
    pub idempotency_pruned: IntCounterVec,
    /// Coupon-rule evaluations.
    pub rules: RuleMetrics,
}

/// The label value standing for any name that is not a running plugin's or a
/// deployed rule's. Those names start with a letter, so none can be this.
pub const UNKNOWN: &str = "_unknown";

/// Metrics of coupon-rule evaluations (handles shared with the host's registry).
///
/// Label values are deployed rule names and versions or fixed codes, never a
/// string a guest or client chose: the methods take a deployed [`Rule`] and
/// `'static` codes, so an unbounded name cannot reach them.
#[derive(Clone)]
pub struct RuleMetrics {
    /// Evaluations by rule, version and outcome (`ok` or a rejection code).
    pub evaluations: IntCounterVec,
    /// Fuel per evaluation, by rule.
    pub fuel: HistogramVec,
    /// Evaluation latency, by rule.
    pub seconds: HistogramVec,
    /// Rejections by rule and reason code.
    pub rejections: IntCounterVec,
}

impl RuleMetrics {
    fn new() -> Self {
        let metrics = RuleMetrics {
            evaluations: IntCounterVec::new(
                Opts::new(
                    "mercato_rule_evaluations_total",
                    "Coupon-rule evaluations by outcome (ok or a rejection code)",
                ),
                &["rule", "version", "outcome"],
            )
            .expect("valid metric"),
            fuel: HistogramVec::new(
                HistogramOpts::new(
                    "mercato_rule_fuel_used",
                    "Fuel (about one per wasm instruction) per coupon-rule evaluation",
                )
                .buckets(vec![1e3, 1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8]),
                &["rule"],
            )
            .expect("valid metric"),
            seconds: HistogramVec::new(
                HistogramOpts::new(
                    "mercato_rule_duration_seconds",
                    "Coupon-rule evaluation latency, instantiate to answer",
                )
                .buckets(vec![
                    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                    0.01, 0.025, 0.05, 0.1,
                ]),
                &["rule"],
            )
            .expect("valid metric"),
            rejections: IntCounterVec::new(
                Opts::new(
                    "mercato_rule_rejections_total",
                    "Coupons rejected by a rule or its limits, by reason code",
                ),
                &["rule", "reason"],
            )
            .expect("valid metric"),
        };
        // Present from the start, so the series set does not change when the
        // first unknown rule is asked for.
        metrics
            .rejections
            .with_label_values(&[UNKNOWN, Reason::UnknownRule.code()]);
        metrics
    }

    /// Records one evaluation of a deployed rule.
    pub fn evaluated(&self, rule: &Rule, outcome: &'static str, fuel: u64, micros: u64) {
        self.evaluations
            .with_label_values(&[&*rule.name, &rule.version, outcome])
            .inc();
        self.fuel
            .with_label_values(&[&rule.name])
            .observe(fuel as f64);
        self.seconds
            .with_label_values(&[&rule.name])
            .observe(micros as f64 / 1e6);
    }

    /// Counts one rejection by a deployed rule.
    pub fn rejected(&self, rule: &Rule, reason: &'static str) {
        self.rejections
            .with_label_values(&[&rule.name, reason])
            .inc();
    }

    /// Counts an evaluation asked of a rule that is not deployed. The name
    /// comes from coupon data, so it is never a label value: every such
    /// rejection shares the label [`UNKNOWN`].
    pub fn unknown_rule(&self) {
        self.rejections
            .with_label_values(&[UNKNOWN, Reason::UnknownRule.code()])
            .inc();
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let calls = IntCounterVec::new(
            Opts::new(
                "mercato_plugin_calls_total",
                "Plugin calls by outcome (ok, error, trap, timeout, out_of_memory, out_of_fuel)",
            ),
            &["plugin", "kind", "outcome"],
        )
        .expect("valid metric");
        let call_seconds = HistogramVec::new(
            HistogramOpts::new(
                "mercato_plugin_call_duration_seconds",
                "Plugin call latency, instantiate to return",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ]),
            &["plugin", "kind"],
        )
        .expect("valid metric");
        let deliveries = IntCounterVec::new(
            Opts::new(
                "mercato_event_deliveries_total",
                "Event deliveries by outcome (ok, retry, dead_letter)",
            ),
            &["subscriber", "source", "outcome"],
        )
        .expect("valid metric");
        let in_flight = IntGaugeVec::new(
            Opts::new("mercato_plugin_calls_in_flight", "Plugin calls running now"),
            &["plugin"],
        )
        .expect("valid metric");
        let outbox_lag = IntGaugeVec::new(
            Opts::new(
                "mercato_outbox_lag",
                "Outbox sequences a subscriber has not yet consumed",
            ),
            &["subscriber", "source"],
        )
        .expect("valid metric");
        let outbox_depth = IntGaugeVec::new(
            Opts::new(
                "mercato_outbox_depth",
                "Unpublished events in a plugin's outbox",
            ),
            &["plugin"],
        )
        .expect("valid metric");
        let idempotency_pruned = IntCounterVec::new(
            Opts::new(
                "mercato_idempotency_pruned_total",
                "Idempotency records deleted after their retention",
            ),
            &["plugin"],
        )
        .expect("valid metric");
        let rules = RuleMetrics::new();
        for c in [
            Box::new(rules.evaluations.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(rules.fuel.clone()),
            Box::new(rules.seconds.clone()),
            Box::new(rules.rejections.clone()),
            Box::new(calls.clone()),
            Box::new(call_seconds.clone()),
            Box::new(deliveries.clone()),
            Box::new(in_flight.clone()),
            Box::new(outbox_lag.clone()),
            Box::new(outbox_depth.clone()),
            Box::new(idempotency_pruned.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Metrics {
            registry,
            calls,
            call_seconds,
            deliveries,
            in_flight,
            outbox_lag,
            outbox_depth,
            idempotency_pruned,
            rules,
        }
    }

    /// Records one finished call.
    pub fn call(&self, plugin: &str, kind: &str, outcome: &str, seconds: f64) {
        self.calls.with_label_values(&[plugin, kind, outcome]).inc();
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
