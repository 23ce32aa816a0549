//! The only `bindgen!` in the codebase: Rust types and traits for `wit/`.
//! Every capability module implements the generated `Host` traits.
wasmtime::component::bindgen!({
    world: "domain",
    path: "../wit",
    imports: {
        "mercato:plugin/storage": async | trappable,
        "mercato:plugin/outbox": async | trappable,
        default: trappable,
    },
    exports: { default: async },
});

pub use mercato::plugin::types::{Error as GuestError, Event, Request, Response, Rows, SqlValue};
pub use exports::mercato::plugin::plugin::Manifest;
