//! Third-party coupon rules (ARCHITECTURE §9): components of the world
//! `coupon-rule` that price a cart and can never hurt the shop.
//!
//! A rule sees only the cart and the coupon's config. Each evaluation runs in a
//! store of its own (never the calling plugin's), on a fresh instance, under
//! the rule's limits: fuel, memory, a deadline, and size caps on what goes in
//! and comes out. Any breach rejects that one coupon with a reason that names
//! the limit; the calling plugin carries on. Rules deploy, version, roll back
//! and sign like domain plugins (`deploy`), and share their name space.
//!
//! A coupon's config is checked when the coupon is created or its config
//! changed ([`Rules::validate`]): by the rule's optional `validate-config`
//! export, else by a dry run of `evaluate` on a sample cart. Either runs under
//! the same limits as an evaluation.
mod guest;
mod metrics;
mod validate;
mod world;

pub use guest::RulesCall;
pub use metrics::{RuleMetrics, Stats};
pub use world::{RuleInstance, RulePre, RuleWorld};

use crate::bindings::{Adjustment, Cart, CartLine};
use crate::runtime::{Call, CallError, CallFuture, Compiled, Limits, Queue, Sandbox};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use wasmtime::Store;

/// The `[rules]` configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Default limits of every rule; `[plugins.<rule>.limits]` overrides them per rule.
    pub limits: Limits,
    /// Largest input (config plus cart), in bytes.
    pub max_input_bytes: usize,
    /// Largest answer (adjustment or decline message), in bytes.
    pub max_output_bytes: usize,
    /// Evaluations running at once (pool slots reserved for rules).
    pub max_instances: u32,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            // Shopify Functions' budget: 11M instructions; a few MiB of memory.
            limits: Limits {
                memory_mib: 16,
                deadline_ms: 100,
                fuel: Some(11_000_000),
                ..Limits::default()
            },
            max_input_bytes: 64 * 1024,
            max_output_bytes: 20 * 1024,
            max_instances: 64,
        }
    }
}

/// Why a rule did not price a cart. Each rejects one coupon, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// No rule of that name is deployed.
    #[error("no rule of that name is deployed")]
    UnknownRule,
    /// Config plus cart are over the input cap.
    #[error("its input is {size} bytes, over the {limit}-byte input limit")]
    InputTooLarge {
        /// Measured size.
        size: usize,
        /// The cap.
        limit: usize,
    },
    /// The rule itself said no.
    #[error("declined: {0}")]
    Declined(String),
    /// The rule's `validate-config` refused the coupon's config.
    #[error("refused the config: {0}")]
    InvalidConfig(String),
    /// The fuel ran out.
    #[error("ran out of fuel (limit {0} instructions)")]
    OutOfFuel(u64),
    /// It tried to grow memory past its limit.
    #[error("exceeded its memory limit of {0} MiB")]
    OutOfMemory(u64),
    /// The deadline passed.
    #[error("missed its {0} ms deadline")]
    Deadline(u64),
    /// It trapped (a panic, an unreachable, a bad memory access…).
    #[error("trapped: {0}")]
    Trap(String),
    /// Its answer is over the output cap.
    #[error("its output is {size} bytes, over the {limit}-byte output limit")]
    OutputTooLarge {
        /// Measured size.
        size: usize,
        /// The cap.
        limit: usize,
    },
    /// Its adjustment does not fit the cart.
    #[error("returned an invalid adjustment: {0}")]
    InvalidOutput(String),
    /// No evaluation slot freed up within the deadline.
    #[error("no evaluation slot freed up within {0} ms")]
    Busy(u64),
}

