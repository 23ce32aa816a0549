//! Mercato: a commerce backend whose bounded contexts are sandboxed WebAssembly
//! components. This crate is the host runtime.
//!
//! `docs/architecture/overview.md` maps every module; in short:
//! - [`app`]: the composition root, wiring the rest.
//! - [`http`], [`cli`]: the axum gateway and admin API; the command line.
//! - [`deploy`], [`events`], [`unit_of_work`], [`retention`]: loading and hot
//!   swap; the relay between plugins; every call as one transaction; expiring
//!   idempotency records.
//! - [`plugin`], [`rules`], [`outbox`], [`outbound`], [`storage`], [`logging`]:
//!   the domain world and its capabilities; the coupon-rule world.
//! - [`runtime`]: the generic engine (`Sandbox<W>` for any world).
//! - [`telemetry`], [`trace`]: the host's own log, as text or JSON lines, and
//!   its OpenTelemetry traces; the W3C trace context every call and event carries.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let app = mercato::app::App::start(
//!     mercato::config::Config::default(),
//!     mercato::deploy::Component::embedded(),
//! )
//! .await?;
//! let router = mercato::http::app(app); // serve it, or drive it in tests
//! # let _ = router; Ok(()) }
//! ```
#![deny(missing_docs)]

/// The default plugin components built by `build.rs` and embedded in the binary.
pub mod artifacts {
    include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
}
pub mod app;
#[allow(missing_docs)]
pub mod bindings;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod deploy;
pub mod events;
pub mod http;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod migrate;
pub mod outbound;
pub mod outbox;
pub mod plugin;
pub mod retention;
pub mod rules;
pub mod runtime;
pub mod secrets;
pub mod storage;
pub mod telemetry;
pub mod trace;
pub mod unit_of_work;
