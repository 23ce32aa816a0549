//! Which copy of a plugin's database serves. A rebuilt read model lives in a
//! new copy (`<name>--r<n>`: a file `<name>--r<n>.db`, or schema
//! `<namespace><name>__r<n>`), and the number of the copy that serves is kept
//! in `data_dir/generations/<name>`, written atomically at the switch. No file:
//! copy 0, stored under the plugin's own name as always. Plugin names may not
//! contain `--`, so no plugin can own a copy's name.
use std::path::{Path, PathBuf};

fn pointer(data_dir: &Path, plugin: &str) -> PathBuf {
    data_dir.join("generations").join(plugin)
}

/// The copy of `plugin`'s database that serves.
pub fn current(data_dir: &Path, plugin: &str) -> std::io::Result<u64> {
    match std::fs::read_to_string(pointer(data_dir, plugin)) {
        Ok(text) => text.trim().parse().map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", pointer(data_dir, plugin).display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Makes copy `generation` the one that serves (write a temporary file, then
/// rename it over the pointer: a crash leaves the old or the new pointer).
pub fn set(data_dir: &Path, plugin: &str, generation: u64) -> std::io::Result<()> {
    let path = pointer(data_dir, plugin);
    std::fs::create_dir_all(path.parent().expect("the pointer has a folder"))?;
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, generation.to_string())?;
    std::fs::rename(&temporary, &path)
}

/// The name copy `generation` of `plugin`'s database is stored under.
pub fn store_name(plugin: &str, generation: u64) -> String {
    if generation == 0 {
        plugin.to_owned()
    } else {
        format!("{plugin}--r{generation}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pointer_starts_at_zero_and_moves_atomically() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(current(dir.path(), "search").unwrap(), 0);
        set(dir.path(), "search", 2).unwrap();
        assert_eq!(current(dir.path(), "search").unwrap(), 2);
        assert_eq!(current(dir.path(), "orders").unwrap(), 0);
        assert_eq!(store_name("search", 0), "search");
        assert_eq!(store_name("search", 2), "search--r2");
    }
}
