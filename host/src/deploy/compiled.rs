//! Compiled components kept on disk beside the registry, so a restart, a
//! rollback or a redeploy of a version that once served loads machine code in
//! milliseconds instead of compiling it again (seconds for an interpreter built
//! into a component, such as a rule in Python).
//!
//! `<data_dir>/plugins/compiled/<sha256>-<engine key>.cwasm`: `sha256` names
//! the component's bytes, as in the registry; the engine key names the
//! compiler and the settings the code was made for (wasmtime's
//! `precompile_compatibility_hash`: its version, the target, the `Config`).
//! Another mercato version or engine setting looks under another name, so it
//! never even opens code made for a different engine; at open, the files of
//! other keys are deleted.
//!
//! A file is only written once its component was accepted (`keep`, called when
//! a version is activated), so the cache holds code for versions in the
//! registry and for the embedded plugins, never for a refused upload.
use super::store::write_atomically;
use crate::runtime::{Engine, LoadError};
use prometheus::IntCounterVec;
use sha2::{Digest, Sha256};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;
use wasmtime::component::Component;

/// Bytes of the seal ending each file.
const SEAL: usize = 32;

/// Where a component's code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Compiled now by Cranelift (no usable file in the cache).
    Compiled,
    /// Loaded from the cache.
    Cached,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Compiled => "compiled",
            Source::Cached => "cached",
        }
    }
}

/// Why a cached file was refused (it is deleted and the component compiled).
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("reading it: {0}")]
    Io(#[from] io::Error),
    #[error("its seal does not match its contents (a torn write or corruption)")]
    Seal,
    #[error("wasmtime refused it: {0}")]
    Incompatible(String),
}

/// The compiled-code cache of one engine.
pub struct CodeCache {
    engine: Engine,
    dir: PathBuf,
    key: String,
    compilations: IntCounterVec,
}

