//! The sandbox: one wasmtime engine, a fresh store per call, limits per plugin.
//!
//! Components are compiled once per version into an `InstancePre` (imports
//! resolved ahead of time); each call builds a `Store` with a WASI context that
//! grants nothing (no files, env, sockets or stdio: guest output is captured and
//! logged, tagged with the plugin), instantiates from the pooling allocator, runs
//! one export and is dropped, so a trap can never poison a later call.
mod guest_host;
mod limits;
mod state;

pub use limits::{CallLimiter, Limits};
pub use state::CallState;

use crate::bindings::{Domain, DomainPre};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

/// Bytes of each linear memory / table slot reset in place (not decommitted)
/// when an instance ends: a call of a shop plugin dirties well under this.
const KEEP_RESIDENT_MEMORY: usize = 4 << 20;
const KEEP_RESIDENT_TABLE: usize = 64 << 10;

/// How often the epoch ticks; guests yield to the scheduler once per tick.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Instances alive at once (pool slots).
    pub max_instances: u32,
    /// Largest memory limit any plugin has, in bytes (sizes pool slots).
    pub max_memory_bytes: usize,
    /// Further slots reserved for coupon-rule evaluations.
    pub rule_instances: u32,
}

/// Errors loading a component.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not a valid WebAssembly component.
    #[error("not a valid WebAssembly component: {0}")]
    NotAComponent(String),
    /// It imports something the host does not provide or exports the wrong world.
    #[error("component does not fit the `mercato:plugin/domain` world: {0}")]
    WrongWorld(String),
    /// It imports interfaces the host does not grant.
    #[error(
        "component imports interfaces the host does not grant: {0} (plugins may import only mercato:plugin/* and WASI)"
    )]
    ForbiddenImport(String),
    /// A coupon rule imports something other than WASI.
    #[error(
        "rule imports interfaces the host does not grant: {0} (a coupon rule may import only WASI, linked with no capabilities)"
    )]
    RuleForbiddenImport(String),
    /// A coupon rule does not export `mercato:plugin/rule`.
    #[error("component does not fit the `mercato:plugin/coupon-rule` world: {0}")]
    RuleWrongWorld(String),
    /// `describe` failed.
    #[error("describe() failed: {0}")]
    Describe(String),
}

/// Why a call did not return normally. Each ends that call only.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest trapped (panic, unreachable, bad memory access…).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The wall-clock deadline passed.
    #[error("plugin exceeded its {0:?} deadline")]
    Timeout(Duration),
    /// The guest tried to grow memory past its limit.
    #[error("plugin exceeded its memory limit of {0} MiB")]
    OutOfMemory(u64),
    /// The guest used all its fuel.
    #[error("plugin exceeded its fuel limit of {0}")]
    OutOfFuel(u64),
}

impl CallError {
    /// A stable short name for metrics and error codes.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Trap(_) => "trap",
            CallError::Timeout(_) => "timeout",
            CallError::OutOfMemory(_) => "out_of_memory",
            CallError::OutOfFuel(_) => "out_of_fuel",
        }
    }
}

/// A compiled plugin version, ready to instantiate.
pub struct Compiled {
    pre: DomainPre<CallState>,
    /// What `describe()` returned.
    pub manifest: crate::bindings::Manifest,
}

/// The engine plus the linker shared by all plugins.
pub struct Sandbox {
    engine: Engine,
    /// One permit per pool slot: calls beyond the pool wait instead of failing.
    slots: Arc<tokio::sync::Semaphore>,
    linker: Linker<CallState>,
    _ticker: Arc<EpochTicker>,
}

