//! Guest SDK for Mercato plugins.
//!
//! A plugin is a manifest, routes with handlers, SQL and events; this crate holds
//! all the bindings glue. A minimal plugin:
//!
//! ```ignore
//! use mercato_sdk::prelude::*;
//!
//! struct Notes;
//!
//! impl Plugin for Notes {
//!     fn manifest() -> Manifest {
//!         Manifest::new("notes", env!("CARGO_PKG_VERSION"))
//!             .migration("0001_notes.sql", include_str!("../migrations/0001_notes.sql"))
//!     }
//!     fn handle_request(req: Request) -> Response {
//!         Router::new().get("/notes/{id}", get_note).dispatch(req)
//!     }
//! }
//!
//! fn get_note(req: &Request) -> HttpResult {
//!     let rows = db::query("SELECT body FROM notes WHERE id = $1", &[req.param("id").into()])?;
//!     let row = rows.first().ok_or_else(|| HttpError::not_found("note_not_found", "no such note"))?;
//!     Ok(Response::json(200, &serde_json::json!({ "body": row.text("body")? })))
//! }
//!
//! mercato_sdk::export_plugin!(Notes);
//! ```
#![deny(missing_docs)]

/// The generated WIT bindings. Plugins normally need only the re-exports below.
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "domain",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_domain",
        default_bindings_module: "mercato_sdk::bindings",
    });
}

pub mod address;
pub mod clock;
pub mod db;
pub mod events;
pub mod http;
pub mod list;
pub mod log;
pub mod outbound;
mod plugin;
pub mod role;
pub mod rules;
pub mod time;
pub mod validate;

pub use bindings::mercato::plugin::types::{Error, Event, SqlValue};

/// A new random UUID (v4) as text: the id format of every context.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
pub use plugin::{Manifest, Plugin};

/// Everything a plugin module usually imports.
pub mod prelude {
    pub use crate::http::{HttpError, HttpResult, Request, Response, Router};
    pub use crate::role::Role;
    pub use crate::validate::Invalid;
    pub use crate::{
        Error, Event, Manifest, Plugin, SqlValue, clock, db, events, log, new_id, outbound,
    };
}

/// Exports a type implementing [`Plugin`] as the component's `plugin` interface.
/// Native builds (unit tests of domain code) get no exports.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __MercatoExport;

            impl $crate::bindings::exports::mercato::plugin::plugin::Guest for __MercatoExport {
                fn describe() -> $crate::bindings::exports::mercato::plugin::plugin::Manifest {
                    <$plugin as $crate::Plugin>::manifest().into_wit()
                }
                fn handle_request(
                    req: $crate::bindings::mercato::plugin::types::Request,
                ) -> $crate::bindings::mercato::plugin::types::Response {
                    <$plugin as $crate::Plugin>::handle_request($crate::http::Request::from_wit(
                        req,
                    ))
                    .into_wit()
                }
                fn handle_event(e: $crate::Event) -> ::core::result::Result<(), $crate::Error> {
                    <$plugin as $crate::Plugin>::handle_event(e)
                }
            }

    $crate::bindings::export_domain!(__MercatoExport with_types_in $crate::bindings);
        };

        // Natively the plugin is still "used", so its handlers are linted normally.
        #[cfg(not(target_arch = "wasm32"))]
        const _: (
            fn() -> $crate::Manifest,
            fn($crate::http::Request) -> $crate::http::Response,
            fn($crate::Event) -> ::core::result::Result<(), $crate::Error>,
        ) = (
            <$plugin as $crate::Plugin>::manifest,
            <$plugin as $crate::Plugin>::handle_request,
            <$plugin as $crate::Plugin>::handle_event,
        );
    };
}
