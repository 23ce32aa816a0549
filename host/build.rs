//! Builds the default plugins the `mercato` binary embeds (and `mercato serve`
//! loads) and generates `artifacts.rs` with their bytes. Only these: the test
//! fixtures are built by the `mercato-test-artifacts` dev-dependency
//! (`tests/artifacts`). Both use `tools/plugin-build`, so they share one nested
//! target dir and a component is built once.

/// Plugins compiled into the `mercato` binary and loaded by `mercato serve`.
const EMBEDDED: &[&str] = &[
    "products",
    "orders",
    "inventory",
    "payments",
    "coupons",
    "shipping",
    "checkout",
    "notifications",
    "search",
    // The example coupon rules, so rule coupons work out of the box.
    "tiered-spend",
    "buy-x-get-y",
];

fn main() {
    mercato_plugin_build::write_table(
        "artifacts.rs",
        "/// The default plugins compiled into the binary: (name, component bytes).\n\
         pub const EMBEDDED: &[(&str, &[u8])] = &[",
        &mercato_plugin_build::build(EMBEDDED),
        |path| format!("include_bytes!({path})"),
    );
}
