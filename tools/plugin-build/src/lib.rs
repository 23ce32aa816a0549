//! Builds Mercato's plugin components (`plugins/`) for `wasm32-wasip2`, for the
//! build scripts that need them: `host/build.rs` (the default plugins embedded in
//! the `mercato` binary) and `tests/artifacts/build.rs` (every plugin the tests
//! and benches deploy).
//!
//! The build is a nested cargo over the same workspace with the `plugin` profile
//! and one target dir for every caller, `$CARGO_TARGET_DIR/plugins` (default
//! `target/plugins`): a component is built once whichever build script asks for
//! it first, and cargo's lock on that directory serialises the two. Build
//! scripts are told to rerun exactly when a source cargo recorded in a
//! component's `.d` dep-info file changes — the pattern of wasmtime's
//! `crates/test-programs/artifacts/build.rs`.
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target plugins are built for; it emits components directly.
pub const TARGET: &str = "wasm32-wasip2";

/// Where plugin crates live, relative to `plugins/`: the shop at the top, test
/// fixtures in `testing/`, coupon rules in `rules/`.
const PLUGIN_DIRS: &[&str] = &["", "testing", "rules"];

/// A built plugin component.
pub struct Component {
    /// The plugin crate's name (`orders`, `orders-v2`…).
    pub name: String,
    /// The absolute path of its `.wasm` file.
    pub wasm: PathBuf,
}

/// The workspace this crate belongs to (`tools/plugin-build/../..`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tools/plugin-build sits two levels below the workspace root")
        .to_path_buf()
}

/// Every plugin crate: a `cdylib` crate directly under `plugins/`,
/// `plugins/testing/` or `plugins/rules/`, named after its directory. Sorted by
/// name. The calling build script reruns when a crate is added to those folders.
pub fn all() -> Vec<String> {
    let plugins = workspace_root().join("plugins");
    let mut names: Vec<String> = plugin_crates(&plugins)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    names.sort();
    // `plugins/` itself would take in a stray `plugins/target`; a new top-level
    // plugin is a new workspace member, so Cargo.toml changes (see `build`).
    for dir in &PLUGIN_DIRS[1..] {
        println!("cargo:rerun-if-changed={}", plugins.join(dir).display());
    }
    names
}

/// Builds the plugin crates `names` into components (in one nested cargo) and
/// tells cargo to rerun the calling build script when one of their sources
/// changes. Panics when a name is not a plugin crate or the build fails.
pub fn build(names: &[&str]) -> Vec<Component> {
    let root = workspace_root();
    let crates = plugin_crates(&root.join("plugins"));
    let dirs: Vec<&Path> = names
        .iter()
        .map(|name| {
            crates
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, dir)| dir.as_path())
                .unwrap_or_else(|| {
                    panic!(
                        "no plugin crate {name} under plugins/, plugins/testing/ or plugins/rules/"
                    )
                })
        })
        .collect();

    ensure_target(&root);
    let target_dir = target_dir(&root);
    let mut cargo = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .args(["build", "--profile", "plugin", "--target", TARGET])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"));
    for name in names {
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
    names
        .iter()
        .zip(dirs)
        .map(|(name, dir)| {
            let file = name.replace('-', "_");
            let wasm = out_dir.join(format!("{file}.wasm"));
            assert!(wasm.exists(), "expected {} after the build", wasm.display());
            rerun_from_dep_file(&out_dir.join(format!("{file}.d")));
            println!("cargo:rerun-if-changed={}", dir.display());
            Component {
                name: name.to_string(),
                wasm,
            }
        })
        .collect()
}

/// Writes `$OUT_DIR/{file}`, for an `include!`: `header` (a doc comment and
/// `pub const NAME: &[(&str, T)] = &[`), one `(name, value)` row per component,
/// where `value` turns the quoted path of its `.wasm` into the `T` expression,
/// and the closing `];`.
pub fn write_table(
    file: &str,
    header: &str,
    components: &[Component],
    value: impl Fn(&str) -> String,
) {
    let mut table = format!("{header}\n");
    for component in components {
        let path = format!("{:?}", component.wasm.display().to_string());
        table.push_str(&format!("    ({:?}, {}),\n", component.name, value(&path)));
    }
    table.push_str("];\n");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR: call from a build script"));
    std::fs::write(out.join(file), table).expect("writing the generated table");
}

/// The nested build's target dir: `plugins/` under the outer one.
fn target_dir(root: &Path) -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"))
        .join("plugins")
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

/// The plugin crates (name, directory): every directory under one of
/// [`PLUGIN_DIRS`] whose `Cargo.toml` builds a `cdylib`.
fn plugin_crates(plugins_dir: &Path) -> Vec<(String, PathBuf)> {
    PLUGIN_DIRS
        .iter()
        .filter_map(|dir| std::fs::read_dir(plugins_dir.join(dir)).ok())
        .flatten()
        .filter_map(|entry| {
            let dir = entry.ok()?.path();
            let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
            let cdylib = manifest.lines().any(|line| {
                line.trim_start().starts_with("crate-type") && line.contains("\"cdylib\"")
            });
            let name = dir.file_name()?.to_str()?.to_owned();
            cdylib.then_some((name, dir))
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
