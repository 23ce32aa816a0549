//! The one wasmtime engine of a host: async, pooling allocator, fuel and an
//! epoch ticker. Every world's sandbox shares it, so pool slots and compiled
//! code live in one place.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Bytes of each linear memory / table slot reset in place (not decommitted)
/// when an instance ends: a call of a shop plugin dirties well under this.
const KEEP_RESIDENT_MEMORY: usize = 4 << 20;
const KEEP_RESIDENT_TABLE: usize = 64 << 10;

/// How often the epoch ticks; guests yield to the scheduler once per tick.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Instances alive at once, over every sandbox (pool slots).
    pub max_instances: u32,
    /// Largest memory limit any guest has, in bytes (sizes pool slots).
    pub max_memory_bytes: usize,
}

/// The engine and the thread that ticks its epoch; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    engine: wasmtime::Engine,
    _ticker: Arc<EpochTicker>,
}

struct EpochTicker {
    stop: AtomicBool,
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Engine {
    /// Builds the engine (async, pooling, epochs, fuel) and starts its ticker.
    pub fn new(config: &EngineConfig) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        let total = config.max_instances.max(1);
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
        let engine = wasmtime::Engine::new(&wasm)?;

        let ticker = Arc::new(EpochTicker {
            stop: AtomicBool::new(false),
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
                        .is_some_and(|t| !t.stop.load(Ordering::Relaxed));
                    match (alive, weak_engine.upgrade()) {
                        (true, Some(engine)) => engine.increment_epoch(),
                        _ => return,
                    }
                }
            })?;
        Ok(Engine {
            engine,
            _ticker: ticker,
        })
    }

    /// The wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.engine
    }
}
