//! Per-call store data: the WASI context (granting nothing), the call's
//! transaction and queued events, the limiter and the guest's captured output.
use super::CallLimiter;
use crate::events::PendingEvent;
use crate::storage::Tx;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Captured guest output per call; beyond this the guest's writes fail.
const OUTPUT_CAPACITY: usize = 64 * 1024;

/// The data of one call's `Store`.
pub struct CallState {
    /// Plugin name, for log tags and event sources.
    pub plugin: Arc<str>,
    /// The call's transaction; `None` while loading (storage calls then fail).
    pub tx: Option<Tx>,
    /// Events emitted during the call, written to the outbox at commit.
    pub events: Vec<PendingEvent>,
    /// Bytes held in `events`.
    pub event_bytes: usize,
    /// Most bytes `events` may hold (the plugin's `max_event_bytes`).
    pub max_event_bytes: usize,
    /// Enforces the memory limit.
    pub limiter: CallLimiter,
    /// A read-only call (GET) may not emit events.
    pub read_only: bool,
    /// The rules the `rules` import may run; `None` while loading.
    pub rules: Option<Arc<crate::rules::Rules>>,
    wasi: WasiCtx,
    table: ResourceTable,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl CallState {
    /// State for a call of `plugin` inside `tx`.
    pub fn new(plugin: Arc<str>, tx: Option<Tx>) -> Self {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        CallState {
            plugin,
            tx,
            events: Vec::new(),
            event_bytes: 0,
            max_event_bytes: usize::MAX,
            limiter: CallLimiter::new(0),
            read_only: false,
            rules: None,
            wasi,
            table: ResourceTable::new(),
            stdout,
            stderr,
        }
    }

    /// Lets the call evaluate coupon rules.
    pub fn with_rules(mut self, rules: Arc<crate::rules::Rules>) -> Self {
        self.rules = Some(rules);
        self
    }

    /// Caps the bytes of events the call may emit.
    pub fn max_event_bytes(mut self, max: usize) -> Self {
        self.max_event_bytes = max;
        self
    }

    /// Marks the call read-only.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Writes whatever the guest printed to the host log, tagged with the plugin.
    pub fn log_output(&self, request_id: &str) {
        for (stream, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let bytes = pipe.contents();
            if bytes.is_empty() {
                continue;
            }
            for line in String::from_utf8_lossy(&bytes).lines() {
                tracing::warn!(plugin = %self.plugin, stream, request_id, "{line}");
            }
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
