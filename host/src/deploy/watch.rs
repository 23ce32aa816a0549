//! `mercato serve --watch <dir>`: development mode. Every `.wasm` file in the
//! directory that is written after start is deployed (under the name in its
//! manifest); a refused one is logged and the running version keeps serving.
use super::Deployer;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

const POLL: Duration = Duration::from_millis(300);

fn snapshot(dir: &PathBuf) -> HashMap<PathBuf, (SystemTime, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wasm"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((e.path(), (meta.modified().ok()?, meta.len())))
        })
        .collect()
}

/// Watches a directory; files present when it is created are the baseline.
pub struct Watcher {
    dir: PathBuf,
    seen: HashMap<PathBuf, (SystemTime, u64)>,
}

impl Watcher {
    /// Takes the baseline of `dir` now.
    pub fn new(dir: PathBuf) -> Self {
        let seen = snapshot(&dir);
        Watcher { dir, seen }
    }

    /// Deploys changed components until the host shuts down.
    pub async fn run(mut self, deployer: Deployer) {
        tracing::info!(dir = %self.dir.display(), "watching for plugin changes");
        loop {
            tokio::select! {
                _ = deployer.cancel.cancelled() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
            let now = snapshot(&self.dir);
            for (path, stamp) in &now {
                if self.seen.get(path) == Some(stamp) {
                    continue;
                }
                let Ok(bytes) = std::fs::read(path) else {
                    continue;
                };
                match deployer.deploy(None, &bytes, None).await {
                    Ok(done) => {
                        tracing::info!(file = %path.display(), plugin = %done.name, version = %done.current.version, "redeployed")
                    }
                    Err(e) => {
                        tracing::error!(file = %path.display(), error = %e, "redeploy refused; the running version keeps serving")
                    }
                }
            }
            self.seen = now;
        }
    }
}

/// Watches `dir` until the host shuts down (`mercato serve --watch`).
pub async fn watch(deployer: Deployer, dir: PathBuf) {
    Watcher::new(dir).run(deployer).await;
}
