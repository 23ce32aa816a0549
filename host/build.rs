//! Builds the plugin components (`plugins/`) for wasm32-wasip2 with a nested
//! cargo (same workspace, `plugin` profile) and its own target dir, reruns exactly when a plugin source changes
//! (from cargo's `.d` files), and generates `artifacts.rs` with their paths and
//! the embedded default plugins — the pattern of wasmtime's
//! `crates/test-programs/artifacts/build.rs`.
use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// Plugin crates under `plugins/` built into components.
const PLUGINS: &[&str] = &[
    "products",
    "orders",
    "inventory",
    "payments",
    "coupons",
    "notes",
    "audit",
    "hostile",
    // The no-op plugin the benchmark harness (`host/benches/`) calls.
    "noop",
    // Variants deployed over a running plugin by the hot-swap tests.
    "orders-v2",
    "audit-trap",
    "notes-destructive",
    "wrong-world",
    "forbidden-import",
    // Coupon rules (`plugins/rules/`).
    "tiered-spend",
    "buy-x-get-y",
    // Rule variants for the rule tests.
    "rule-hostile",
    "rule-forbidden-import",
    "rule-flat-v1",
    "rule-flat-v2",
];

/// Plugins compiled into the `mercato` binary and loaded by `mercato serve`.
const EMBEDDED: &[&str] = &[
    "products",
    "orders",
    "inventory",
    "payments",
    "coupons",
    // The example coupon rules, so rule coupons work out of the box.
    "tiered-spend",
    "buy-x-get-y",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let plugins_dir = root.join("plugins");
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"))
        .join("plugins");

    ensure_target(&root);
    let crates = plugin_crates(&plugins_dir);
    let mut cargo = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .args([
            "build",
            "--profile",
            "plugin",
            "--target",
            TARGET,
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"));
    for (name, _) in &crates {
        cargo.args(["-p", name]);
    }
    // The outer build's flags and wrappers (clippy-driver, coverage flags…) are
    // for the host target, not for the guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MAKEFLAGS",
    ] {
        cargo.env_remove(var);
    }
    cargo.env("CARGO_TARGET_DIR", &target_dir);
    let status = cargo.status().expect("running cargo for the plugins");
    assert!(
        status.success(),
        "building the plugin components failed (see the output above)"
    );

    for input in [
        root.join("Cargo.toml"),
        root.join("Cargo.lock"),
        root.join("wit"),
    ] {
        println!("cargo:rerun-if-changed={}", input.display());
    }

    let out_dir = target_dir.join(TARGET).join("plugin");
    let mut generated =
        String::from("/// Every plugin component built from `plugins/`: (name, path).\n");
    generated.push_str("pub const PLUGINS: &[(&str, &str)] = &[\n");
    let mut embedded = String::from(
        "/// The default plugins compiled into the binary: (name, component bytes).\n\
         pub const EMBEDDED: &[(&str, &[u8])] = &[\n",
    );
    for (name, dir) in &crates {
        let file = name.replace('-', "_");
        let wasm = out_dir.join(format!("{file}.wasm"));
        assert!(wasm.exists(), "expected {} after the build", wasm.display());
        rerun_from_dep_file(&out_dir.join(format!("{file}.d")));
        println!("cargo:rerun-if-changed={}", dir.display());
        writeln!(
            generated,
            "    ({name:?}, {:?}),",
            wasm.display().to_string()
        )
        .unwrap();
        if EMBEDDED.contains(&name.as_str()) {
            writeln!(
                embedded,
                "    ({name:?}, include_bytes!({:?})),",
                wasm.display().to_string()
            )
            .unwrap();
        }
    }
    generated.push_str("];\n\n");
    embedded.push_str("];\n\n");
    generated.push_str(&embedded);
    generated.push_str(
        "/// The path of the built component `name`.\n\
         pub fn path(name: &str) -> &'static str {\n    \
             PLUGINS.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)\n        \
             .unwrap_or_else(|| panic!(\"no plugin component named {name}\"))\n}\n",
    );
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("artifacts.rs");
    std::fs::write(out, generated).unwrap();
}

/// Makes sure the wasm target is installed: with rustup when it is missing (so a
/// fresh machine needs only rustup), else fails with the fix.
fn ensure_target(root: &Path) {
    if target_installed() {
        return;
    }
    let offline = root.join("../shared/toolchain/ensure-wasm-target");
    let installed = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|s| s.success())
        || (offline.exists() && Command::new(&offline).status().is_ok_and(|s| s.success()));
    assert!(
        installed && target_installed(),
        "the {TARGET} target is not installed and could not be added; run `rustup target add {TARGET}`"
    );
}

fn target_installed() -> bool {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    sysroot
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .exists()
}

/// The listed plugin crates: `plugins/<name>/`, `plugins/testing/<name>/` or
/// `plugins/rules/<name>/`.
fn plugin_crates(plugins_dir: &Path) -> Vec<(String, PathBuf)> {
    PLUGINS
        .iter()
        .map(|name| {
            let dir = [
                plugins_dir.join(name),
                plugins_dir.join("testing").join(name),
                plugins_dir.join("rules").join(name),
            ]
            .into_iter()
            .find(|d| d.join("Cargo.toml").exists())
            .unwrap_or_else(|| {
                panic!(
                    "plugin crate {name} not found under {}",
                    plugins_dir.display()
                )
            });
            (name.to_string(), dir)
        })
        .collect()
}

/// Emits rerun-if-changed for every source cargo recorded in a `.d` file.
fn rerun_from_dep_file(path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let Some((_, deps)) = text.split_once(": ") else {
        return;
    };
    let mut current = String::new();
    let mut chars = deps.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                current.push(' ');
                chars.next();
            }
            ' ' | '\n' => {
                if !current.is_empty() {
                    println!("cargo:rerun-if-changed={current}");
                    current.clear();
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        println!("cargo:rerun-if-changed={current}");
    }
}
