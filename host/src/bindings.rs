//! The only `bindgen!`s in the codebase: Rust types and traits for `wit/`.
//! Every capability module implements the generated `Host` traits.
//!
//! Two worlds, two sets of bindings: `domain` (the shop's bounded contexts) and
//! `coupon-rule` (third-party rules, which import nothing of ours), plus the
//! optional `rule-config` export of `coupon-rule-with-config`. The rule
//! bindings reuse the domain bindings' `rule-types`, so a cart built for the
//! `rules` import is the very value passed to a rule's `evaluate`.
wasmtime::component::bindgen!({
    world: "domain",
    path: "../wit",
    imports: {
        "mercato:plugin/storage": async | trappable,
        "mercato:plugin/outbox": async | trappable,
        "mercato:plugin/rules": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    additional_derives: [PartialEq],
});

/// Bindings for `world coupon-rule`.
pub mod rule {
    wasmtime::component::bindgen!({
        world: "coupon-rule",
        path: "../wit",
        exports: { default: async },
        with: {
            "mercato:plugin/rule-types": super::mercato::plugin::rule_types,
        },
    });
}

/// Bindings for `world coupon-rule-with-config`, for its `rule-config` export
/// only: a rule may lack it, so the host looks it up itself
/// ([`crate::rules::RuleWorld`]) rather than through a `Pre` that requires it.
pub mod rule_config {
    wasmtime::component::bindgen!({
        world: "coupon-rule-with-config",
        path: "../wit",
        exports: { default: async },
        with: {
            "mercato:plugin/rule-types": super::mercato::plugin::rule_types,
        },
    });
}

pub use self::exports::mercato::plugin::plugin::Manifest;
pub use self::mercato::plugin::rule_types::{
    Adjustment, Cart, CartLine, LineDiscount, RuleManifest,
};
pub use self::mercato::plugin::types::{
    Error as GuestError, Event, Request, Response, Rows, SqlValue,
};
