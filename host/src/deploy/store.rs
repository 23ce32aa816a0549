//! The durable registry: component bytes stored content-addressed
//! (`<data_dir>/plugins/<sha256>.wasm`) and each plugin's version stack in
//! `<data_dir>/plugins/deployments.json` (last entry = the version serving);
//! their compiled code in `<data_dir>/plugins/compiled/` (`compiled.rs`).
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// One deployed version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Manifest version.
    pub version: String,
    /// sha256 of the component, hex.
    pub sha256: String,
    /// When it became current, RFC 3339.
    pub deployed_at: String,
}

/// The versions of one plugin, oldest first; the last one serves.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    /// Deploy stack.
    pub stack: Vec<Record>,
}

/// Every plugin's history.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Deployments {
    /// By plugin name.
    pub plugins: BTreeMap<String, History>,
    /// Plugins and rules removed, by name: not loaded at start (an embedded
    /// one neither) until deployed again.
    #[serde(default)]
    pub removed: BTreeMap<String, Removal>,
}

/// A plugin or rule taken out of service. Its data stays where it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    /// The version that served until then.
    pub version: String,
    /// Its component's sha256.
    pub sha256: String,
    /// When, RFC 3339.
    pub removed_at: String,
    /// Where its data is kept: a SQLite file or a PostgreSQL schema name.
    pub archived_as: String,
}

/// Files under `<data_dir>/plugins`.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Store {
            dir: data_dir.join("plugins"),
        }
    }

    /// Where compiled components are kept (`compiled.rs`).
    pub fn compiled_dir(&self) -> PathBuf {
        self.dir.join("compiled")
    }

    fn artifact(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.wasm"))
    }

    /// Keeps `bytes` under their hash (once).
    pub fn put(&self, sha256: &str, bytes: &[u8]) -> io::Result<()> {
        let path = self.artifact(sha256);
        if path.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)?;
        write_atomically(&path, bytes)
    }

    /// The bytes stored under `sha256`.
    pub fn get(&self, sha256: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.artifact(sha256))
    }

    /// The deployment records (empty before the first deploy).
    pub fn deployments(&self) -> io::Result<Deployments> {
        match std::fs::read(self.dir.join("deployments.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Deployments::default()),
            Err(e) => Err(e),
        }
    }

    /// Replaces the deployment records; a crash leaves the old or the new file.
    pub fn save(&self, deployments: &Deployments) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let json = serde_json::to_vec_pretty(deployments).map_err(io::Error::other)?;
        write_atomically(&self.dir.join("deployments.json"), &json)
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new
/// one, never a part: a temporary file beside it (`<stem>.tmp-<id>`), synced,
/// then renamed over it.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_and_records_survive_a_reopen() {
        let dir =
            std::env::temp_dir().join(format!("mercato-store-{}", uuid::Uuid::new_v4().simple()));
        let store = Store::new(&dir);
        store.put("abc", b"component").unwrap();
        let mut deployments = Deployments::default();
        deployments
            .plugins
            .entry("orders".into())
            .or_default()
            .stack
            .push(Record {
                version: "2.0.0".into(),
                sha256: "abc".into(),
                deployed_at: "2026-01-01T00:00:00.000Z".into(),
            });
        store.save(&deployments).unwrap();
        let reopened = Store::new(&dir);
        assert_eq!(reopened.get("abc").unwrap(), b"component");
        assert_eq!(
            reopened.deployments().unwrap().plugins["orders"].stack[0].version,
            "2.0.0"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
