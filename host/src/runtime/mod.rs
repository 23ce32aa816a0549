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
        if let Some(what) = not_a_component(bytes) {
            return Err(LoadError::NotAComponent(what));
        }
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

/// Why `bytes` cannot be a component, told from their preamble, in words an
/// operator can act on (the compiler's own message lists the bytes it read).
fn not_a_component(bytes: &[u8]) -> Option<String> {
    const HINT: &str =
        "build the plugin for the `wasm32-wasip2` target (`cargo build --target wasm32-wasip2`)";
    if !bytes.starts_with(b"\0asm") {
        let start: String = bytes
            .iter()
            .take(8)
            .flat_map(|b| std::ascii::escape_default(*b))
            .map(char::from)
            .collect();
        return Some(format!(
            "the upload is not WebAssembly: a component starts with `\\0asm`, this starts with `{start}`; {HINT}"
        ));
    }
    match bytes.get(4..8) {
        // Version 1, layer 0: a core module.
        Some([1, 0, 0, 0]) => Some(format!(
            "the upload is a core WebAssembly module, not a component; {HINT}, or wrap it with `wasm-tools component new`"
        )),
        None => Some(format!(
            "the upload ends inside the WebAssembly preamble; {HINT}"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::not_a_component;

    #[test]
    fn uploads_that_cannot_be_components_are_told_apart() {
        let text = not_a_component(b"{\"not\": \"wasm\"}").unwrap();
        assert!(
            text.contains("not WebAssembly") && text.contains("`{\\\"not\\\": `"),
            "{text}"
        );
        assert!(text.contains("wasm32-wasip2"));
        let core = not_a_component(b"\0asm\x01\0\0\0rest").unwrap();
        assert!(core.contains("core WebAssembly module"), "{core}");
        assert!(
            not_a_component(b"\0asm\x01")
                .unwrap()
                .contains("ends inside")
        );
        // A component's preamble (version 0xd, layer 1) goes on to the compiler.
        assert_eq!(not_a_component(b"\0asm\x0d\0\x01\0body"), None);
        assert!(not_a_component(b"").is_some());
    }
}
