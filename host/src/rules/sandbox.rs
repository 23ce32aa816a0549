//! The rule sandbox: the engine shared with domain plugins, a linker that links
//! WASI and nothing else, and a store per evaluation whose WASI context grants
//! no capability (no files, env, args or sockets; clocks frozen at the Unix
//! epoch so a rule prices a cart the same way whenever it runs).
use crate::bindings::rule::{CouponRule, CouponRulePre};
use crate::bindings::{Adjustment, Cart, RuleManifest};
use crate::runtime::{CallLimiter, Limits, LoadError, imports_outside};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

/// What a rule may print (its panic message, mostly); more is dropped.
const STDERR_CAPACITY: usize = 4 * 1024;

/// The only non-WASI import a rule may have: the type-only interface its
/// exports use.
const RULE_TYPES: &str = "mercato:plugin/rule-types@";

/// How one evaluation ended, before its answer is checked.
pub enum Outcome {
    /// `evaluate` returned.
    Returned(Result<Adjustment, String>),
    /// The fuel ran out.
    OutOfFuel,
    /// A memory growth past the limit was refused.
    OutOfMemory,
    /// The deadline passed.
    Deadline,
    /// Any other trap, with what the rule printed to stderr.
    Trap(String),
}

/// An evaluation's outcome and what it cost.
pub struct Run {
    /// How it ended.
    pub outcome: Outcome,
    /// Fuel used, instantiation included.
    pub fuel: u64,
    /// Wall-clock time, instantiation included.
    pub elapsed: Duration,
}

/// A compiled rule version.
pub struct CompiledRule {
    pre: CouponRulePre<RuleState>,
    /// What `describe()` returned.
    pub manifest: RuleManifest,
}

/// Per-evaluation store data.
pub struct RuleState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: CallLimiter,
    stderr: MemoryOutputPipe,
}

impl WasiView for RuleState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A clock stopped at the Unix epoch: WASI needs one, a rule gets no time.
struct Frozen;

impl HostWallClock for Frozen {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for Frozen {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

impl RuleState {
    fn new(memory_bytes: usize) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .wall_clock(Frozen)
            .monotonic_clock(Frozen)
            .insecure_random_seed(0)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        RuleState {
            wasi,
            table: ResourceTable::new(),
            limiter: CallLimiter::new(memory_bytes),
            stderr,
        }
    }

    fn printed(&self) -> String {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(2)
            .collect::<Vec<_>>()
            .join(" / ")
    }
}

/// Engine, linker and slots for rules.
pub struct RuleSandbox {
    engine: Engine,
    linker: Linker<RuleState>,
    /// Pool slots reserved for rules, so a domain call waiting on a rule can
    /// never be starved by other domain calls holding every slot.
    slots: Arc<tokio::sync::Semaphore>,
}

impl RuleSandbox {
    /// A sandbox on `engine` with `slots` concurrent evaluations.
    pub fn new(engine: Engine, slots: u32) -> anyhow::Result<Self> {
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        // `rule-types` has no functions; a rule imports it for its types only.
        linker.instance("mercato:plugin/rule-types@0.1.0")?;
        Ok(RuleSandbox {
            engine,
            linker,
            slots: Arc::new(tokio::sync::Semaphore::new(slots.max(1) as usize)),
        })
    }

    /// Compiles a rule component, checks its imports and exports and reads its
    /// manifest under `limits`.
    pub async fn compile(
        &self,
        component: Component,
        limits: Limits,
    ) -> Result<CompiledRule, LoadError> {
        let forbidden = imports_outside(&self.engine, &component, |name| {
            name.starts_with("wasi:") || name.starts_with(RULE_TYPES)
        });
        if !forbidden.is_empty() {
            return Err(LoadError::RuleForbiddenImport(forbidden.join(", ")));
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::RuleWrongWorld(format!("{e:#}")))?;
        let pre =
            CouponRulePre::new(pre).map_err(|e| LoadError::RuleWrongWorld(format!("{e:#}")))?;
        let _slot = self.slots.acquire().await.expect("never closed");
        let mut store = self.store(limits);
        let run = async {
            let rule = pre.instantiate_async(&mut store).await?;
            rule.mercato_plugin_rule().call_describe(&mut store).await
        };
        let manifest = tokio::time::timeout(limits.deadline(), run)
            .await
            .map_err(|_| LoadError::Describe("deadline exceeded".into()))?
            .map_err(|e| LoadError::Describe(format!("{e:#}")))?;
        Ok(CompiledRule { pre, manifest })
    }

    fn store(&self, limits: Limits) -> Store<RuleState> {
        let mut store = Store::new(&self.engine, RuleState::new(limits.memory_bytes()));
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        store
            .set_fuel(limits.fuel.unwrap_or(u64::MAX))
            .expect("fuel is enabled on the engine");
        store
    }

    /// Runs `evaluate` on a fresh instance. `None` when no slot freed up
    /// within the deadline.
    pub async fn evaluate(
        &self,
        rule: &CompiledRule,
        cart: &Cart,
        config: &str,
        limits: Limits,
    ) -> Option<Run> {
        let started = Instant::now();
        let deadline = limits.deadline();
        let _slot = tokio::time::timeout(deadline, self.slots.acquire())
            .await
            .ok()?
            .expect("never closed");
        let mut store = self.store(limits);
        let remaining = deadline.saturating_sub(started.elapsed());
        let result = tokio::time::timeout(remaining, async {
            let instance: CouponRule = rule.pre.instantiate_async(&mut store).await?;
            instance
                .mercato_plugin_rule()
                .call_evaluate(&mut store, cart, config)
                .await
        })
        .await;
        let budget = limits.fuel.unwrap_or(u64::MAX);
        let fuel = budget.saturating_sub(store.get_fuel().unwrap_or(0));
        let outcome = match result {
            Err(_) => Outcome::Deadline,
            Ok(Ok(answer)) => Outcome::Returned(answer),
            // The limiter's record comes first: a guest that cannot grow its
            // memory usually aborts with a plain `unreachable`.
            Ok(Err(_)) if store.data().limiter.memory_denied => Outcome::OutOfMemory,
            Ok(Err(e)) if matches!(e.downcast_ref::<Trap>(), Some(Trap::OutOfFuel)) => {
                Outcome::OutOfFuel
            }
            Ok(Err(e)) => {
                let printed = store.data().printed();
                let trap = e
                    .downcast_ref::<Trap>()
                    .map_or_else(|| format!("{e}"), |t| t.to_string());
                Outcome::Trap(if printed.is_empty() {
                    trap
                } else {
                    format!("{trap}; the rule printed: {printed}")
                })
            }
        };
        Some(Run {
            outcome,
            fuel,
            elapsed: started.elapsed(),
        })
    }
}