impl Reason {
    /// Stable code, used in events and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::UnknownRule => "unknown_rule",
            Reason::InputTooLarge { .. } => "input_too_large",
            Reason::Declined(_) => "declined",
            Reason::InvalidConfig(_) => "invalid_config",
            Reason::OutOfFuel(_) => "out_of_fuel",
            Reason::OutOfMemory(_) => "out_of_memory",
            Reason::Deadline(_) => "deadline",
            Reason::Trap(_) => "trap",
            Reason::OutputTooLarge { .. } => "output_too_large",
            Reason::InvalidOutput(_) => "invalid_output",
            Reason::Busy(_) => "busy",
        }
    }
}

/// A rejection: which rule, which version, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule `{rule}`{}: {reason}", version.as_deref().map(|v| format!(" {v}")).unwrap_or_default())]
pub struct Rejection {
    /// Rule name as asked for.
    pub rule: String,
    /// The version that ran, when one did.
    pub version: Option<String>,
    /// Why.
    pub reason: Reason,
}

/// A priced cart.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// What the rule granted (checked against the cart).
    pub adjustment: Adjustment,
    /// The version that priced it.
    pub version: String,
    /// Fuel used.
    pub fuel: u64,
    /// Wall-clock time, in microseconds.
    pub micros: u64,
}

/// How a coupon's config was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigCheck {
    /// By the rule's own `validate-config`.
    ValidateConfig,
    /// By a dry run of `evaluate` on [`sample_cart`]: the rule has no
    /// `validate-config`.
    DryRun,
}

impl ConfigCheck {
    /// Stable name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigCheck::ValidateConfig => "validate_config",
            ConfigCheck::DryRun => "dry_run",
        }
    }
}

/// A config a rule accepted.
#[derive(Debug, Clone)]
pub struct Validation {
    /// The version that checked it.
    pub version: String,
    /// How.
    pub check: ConfigCheck,
    /// Fuel used.
    pub fuel: u64,
    /// Wall-clock time, in microseconds.
    pub micros: u64,
}

/// The cart a rule without `validate-config` is dry-run on: two lines (three
/// units of one SKU and one of another, so quantity-based rules have
/// something to count), 125.00 in the coupon's currency.
pub fn sample_cart(currency: &str) -> Cart {
    let line = |sku: &str, quantity, unit_price| CartLine {
        sku: sku.to_owned(),
        quantity,
        unit_price,
    };
    Cart {
        currency: currency.to_owned(),
        buyer_id: "mercato-dry-run".to_owned(),
        subtotal: 12_500,
        lines: vec![line("DRY-RUN-A", 3, 2_500), line("DRY-RUN-B", 1, 5_000)],
    }
}

/// One rule version, compiled.
pub struct Rule {
    /// Name from its manifest.
    pub name: Arc<str>,
    /// Version from its manifest.
    pub version: String,
    /// What it does, from its manifest.
    pub description: String,
    /// sha256 of the component, hex.
    pub sha256: String,
    /// Limits of each evaluation.
    pub limits: Limits,
    /// The compiled component.
    pub compiled: CompiledRule,
    /// Its running totals.
    pub stats: Stats,
}

/// A compiled rule version.
pub type CompiledRule = Compiled<RuleWorld>;

/// The sandbox rules run in.
pub type RuleSandbox = Sandbox<RuleWorld>;

/// The deployed rules and the sandbox that runs them.
pub struct Rules {
    sandbox: RuleSandbox,
    rules: RwLock<BTreeMap<String, Arc<Rule>>>,
    max_input_bytes: usize,
    max_output_bytes: usize,
    metrics: RuleMetrics,
}

impl Rules {
    /// An empty set of rules evaluated in `sandbox`.
    pub fn new(sandbox: RuleSandbox, config: &RulesConfig, metrics: RuleMetrics) -> Self {
        Rules {
            sandbox,
            rules: RwLock::default(),
            max_input_bytes: config.max_input_bytes,
            max_output_bytes: config.max_output_bytes,
            metrics,
        }
    }

    /// The sandbox (to compile rules).
    pub fn sandbox(&self) -> &RuleSandbox {
        &self.sandbox
    }

