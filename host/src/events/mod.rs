//! Event delivery between plugins: the relay and its tasks.
//!
//! What a plugin emits and consumes is the outbox capability (`crate::outbox`);
//! this module moves it. The relay (`relay.rs`) runs a stream per
//! (subscriber, source) (`stream.rs`), a scheduler per subscriber for delayed
//! events (`scheduler.rs`) a marker per source (`marker.rs`) and, on PostgreSQL, a numberer per
//! source giving committed events their sequence numbers (`numberer.rs`),
//! started by
//! `tasks.rs`; both kinds of
//! delivery share one retry-or-dead-letter path (`attempt.rs`), and each
//! delivery is a unit of work of the subscriber. Dead letters can be
//! delivered again after a fix (`redrive.rs`). What became of one order's
//! events is read back for operators by `timeline.rs`.
mod attempt;
mod cluster;
mod marker;
mod numberer;
mod outbound;
mod redrive;
mod relay;
mod replay;
mod scheduler;
mod stream;
mod tasks;
pub mod timeline;

pub use marker::oldest_unconsumed_secs;
pub use redrive::{RedriveError, RedriveReport};
pub use relay::{Relay, StreamStatus};
pub use replay::{ReplayError, SourceProgress};
