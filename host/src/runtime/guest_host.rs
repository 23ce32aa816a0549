//! Host side of the small imports every plugin gets: `log`, `clock`, `types`.
use super::CallState;
use crate::bindings::mercato::plugin::{clock, log, types};

impl types::Host for CallState {}

impl log::Host for CallState {
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

impl clock::Host for CallState {
    fn now(&mut self) -> wasmtime::Result<String> {
        Ok(crate::clock::now_rfc3339())
    }

    fn now_millis(&mut self) -> wasmtime::Result<u64> {
        Ok(crate::clock::now_millis())
    }
}
