//! Per-plugin resource limits and the per-call limiter that enforces them.
use serde::Deserialize;
use std::time::Duration;

/// Limits for one plugin's calls (config `[limits]` / `[plugins.<name>.limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Linear memory a call may grow to, in MiB.
    pub memory_mib: u64,
    /// Wall-clock deadline for one call, in milliseconds.
    pub deadline_ms: u64,
    /// Fuel (≈ wasm instructions) per call; `None` for no fuel limit.
    pub fuel: Option<u64>,
    /// Largest result one query may return to the guest, in bytes; also the
    /// largest string or blob one SQLite statement may build. The host holds
    /// a result before the guest sees it, so this bounds what a query can
    /// make the host allocate.
    #[serde(default = "default_max_query_bytes")]
    pub max_query_bytes: u64,
    /// Bytes of event payloads one call may emit (they are held until commit).
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: u64,
}

fn default_max_query_bytes() -> u64 {
    8 << 20
}

fn default_max_event_bytes() -> u64 {
    4 << 20
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mib: 64,
            deadline_ms: 1_000,
            fuel: None,
            max_query_bytes: default_max_query_bytes(),
            max_event_bytes: default_max_event_bytes(),
        }
    }
}

impl Limits {
    /// The memory limit in bytes.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib << 20).unwrap_or(usize::MAX)
    }

    /// The deadline.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    /// [`Limits::max_query_bytes`] as a `usize`.
    pub fn query_bytes(&self) -> usize {
        usize::try_from(self.max_query_bytes).unwrap_or(usize::MAX)
    }

    /// [`Limits::max_event_bytes`] as a `usize`.
    pub fn event_bytes(&self) -> usize {
        usize::try_from(self.max_event_bytes).unwrap_or(usize::MAX)
    }
}

/// Denies memory growth beyond the limit and remembers that it did, because a
/// guest that cannot allocate usually aborts (a plain `unreachable` trap) and the
/// host still wants to report "out of memory".
pub struct CallLimiter {
    max_memory: usize,
    /// Set when a growth request was refused.
    pub memory_denied: bool,
}

impl CallLimiter {
    /// A limiter allowing `max_memory` bytes per linear memory.
    pub fn new(max_memory: usize) -> Self {
        CallLimiter {
            max_memory,
            memory_denied: false,
        }
    }
}

impl wasmtime::ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.max_memory && maximum.is_none_or(|m| desired <= m);
        if !allowed {
            self.memory_denied = true;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000 && maximum.is_none_or(|m| desired <= m))
    }
}
