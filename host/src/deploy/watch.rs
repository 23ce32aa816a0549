//! `mercato serve --watch <dir>`: development mode. Every `.wasm` file in the
//! directory that is written after start is deployed (under the name in its
//! manifest); a refused one is logged and the running version keeps serving.
use crate::host::Host;
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

/// Watches `dir` until the host shuts down.
pub async fn watch(host: Host, dir: PathBuf) {
    tracing::info!(dir = %dir.display(), "watching for plugin changes");
    let mut seen = snapshot(&dir);
    loop {
        tokio::select! {
            _ = host.cancel.cancelled() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
        let now = snapshot(&dir);
        for (path, stamp) in &now {
            if seen.get(path) == Some(stamp) {
                continue;
            }
            let Ok(bytes) = std::fs::read(path) else { continue };
            match host.deploy(None, &bytes, None).await {
                Ok(done) => tracing::info!(file = %path.display(), plugin = %done.name, version = %done.current.version, "redeployed"),
                Err(e) => tracing::error!(file = %path.display(), error = %e, "redeploy refused; the running version keeps serving"),
            }
        }
        seen = now;
    }
}