struct EpochTicker {
    stop: std::sync::atomic::AtomicBool,
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Sandbox {
    /// Builds the engine (async, pooling, epochs, fuel) and the linker.
    pub fn new(config: &EngineConfig) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        let slots = config.max_instances.max(1);
        let total = slots + config.rule_instances;
        // Interpreters built into components (componentize-py, -js) bring
        // several core instances, memories and tables of their own.
        pool.total_component_instances(total)
            .total_core_instances(total * 8)
            .total_memories(total * 4)
            .total_tables(total * 8)
            .max_memory_size(config.max_memory_bytes)
            // Recycling a slot by `madvise` was the largest cost in the
            // profile (docs/benchmarks.md): the syscall, TLB shootdowns on every
            // core, then page faults as the next instance touches the same
            // pages. Instead, keep the pages a guest dirtied resident and reset
            // only those (found by Linux's PAGEMAP_SCAN where available).
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLE)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut wasm = Config::new();
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true)
            .consume_fuel(true)
            .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable);
        let engine = Engine::new(&wasm)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        Domain::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;

        let ticker = Arc::new(EpochTicker {
            stop: std::sync::atomic::AtomicBool::new(false),
        });
        let weak_engine = engine.weak();
        let weak_ticker = Arc::downgrade(&ticker);
        std::thread::Builder::new()
            .name("mercato-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(EPOCH_TICK);
                    let alive = weak_ticker
                        .upgrade()
                        .is_some_and(|t| !t.stop.load(std::sync::atomic::Ordering::Relaxed));
                    match (alive, weak_engine.upgrade()) {
                        (true, Some(engine)) => engine.increment_epoch(),
                        _ => return,
                    }
                }
            })?;
        Ok(Sandbox {
            engine,
            slots: Arc::new(tokio::sync::Semaphore::new(slots as usize)),
            linker,
            _ticker: ticker,
        })
    }

    /// The engine, shared with the rule sandbox.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles component bytes. CPU-heavy (Cranelift takes tens of
    /// milliseconds per component, seconds for an interpreter), so it runs on
    /// a blocking thread and a deploy never stalls requests.
    pub async fn component(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        let engine = self.engine.clone();
        let owned = bytes.to_vec();
        tokio::task::spawn_blocking(move || Component::new(&engine, &owned))
            .await
            .map_err(|e| LoadError::NotAComponent(format!("compilation aborted: {e}")))?
            .map_err(|e| LoadError::NotAComponent(format!("{e:#}")))
    }

    /// True when `component` exports the coupon-rule interface.
    pub fn is_rule(&self, component: &Component) -> bool {
        component
            .component_type()
            .exports(&self.engine)
            .any(|(name, _)| name.starts_with("mercato:plugin/rule@"))
    }

    /// Resolves a domain component's imports and reads its manifest.
    pub async fn compile(
        &self,
        component: Component,
        limits: Limits,
    ) -> Result<Compiled, LoadError> {
        let forbidden = imports_outside(&self.engine, &component, granted);
        if !forbidden.is_empty() {
            return Err(LoadError::ForbiddenImport(forbidden.join(", ")));
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let pre = DomainPre::new(pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the slot semaphore is never closed");
        let mut store = self.store(CallState::new("loading".into(), None), limits);
        let instance = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let manifest = tokio::time::timeout(
            limits.deadline(),
            instance.mercato_plugin_plugin().call_describe(&mut store),
        )
        .await
        .map_err(|_| LoadError::Describe("deadline exceeded".into()))?
        .map_err(|e| LoadError::Describe(format!("{e:#}")))?;
        Ok(Compiled { pre, manifest })
    }

    fn store(&self, state: CallState, limits: Limits) -> Store<CallState> {
        let mut store = Store::new(&self.engine, state);
        store.data_mut().limiter = CallLimiter::new(limits.memory_bytes());
        store.limiter(|s| &mut s.limiter);
        // Yield every tick so a busy guest never pins a tokio worker; the deadline
        // itself is a timeout around the whole call.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        store
            .set_fuel(limits.fuel.unwrap_or(u64::MAX))
            .expect("fuel is enabled on the engine");
        store
    }

    /// Runs one export on a fresh instance under `limits`. Returns the call's
    /// result and the store's state (the transaction, queued events, output).
    pub async fn call<R, F>(
        &self,
        compiled: &Compiled,
        state: CallState,
        limits: Limits,
        f: F,
    ) -> (Result<R, CallError>, CallState, Duration)
    where
        F: for<'a> FnOnce(
            &'a Domain,
            &'a mut Store<CallState>,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>,
        >,
    {
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the slot semaphore is never closed");
        let started = Instant::now();
        let mut state = state;
        if let Some(tx) = state.tx.as_mut() {
            tx.start_deadline(started + limits.deadline());
        }
        let mut store = self.store(state, limits);
        let outcome = tokio::time::timeout(limits.deadline(), async {
            let instance = compiled.pre.instantiate_async(&mut store).await?;
            f(&instance, &mut store).await
        })
        .await;
        let elapsed = started.elapsed();
        let result = match outcome {
            Ok(Ok(value)) => Ok(value),
            Err(_) => Err(CallError::Timeout(limits.deadline())),
            Ok(Err(e)) => Err(classify(&e, &store, limits)),
        };
        let state = store.into_data();
        (result, state, elapsed)
    }
}

/// The imports of `component` that `allowed` refuses.
pub fn imports_outside(
    engine: &Engine,
    component: &Component,
    allowed: impl Fn(&str) -> bool,
) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name)
        .filter(|name| !allowed(name))
        .map(str::to_owned)
        .collect()
}

/// Imports a plugin may have: the host's own interfaces and WASI (linked with
/// no capabilities).
fn granted(import: &str) -> bool {
    import.starts_with("mercato:plugin/") || import.starts_with("wasi:")
}

fn classify(e: &wasmtime::Error, store: &Store<CallState>, limits: Limits) -> CallError {
    if store
        .data()
        .tx
        .as_ref()
        .is_some_and(|tx| tx.deadline_exceeded())
    {
        return CallError::Timeout(limits.deadline());
    }
    if store.data().limiter.memory_denied {
        return CallError::OutOfMemory(limits.memory_mib);
    }
    if let (Some(Trap::OutOfFuel), Some(fuel)) = (e.downcast_ref::<Trap>(), limits.fuel) {
        return CallError::OutOfFuel(fuel);
    }
    CallError::Trap(format!("{e:#}"))
}
