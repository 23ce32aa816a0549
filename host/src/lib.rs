//! Mercato: a commerce backend whose bounded contexts are sandboxed WebAssembly
//! components. This crate is the host runtime.
//!
//! - [`runtime`]: the wasmtime sandbox (fresh store per call, limits).
//! - [`storage`]: one database per plugin (SQLite or PostgreSQL) and the guest's
//!   `storage` interface.
//! - [`events`]: the transactional outbox and the router.
//! - [`uow`]: every call is one transaction.
//! - [`retention`]: idempotency records expire.
//! - [`http`]: the axum gateway and admin API.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let host = mercato::host::Host::start(
//!     mercato::config::Config::default(),
//!     mercato::host::Component::embedded(),
//! )
//! .await?;
//! let router = mercato::http::app(host); // serve it, or drive it in tests
//! # let _ = router; Ok(()) }
//! ```
#![deny(missing_docs)]

/// The default plugin components built by `build.rs` and embedded in the binary.
pub mod artifacts {
    include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
}
#[allow(missing_docs)]
pub mod bindings;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod deploy;
pub mod events;
pub mod host;
pub mod http;
pub mod metrics;
pub mod migrate;
pub mod plugin;
pub mod retention;
pub mod rules;
pub mod runtime;
pub mod secrets;
pub mod storage;
pub mod uow;