    /// The running version of rule `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Rule>> {
        self.rules
            .read()
            .expect("rules poisoned")
            .get(name)
            .cloned()
    }

    /// All running rules, by name.
    pub fn all(&self) -> Vec<Arc<Rule>> {
        self.rules
            .read()
            .expect("rules poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Makes `rule` the version new evaluations use; evaluations running keep
    /// theirs.
    pub fn put(&self, rule: Arc<Rule>) -> Option<Arc<Rule>> {
        self.rules
            .write()
            .expect("rules poisoned")
            .insert(rule.name.to_string(), rule)
    }

    /// Takes rule `name` out; evaluations running keep theirs.
    pub fn remove(&self, name: &str) -> Option<Arc<Rule>> {
        self.rules.write().expect("rules poisoned").remove(name)
    }

    /// Prices `cart` with rule `name` and the coupon's `config`.
    pub async fn evaluate(
        &self,
        name: &str,
        cart: &Cart,
        config: &str,
    ) -> Result<Evaluation, Rejection> {
        let Some(rule) = self.get(name) else {
            self.metrics.unknown_rule();
            return Err(Rejection {
                rule: name.to_owned(),
                version: None,
                reason: Reason::UnknownRule,
            });
        };
        let (result, fuel, micros) = self.run(&rule, cart, config).await;
        let rejected = result.as_ref().err().map(Reason::code);
        rule.stats.record(fuel, micros, rejected);
        self.metrics
            .evaluated(&rule, rejected.unwrap_or("ok"), fuel, micros);
        if let Some(code) = rejected {
            self.metrics.rejected(&rule, code);
        }
        match result {
            Ok(adjustment) => Ok(Evaluation {
                adjustment,
                version: rule.version.clone(),
                fuel,
                micros,
            }),
            Err(reason) => {
                tracing::info!(rule = %rule.name, version = %rule.version, code = reason.code(), "rule rejected: {reason}");
                Err(Rejection {
                    rule: rule.name.to_string(),
                    version: Some(rule.version.clone()),
                    reason,
                })
            }
        }
    }

    /// Checks that rule `name` is deployed and accepts `config` for a coupon
    /// in `currency`: by its `validate-config` when it exports one, else by a
    /// dry run of `evaluate` on [`sample_cart`], where only a breach (a trap,
    /// a limit, an answer over the cap or failing the adjustment checks)
    /// refuses the config. A decline of the sample cart does not: a rule may
    /// rightly decline a cart that small, or of those SKUs.
    ///
    /// Counted in `mercato_rule_config_checks_total`, not as an evaluation.
    pub async fn validate(
        &self,
        name: &str,
        config: &str,
        currency: &str,
    ) -> Result<Validation, Rejection> {
        let Some(rule) = self.get(name) else {
            self.metrics
                .config_checked(None, Reason::UnknownRule.code());
            return Err(Rejection {
                rule: name.to_owned(),
                version: None,
                reason: Reason::UnknownRule,
            });
        };
        let (check, (result, fuel, micros)) = if rule.compiled.pre.validates_config() {
            let checked = self.run_validate_config(&rule, config).await;
            (ConfigCheck::ValidateConfig, checked)
        } else {
            let (result, fuel, micros) = self.run(&rule, &sample_cart(currency), config).await;
            let result = match result {
                Ok(_) | Err(Reason::Declined(_)) => Ok(()),
                Err(breach) => Err(breach),
            };
            (ConfigCheck::DryRun, (result, fuel, micros))
        };
        let outcome = result.as_ref().err().map_or("ok", Reason::code);
        self.metrics.config_checked(Some(&rule), outcome);
        match result {
            Ok(()) => Ok(Validation {
                version: rule.version.clone(),
                check,
                fuel,
                micros,
            }),
            Err(reason) => {
                tracing::info!(rule = %rule.name, version = %rule.version, check = check.as_str(), code = reason.code(), "rule refused a coupon config: {reason}");
                Err(Rejection {
                    rule: rule.name.to_string(),
                    version: Some(rule.version.clone()),
                    reason,
                })
            }
        }
    }

    async fn run(
        &self,
        rule: &Rule,
        cart: &Cart,
        config: &str,
    ) -> (Result<Adjustment, Reason>, u64, u64) {
        let size = validate::input_size(cart, config);
        if size > self.max_input_bytes {
            let limit = self.max_input_bytes;
            return (Err(Reason::InputTooLarge { size, limit }), 0, 0);
        }
        // The call owns its input: the future may outlive any borrow here.
        let (input, rule_config) = (cart.clone(), config.to_owned());
        let (answer, fuel, micros) = self
            .call(rule, move |instance, store| {
                Box::pin(async move {
                    instance
                        .rule
                        .mercato_plugin_rule()
                        .call_evaluate(store, &input, &rule_config)
                        .await
                })
            })
            .await;
        let result = answer.and_then(|answer| {
            let size = validate::output_size(&answer);
            if size > self.max_output_bytes {
                let limit = self.max_output_bytes;
                return Err(Reason::OutputTooLarge { size, limit });
            }
            match answer {
                Err(message) => Err(Reason::Declined(message)),
                Ok(adjustment) => validate::check_adjustment(cart, &adjustment)
                    .map(|()| adjustment)
                    .map_err(Reason::InvalidOutput),
            }
        });
        (result, fuel, micros)
    }

    /// Runs the rule's `validate-config` on `config`, under the same input
    /// and output caps as an evaluation (the input is the config alone).
    async fn run_validate_config(
        &self,
        rule: &Rule,
        config: &str,
    ) -> (Result<(), Reason>, u64, u64) {
        let size = config.len();
        if size > self.max_input_bytes {
            let limit = self.max_input_bytes;
            return (Err(Reason::InputTooLarge { size, limit }), 0, 0);
        }
        let rule_config = config.to_owned();
        let (answer, fuel, micros) = self
            .call(rule, move |instance, store| {
                Box::pin(async move {
                    match &instance.config {
                        Some(exports) => exports.call_validate_config(store, &rule_config).await,
                        None => Err(wasmtime::format_err!("the rule has no `validate-config`")),
                    }
                })
            })
            .await;
        let result = answer.and_then(|answer| match answer {
            Ok(()) => Ok(()),
            Err(message) if message.len() > self.max_output_bytes => Err(Reason::OutputTooLarge {
                size: message.len(),
                limit: self.max_output_bytes,
            }),
            Err(message) => Err(Reason::InvalidConfig(message)),
        });
        (result, fuel, micros)
    }

    /// Runs `f` on a fresh instance of `rule` under its limits; a breach is
    /// the [`Reason`] naming the limit. Also returns the fuel and µs used.
    async fn call<R, F>(&self, rule: &Rule, f: F) -> (Result<R, Reason>, u64, u64)
    where
        F: for<'a> FnOnce(&'a RuleInstance, &'a mut Store<Call<()>>) -> CallFuture<'a, R>,
    {
        let limits = rule.limits;
        let Some(run) = self
            .sandbox
            .call(&rule.compiled.pre, (), limits, Queue::WithinDeadline, f)
            .await
        else {
            return (Err(Reason::Busy(limits.deadline_ms)), 0, 0);
        };
        let micros = u64::try_from(run.elapsed.as_micros()).unwrap_or(u64::MAX);
        let result = run.result.map_err(|e| match e {
            CallError::OutOfFuel(_) => Reason::OutOfFuel(limits.fuel.unwrap_or(u64::MAX)),
            CallError::OutOfMemory(_) => Reason::OutOfMemory(limits.memory_mib),
            CallError::Timeout(_) => Reason::Deadline(limits.deadline_ms),
            CallError::Trap(message) => Reason::Trap(message),
        });
        (result, run.fuel, micros)
    }
}