impl CodeCache {
    /// The cache in `dir` for `engine`'s code; deletes code kept for other
    /// engines and files left by interrupted writes. Counts each component
    /// made ready in `compilations` (label `outcome`: `compiled`, `cached`).
    pub fn open(engine: Engine, dir: PathBuf, compilations: IntCounterVec) -> CodeCache {
        for source in [Source::Compiled, Source::Cached] {
            compilations.with_label_values(&[source.as_str()]);
        }
        let cache = CodeCache {
            key: engine_key(engine.wasmtime()),
            engine,
            dir,
            compilations,
        };
        match cache.prune() {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(dir = %cache.dir.display(), removed = n, "removed compiled components of other engines")
            }
            Err(e) => {
                tracing::warn!(dir = %cache.dir.display(), error = %e, "cannot prune the compiled-component cache")
            }
        }
        cache
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{}.cwasm", self.label(sha256)))
    }

    /// What a file's seal binds its code to: the component and the engine.
    fn label(&self, sha256: &str) -> String {
        format!("{sha256}-{}", self.key)
    }

    /// The component whose bytes are `bytes` (sha256 `sha256`): from the cache
    /// when a sound file is there, else compiled. A file that cannot be used
    /// is deleted; `keep` writes a new one once the component is accepted.
    pub async fn load(&self, sha256: &str, bytes: &[u8]) -> Result<(Component, Source), LoadError> {
        let path = self.path(sha256);
        let started = Instant::now();
        let read = {
            let (engine, path, label) = (
                self.engine.wasmtime().clone(),
                path.clone(),
                self.label(sha256),
            );
            tokio::task::spawn_blocking(move || read_sealed(&engine, &path, &label)).await
        };
        match read {
            Ok(Ok(Some(component))) => {
                self.count(Source::Cached);
                tracing::debug!(%sha256, ms = started.elapsed().as_millis(), "compiled component loaded from the cache");
                return Ok((component, Source::Cached));
            }
            Ok(Ok(None)) => {}
            Ok(Err(refused)) => {
                tracing::warn!(path = %path.display(), error = %refused, "refusing a cached compiled component; compiling it again");
                if let Err(e) = std::fs::remove_file(&path)
                    && e.kind() != io::ErrorKind::NotFound
                {
                    tracing::warn!(path = %path.display(), error = %e, "cannot delete the refused file");
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the compiled-component cache aborted"),
        }
        let started = Instant::now();
        let component = self.engine.component(bytes).await?;
        self.count(Source::Compiled);
        tracing::info!(%sha256, ms = started.elapsed().as_millis(), "component compiled");
        Ok((component, Source::Compiled))
    }

    /// Writes `component`'s code (whose bytes have sha256 `sha256`) to the
    /// cache, unless it is there. The cache only saves time: a failure is
    /// logged and the next start compiles again.
    pub async fn keep(&self, sha256: &str, component: &Component) {
        let path = self.path(sha256);
        if path.exists() {
            return;
        }
        let (component, dir, label) = (component.clone(), self.dir.clone(), self.label(sha256));
        let target = path.clone();
        let written = tokio::task::spawn_blocking(move || -> io::Result<()> {
            let mut file = component.serialize().map_err(io::Error::other)?;
            let seal = seal(&label, &file);
            file.extend_from_slice(&seal);
            std::fs::create_dir_all(&dir)?;
            write_atomically(&target, &file)
        })
        .await
        .map_err(io::Error::other)
        .and_then(|written| written);
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the compiled component to the cache");
        }
    }

    fn count(&self, source: Source) {
        self.compilations
            .with_label_values(&[source.as_str()])
            .inc();
    }

    /// Deletes `.cwasm` files of other engine keys and leftover temporary
    /// files; returns how many.
    fn prune(&self) -> io::Result<usize> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let current = format!("-{}.cwasm", self.key);
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let stale =
                (name.ends_with(".cwasm") && !name.ends_with(&current)) || name.contains(".tmp-");
            if stale && entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A short, stable name for the code `engine` makes and accepts: a sha256 of
/// wasmtime's compatibility hash (engines with equal keys load each other's
/// code), 16 hex digits. `Hash` feeds it bytes in a fixed order, so the same
/// binary and settings give the same key at every start.
pub fn engine_key(engine: &wasmtime::Engine) -> String {
    struct Sha256Hasher(Sha256);
    impl std::hash::Hasher for Sha256Hasher {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            let digest = self.0.clone().finalize();
            u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
        }
    }
    let mut hasher = Sha256Hasher(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    hex::encode(&hasher.0.finalize()[..8])
}

/// The seal of a file: sha256 over its label (component and engine) and code.
///
/// wasmtime checks only the header of what it loads (format, version, engine
/// settings) and trusts the rest: a bit flipped in a code section by the disk
/// would be run as it is, and could undo the sandbox's own checks. Verifying
/// the seal reads the whole file before it is loaded, which costs tens of
/// milliseconds for the 37 MB of a Python rule, against seconds to compile it
/// (docs/operations.md has the figures); a torn write fails it too.
fn seal(label: &str, code: &[u8]) -> [u8; SEAL] {
    let mut digest = Sha256::new();
    digest.update(label.as_bytes());
    digest.update(code);
    digest.finalize().into()
}

/// The component in the cache file at `path`, or `None` when there is none.
fn read_sealed(
    engine: &wasmtime::Engine,
    path: &Path,
    label: &str,
) -> Result<Option<Component>, Refused> {
    let file = match std::fs::read(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some((code, sealed)) = file.split_last_chunk::<SEAL>() else {
        return Err(Refused::Seal);
    };
    if seal(label, code) != *sealed {
        return Err(Refused::Seal);
    }
    // SAFETY: `code` is exactly what `Component::serialize` produced for this
    // component in `keep`: the file is written only by this host, into its own
    // data dir (trusted as much as the binary and the registry beside it, which
    // hold the code it runs anyway), and its seal, checked above on the same
    // bytes that are loaded, proves it is unchanged since. wasmtime refuses,
    // with an error, code made by another version or for another `Config`.
    // The bytes are copied into wasmtime's own memory, so the file changing
    // afterwards cannot reach loaded code.
    let component = unsafe { Component::deserialize(engine, code) }
        .map_err(|e| Refused::Incompatible(format!("{e:#}")))?;
    Ok(Some(component))
}

#[cfg(test)]
mod tests;
