//! Hot-swap test plugin: `notes` 0.3.0-destructive. The notes plugin plus a
//! migration that drops a column the running version reads, without being
//! marked as a contract step: the host must refuse to deploy it.
use mercato_sdk::prelude::*;

// The notes plugin's source, compiled into this crate rather than linked as
// the `notes` crate: cargo unifies features across the packages of one build,
// so building `-p notes -p notes-destructive` (as host/build.rs does) would turn on
// `notes`'s `export` feature and link its exports next to ours. Here its
// `#[cfg(feature = "export")]` sees this crate's features, which have no
// `export`, so only this crate exports the plugin interface.
#[allow(unexpected_cfgs)]
#[path = "../../notes/src/lib.rs"]
mod notes;

use notes::Notes;

struct NotesDestructive;

impl Plugin for NotesDestructive {
    fn manifest() -> Manifest {
        <Notes as Plugin>::manifest()
            .with_version("0.3.0-destructive")
            .migration(
                "0002_drop_body.sql",
                include_str!("../migrations/0002_drop_body.sql"),
            )
    }

    fn handle_request(req: Request) -> Response {
        <Notes as Plugin>::handle_request(req)
    }

    fn handle_event(event: Event) -> Result<(), Error> {
        <Notes as Plugin>::handle_event(event)
    }
}

mercato_sdk::export_plugin!(NotesDestructive);
