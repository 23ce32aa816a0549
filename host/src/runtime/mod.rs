//! The generic engine: one wasmtime engine, a sandbox per world, a fresh store
//! per call, limits per guest. It knows no capability: each world (the domain
//! world of the shop's contexts, the coupon-rule world) says through
//! [`World`] what it links, what it grants and what a call carries.
//!
//! Components are compiled once per version into a pre-instance (imports
//! resolved ahead of time); each call builds a `Store` with a WASI context that
//! grants nothing (no files, env, sockets; output captured), instantiates from
//! the pooling allocator, runs one export and is dropped, so a trap can never
//! poison a later call.
mod engine;
mod limits;
mod sandbox;

pub use engine::{Engine, EngineConfig};
pub use limits::{CallLimiter, Limits};
pub use sandbox::{
    Call, CallError, CallFuture, Compiled, Finished, LoadError, Queue, Sandbox, World,
};

use wasmtime::component::Component;

impl Engine {
    /// Compiles component bytes. CPU-heavy (Cranelift takes tens of
    /// milliseconds per component, seconds for an interpreter), so it runs on
    /// a blocking thread and a deploy never stalls requests.
    pub async fn component(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        let engine = self.wasmtime().clone();
        let owned = bytes.to_vec();
        tokio::task::spawn_blocking(move || Component::new(&engine, &owned))
            .await
            .map_err(|e| LoadError::NotAComponent(format!("compilation aborted: {e}")))?
            .map_err(|e| LoadError::NotAComponent(format!("{e:#}")))
    }

    /// True when `component` exports an interface whose name starts with `prefix`.
    pub fn exports(&self, component: &Component, prefix: &str) -> bool {
        component
            .component_type()
            .exports(self.wasmtime())
            .any(|(name, _)| name.starts_with(prefix))
    }
}
