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
    additional_derives: [PartialEq],
});

pub use self::exports::mercato::plugin::plugin::Manifest;
pub use self::mercato::plugin::types::{
    Error as GuestError, Event, Request, Response, Rows, SqlValue,
};
