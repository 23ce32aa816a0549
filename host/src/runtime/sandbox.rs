//! A sandbox for one world: the linker of that world, its pool slots, and the
//! store of each call (a fresh instance, the world's WASI context, limits).
//!
//! The engine knows no capability. A [`World`] says how to link its imports,
//! which imports a component may have, what a call's state is and how to read
//! its manifest; `Sandbox<W>` does the rest the same way for every world:
//! compile and check, queue for a pool slot, run one export under fuel, memory
//! and a deadline, and classify how it ended.
use super::engine::Engine;
use super::limits::{CallLimiter, Limits};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// A boxed future borrowing a call's store.
pub type CallFuture<'a, T> = Pin<Box<dyn Future<Output = wasmtime::Result<T>> + Send + 'a>>;

/// What a world brings to the generic sandbox.
pub trait World: Send + Sync + Sized + 'static {
    /// The world's name, for errors (`mercato:plugin/domain`).
    const NAME: &'static str;
    /// What a component of this world is called in errors (`component`, `rule`).
    const SUBJECT: &'static str;
    /// What the world grants, said when a component imports something else.
    const GRANTS: &'static str;
    /// Bytes of stdout and of stderr kept per call; further writes fail.
    const OUTPUT_CAPACITY: usize;
    /// The capabilities' per-call state.
    type State: Send + 'static;
    /// The component pre-instantiated against the world's linker.
    type Pre: Send + Sync + 'static;
    /// An instance of the world's exports.
    type Instance: Send + Sync + 'static;
    /// What `describe` returns.
    type Manifest: Send + 'static;

    /// Links the world's own imports (WASI is linked by the sandbox).
    fn link(linker: &mut Linker<Call<Self::State>>) -> anyhow::Result<()>;
    /// True for an import a component of this world may have.
    fn granted(import: &str) -> bool;
    /// Checks the exports and wraps the pre-instance.
    fn pre(pre: InstancePre<Call<Self::State>>) -> wasmtime::Result<Self::Pre>;
    /// A fresh instance.
    fn instantiate<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<Call<Self::State>>,
    ) -> CallFuture<'a, Self::Instance>;
    /// Calls `describe`.
    fn describe<'a>(
        instance: &'a Self::Instance,
        store: &'a mut Store<Call<Self::State>>,
    ) -> CallFuture<'a, Self::Manifest>;
    /// The state of the call that reads the manifest.
    fn loading_state() -> Self::State;
    /// Adds the world's WASI settings (clocks, randomness) to a context that
    /// otherwise grants nothing.
    fn wasi(_builder: &mut WasiCtxBuilder) {}
    /// Called as the call starts; `deadline` is when it will be stopped.
    fn started(_state: &mut Self::State, _deadline: Instant) {}
    /// True when a capability stopped the call because its deadline passed
    /// (the guest then sees an error, not the timeout).
    fn stopped_at_deadline(_state: &Self::State) -> bool {
        false
    }
    /// The message of a trap; `stderr` is what the guest printed.
    fn trap_message(error: &wasmtime::Error, _stderr: &[u8]) -> String {
        format!("{error:#}")
    }
}

/// Errors loading a component.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not a valid WebAssembly component.
    #[error("not a valid WebAssembly component: {0}")]
    NotAComponent(String),
    /// It imports something the world does not link, or exports the wrong world.
    #[error("component does not fit the `{world}` world: {detail}")]
    WrongWorld {
        /// The world it was checked against.
        world: &'static str,
        /// What did not fit.
        detail: String,
    },
    /// It imports interfaces the world does not grant.
    #[error("{subject} imports interfaces the host does not grant: {imports} ({grants})")]
    ForbiddenImport {
        /// `component` or `rule`.
        subject: &'static str,
        /// The refused imports.
        imports: String,
        /// What the world grants.
        grants: &'static str,
    },
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

/// The data of one call's `Store`: the world's state plus what every call
/// has (a WASI context granting nothing, the limiter, captured output).
pub struct Call<S> {
    /// The capabilities' per-call state.
    pub state: S,
    limiter: CallLimiter,
    wasi: WasiCtx,
    table: ResourceTable,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl<S: Send> WasiView for Call<S> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A compiled component of world `W`, ready to instantiate.
pub struct Compiled<W: World> {
    /// The component pre-instantiated against its world's linker.
    pub pre: W::Pre,
    /// What `describe()` returned.
    pub manifest: W::Manifest,
}

impl<W: World> Clone for Compiled<W>
where
    W::Pre: Clone,
    W::Manifest: Clone,
{
    fn clone(&self) -> Self {
        Compiled {
            pre: self.pre.clone(),
            manifest: self.manifest.clone(),
        }
    }
}

/// How a call ended and what it cost.
pub struct Finished<R, S> {
    /// The export's result, or why the call was stopped.
    pub result: Result<R, CallError>,
    /// The state, given back (the transaction, queued events…).
    pub state: S,
    /// Wall-clock time of the call.
    pub elapsed: Duration,
    /// Fuel used, instantiation included.
    pub fuel: u64,
    /// What the guest wrote to stdout.
    pub stdout: Vec<u8>,
    /// What the guest wrote to stderr.
    pub stderr: Vec<u8>,
}

/// How long a call may wait for a pool slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// As long as it takes; the deadline starts once the call has a slot.
    Unbounded,
    /// Within the deadline, which starts when the call asks for a slot.
    WithinDeadline,
}

