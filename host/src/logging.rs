//! The `log` and `clock` capabilities every domain plugin gets: log lines go to
//! the host's log tagged with the plugin, and the clock is the host's.
use crate::bindings::mercato::plugin::{clock, log, types};
use std::sync::Arc;

/// The per-call state of `log` and `clock`: whose call it is.
pub struct LogCall {
    /// Plugin name, tagging every line.
    pub plugin: Arc<str>,
}

impl LogCall {
    /// Writes what the guest printed to stdout and stderr to the host log,
    /// tagged with the plugin and `request_id`.
    pub fn output(&self, request_id: &str, stdout: &[u8], stderr: &[u8]) {
        for (stream, bytes) in [("stdout", stdout), ("stderr", stderr)] {
            for line in String::from_utf8_lossy(bytes).lines() {
                tracing::warn!(plugin = %self.plugin, stream, request_id, "{line}");
            }
        }
    }
}

impl types::Host for LogCall {}

impl log::Host for LogCall {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }
}

impl clock::Host for LogCall {
    fn now(&mut self) -> wasmtime::Result<String> {
        Ok(crate::clock::now_rfc3339())
    }

    fn now_millis(&mut self) -> wasmtime::Result<u64> {
        Ok(crate::clock::now_millis())
    }
}
