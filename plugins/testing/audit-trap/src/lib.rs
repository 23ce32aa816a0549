//! Hot-swap test plugin: `audit` 0.2.0-trap. The audit plugin, except that every
//! `Ping` event traps (a new version that fails on live traffic).
use mercato_sdk::prelude::*;

// The audit plugin's source, compiled into this crate rather than linked as
// the `audit` crate: cargo unifies features across the packages of one build,
// so building `-p audit -p audit-trap` (as host/build.rs does) would turn on
// `audit`'s `export` feature and link its exports next to ours. Here its
// `#[cfg(feature = "export")]` sees this crate's features, which have no
// `export`, so only this crate exports the plugin interface.
#[allow(unexpected_cfgs)]
#[path = "../../audit/src/lib.rs"]
mod audit;

use audit::Audit;

struct AuditTrap;

impl Plugin for AuditTrap {
    fn manifest() -> Manifest {
        <Audit as Plugin>::manifest().with_version("0.2.0-trap")
    }

    fn handle_request(req: Request) -> Response {
        <Audit as Plugin>::handle_request(req)
    }

    fn handle_event(event: Event) -> Result<(), Error> {
        if event.event_type == "Ping" {
            panic!("audit-trap cannot handle Ping");
        }
        <Audit as Plugin>::handle_event(event)
    }
}

mercato_sdk::export_plugin!(AuditTrap);
