//! The plugin components Mercato's integration tests and benches deploy: every
//! plugin crate under `plugins/` — the shop, the example coupon rules and the
//! test fixtures of `plugins/testing/` — built for `wasm32-wasip2` by this
//! crate's build script (see `tools/plugin-build`). A dev-dependency only: the
//! `mercato` binary embeds its default plugins itself (`mercato::artifacts`).

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// The path of the built component `name` (`orders`, `orders-v2`, `hostile`…).
///
/// # Panics
///
/// When no plugin crate is called `name`.
pub fn path(name: &str) -> &'static str {
    PLUGINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)
        .unwrap_or_else(|| {
            let known: Vec<&str> = PLUGINS.iter().map(|(n, _)| *n).collect();
            panic!(
                "no plugin component named `{name}`; the built ones are {known:?} \
                 (a fixture is a cdylib crate under plugins/, plugins/testing/ or plugins/rules/)"
            )
        })
}