/// The engine, one world's linker and that world's pool slots.
pub struct Sandbox<W: World> {
    engine: Engine,
    linker: Linker<Call<W::State>>,
    /// One permit per pool slot: calls beyond them wait instead of failing.
    slots: Arc<tokio::sync::Semaphore>,
}

impl<W: World> Sandbox<W> {
    /// A sandbox for `W` on `engine` with `slots` calls at once.
    pub fn new(engine: &Engine, slots: u32) -> anyhow::Result<Self> {
        let mut linker = Linker::new(engine.wasmtime());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        W::link(&mut linker)?;
        Ok(Sandbox {
            engine: engine.clone(),
            linker,
            slots: Arc::new(tokio::sync::Semaphore::new(slots.max(1) as usize)),
        })
    }

    /// Checks `component`'s imports and exports against the world and reads
    /// its manifest under `limits`.
    pub async fn compile(
        &self,
        component: &Component,
        limits: Limits,
    ) -> Result<Compiled<W>, LoadError> {
        let forbidden = imports_outside(self.engine.wasmtime(), component, W::granted);
        if !forbidden.is_empty() {
            return Err(LoadError::ForbiddenImport {
                subject: W::SUBJECT,
                imports: forbidden.join(", "),
                grants: W::GRANTS,
            });
        }
        let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld {
            world: W::NAME,
            detail: format!("{e:#}"),
        };
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(wrong_world)?;
        let pre = W::pre(pre).map_err(wrong_world)?;
        let finished = self
            .call(
                &pre,
                W::loading_state(),
                limits,
                Queue::Unbounded,
                W::describe,
            )
            .await
            .expect("an unbounded queue always gets a slot");
        match finished.result {
            Ok(manifest) => Ok(Compiled { pre, manifest }),
            Err(CallError::Timeout(_)) => Err(LoadError::Describe("deadline exceeded".into())),
            Err(e) => Err(LoadError::Describe(e.to_string())),
        }
    }

    /// Runs `f` on a fresh instance of `pre` (a [`Compiled`]'s) under
    /// `limits`. `None` when `queue` is [`Queue::WithinDeadline`] and no slot
    /// freed up in time.
    pub async fn call<R, F>(
        &self,
        pre: &W::Pre,
        state: W::State,
        limits: Limits,
        queue: Queue,
        f: F,
    ) -> Option<Finished<R, W::State>>
    where
        F: for<'a> FnOnce(&'a W::Instance, &'a mut Store<Call<W::State>>) -> CallFuture<'a, R>,
    {
        let asked = Instant::now();
        let _slot = match queue {
            Queue::Unbounded => self.slots.acquire().await,
            Queue::WithinDeadline => tokio::time::timeout(limits.deadline(), self.slots.acquire())
                .await
                .ok()?,
        }
        .expect("the slot semaphore is never closed");
        let started = match queue {
            Queue::Unbounded => Instant::now(),
            Queue::WithinDeadline => asked,
        };
        let deadline = started + limits.deadline();
        let mut state = state;
        W::started(&mut state, deadline);
        let mut store = self.store(state, limits);
        let remaining = deadline.saturating_duration_since(Instant::now());
        let outcome = tokio::time::timeout(remaining, async {
            let instance = W::instantiate(pre, &mut store).await?;
            f(&instance, &mut store).await
        })
        .await;
        let elapsed = started.elapsed();
        let budget = limits.fuel.unwrap_or(u64::MAX);
        let fuel = budget.saturating_sub(store.get_fuel().unwrap_or(0));
        let result = match outcome {
            Ok(Ok(value)) => Ok(value),
            Err(_) => Err(CallError::Timeout(limits.deadline())),
            Ok(Err(e)) => Err(classify::<W>(&e, store.data(), limits)),
        };
        let call = store.into_data();
        Some(Finished {
            result,
            state: call.state,
            elapsed,
            fuel,
            stdout: call.stdout.contents().to_vec(),
            stderr: call.stderr.contents().to_vec(),
        })
    }

    fn store(&self, state: W::State, limits: Limits) -> Store<Call<W::State>> {
        let stdout = MemoryOutputPipe::new(W::OUTPUT_CAPACITY);
        let stderr = MemoryOutputPipe::new(W::OUTPUT_CAPACITY);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        W::wasi(&mut wasi);
        let call = Call {
            state,
            limiter: CallLimiter::new(limits.memory_bytes()),
            wasi: wasi.build(),
            table: ResourceTable::new(),
            stdout,
            stderr,
        };
        let mut store = Store::new(self.engine.wasmtime(), call);
        store.limiter(|c| &mut c.limiter);
        // Yield every tick so a busy guest never pins a tokio worker; the
        // deadline itself is a timeout around the whole call.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        store
            .set_fuel(limits.fuel.unwrap_or(u64::MAX))
            .expect("fuel is enabled on the engine");
        store
    }
}

fn classify<W: World>(e: &wasmtime::Error, call: &Call<W::State>, limits: Limits) -> CallError {
    if W::stopped_at_deadline(&call.state) {
        return CallError::Timeout(limits.deadline());
    }
    // The limiter's record comes first: a guest that cannot grow its memory
    // usually aborts with a plain `unreachable`.
    if call.limiter.memory_denied {
        return CallError::OutOfMemory(limits.memory_mib);
    }
    if let (Some(Trap::OutOfFuel), Some(fuel)) = (e.downcast_ref::<Trap>(), limits.fuel) {
        return CallError::OutOfFuel(fuel);
    }
    CallError::Trap(W::trap_message(e, &call.stderr.contents()))
}

/// The imports of `component` that `allowed` refuses.
fn imports_outside(
    engine: &wasmtime::Engine,
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
