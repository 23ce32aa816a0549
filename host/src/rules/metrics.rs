//! Metrics of coupon-rule evaluations, registered in the host's registry.
use super::{Reason, Rule};
use crate::metrics::{UNKNOWN, counter, histogram};
use prometheus::{HistogramVec, IntCounterVec, Registry};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Metrics of coupon-rule evaluations.
///
/// Label values are deployed rule names and versions or fixed codes, never a
/// string a guest or client chose: the methods take a deployed [`Rule`] and
/// `'static` codes, so an unbounded name cannot reach them.
#[derive(Clone)]
pub struct RuleMetrics {
    evaluations: IntCounterVec,
    fuel: HistogramVec,
    seconds: HistogramVec,
    rejections: IntCounterVec,
    config_checks: IntCounterVec,
}

impl RuleMetrics {
    /// Registers the rule metrics in `registry`.
    pub fn new(registry: &Registry) -> Self {
        let metrics = RuleMetrics {
            evaluations: counter(
                registry,
                "mercato_rule_evaluations_total",
                "Coupon-rule evaluations by outcome (ok or a rejection code)",
                &["rule", "version", "outcome"],
            ),
            fuel: histogram(
                registry,
                "mercato_rule_fuel_used",
                "Fuel (about one per wasm instruction) per coupon-rule evaluation",
                &["rule"],
                vec![1e3, 1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8],
            ),
            seconds: histogram(
                registry,
                "mercato_rule_duration_seconds",
                "Coupon-rule evaluation latency, instantiate to answer",
                &["rule"],
                vec![
                    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                    0.01, 0.025, 0.05, 0.1,
                ],
            ),
            rejections: counter(
                registry,
                "mercato_rule_rejections_total",
                "Coupons rejected by a rule or its limits, by reason code",
                &["rule", "reason"],
            ),
            config_checks: counter(
                registry,
                "mercato_rule_config_checks_total",
                "Coupon configs checked by their rule (validate-config or a dry run), by outcome",
                &["rule", "outcome"],
            ),
        };
        // Present from the start, so the series set does not change when the
        // first unknown rule is asked for.
        metrics
            .rejections
            .with_label_values(&[UNKNOWN, Reason::UnknownRule.code()]);
        metrics
            .config_checks
            .with_label_values(&[UNKNOWN, Reason::UnknownRule.code()]);
        metrics
    }

    /// Counts one check of a coupon's config, by a deployed rule or (`None`)
    /// asked of a rule that is not deployed, under [`UNKNOWN`].
    pub fn config_checked(&self, rule: Option<&Rule>, outcome: &'static str) {
        let name = rule.map_or(UNKNOWN, |r| &*r.name);
        self.config_checks.with_label_values(&[name, outcome]).inc();
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

/// Running totals of one rule version, for `GET /admin/plugins`.
#[derive(Default)]
pub struct Stats {
    calls: AtomicU64,
    fuel_total: AtomicU64,
    fuel_max: AtomicU64,
    micros_total: AtomicU64,
    micros_max: AtomicU64,
    rejections: Mutex<BTreeMap<&'static str, u64>>,
}

impl Stats {
    pub(super) fn record(&self, fuel: u64, micros: u64, rejected: Option<&'static str>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.fuel_total.fetch_add(fuel, Ordering::Relaxed);
        self.fuel_max.fetch_max(fuel, Ordering::Relaxed);
        self.micros_total.fetch_add(micros, Ordering::Relaxed);
        self.micros_max.fetch_max(micros, Ordering::Relaxed);
        if let Some(code) = rejected {
            *self
                .rejections
                .lock()
                .expect("stats poisoned")
                .entry(code)
                .or_default() += 1;
        }
    }

    /// The totals as JSON: calls, fuel and µs (mean and max), rejections by reason.
    pub fn to_json(&self) -> serde_json::Value {
        let calls = self.calls.load(Ordering::Relaxed);
        let mean = |total: &AtomicU64| total.load(Ordering::Relaxed).checked_div(calls);
        serde_json::json!({
            "calls": calls,
            "fuel": { "mean": mean(&self.fuel_total), "max": self.fuel_max.load(Ordering::Relaxed) },
            "micros": { "mean": mean(&self.micros_total), "max": self.micros_max.load(Ordering::Relaxed) },
            "rejections": *self.rejections.lock().expect("stats poisoned"),
        })
    }
}
