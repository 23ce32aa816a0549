//! Builds every plugin component under `plugins/` (the shop, the example rules
//! and the test fixtures) and generates `plugins.rs` with their paths.

fn main() {
    let names = mercato_plugin_build::all();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    mercato_plugin_build::write_table(
        "plugins.rs",
        "/// Every plugin component built from `plugins/`: (name, path).\n\
         pub const PLUGINS: &[(&str, &str)] = &[",
        &mercato_plugin_build::build(&names),
        str::to_owned,
    );
}
