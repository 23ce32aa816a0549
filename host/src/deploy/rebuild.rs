//! Rebuilding a read model by replay, blue/green: a fresh copy of its
//! database is migrated and fed every event of its sources from sequence 1
//! (`crate::events` replay) while the live copy keeps serving and following
//! new events; once the copy has caught up, the deliveries to the plugin
//! pause for a moment, the copy takes the last events, and it becomes the
//! plugin's database (the new copy number is written to
//! `data_dir/generations/`). The old copy is dropped once no call can still
//! be using it.
use super::generation;
use super::{DeployError, Deployer, PluginLoadError};
use crate::events::{ReplayError, SourceProgress};
use crate::plugin::{Plugin, Slot};
use crate::storage::StorageError;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Replay passes before the final, paused one: each pass takes what the
/// sources committed during the one before, so a few suffice.
const MAX_PASSES: usize = 20;
/// Lag at which the copy is close enough to pause the live deliveries.
const SWITCH_LAG: u64 = 200;

/// Where a rebuild stands.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RebuildStatus {
    /// The plugin.
    pub plugin: String,
    /// `running`, `switched` or `failed`.
    pub state: &'static str,
    /// The copy being built (serving, once switched).
    pub generation: u64,
    /// Per source: events replayed, position, head, lag.
    pub sources: Vec<SourceProgress>,
    /// Estimated seconds until the copy has caught up, from the rate so far.
    pub eta_seconds: Option<u64>,
    /// When it started.
    pub started_at: String,
    /// When it switched or failed.
    pub finished_at: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl RebuildStatus {
    /// True while it runs.
    pub fn running(&self) -> bool {
        self.state == "running"
    }
}

impl Deployer {
    /// Starts rebuilding read model `name` in the background; its progress is
    /// [`Deployer::rebuild_status`].
    pub async fn start_rebuild(&self, name: &str) -> Result<RebuildStatus, DeployError> {
        let live = self
            .registry
            .get(name)
            .ok_or_else(|| DeployError::Unknown(name.to_owned()))?;
        if !live.read_model {
            return Err(DeployError::NotAReadModel(name.to_owned()));
        }
        // Refused at once rather than building a partial view.
        self.relay.check_history(&live).await.map_err(|e| match e {
            ReplayError::HistoryPruned { .. } => DeployError::HistoryPruned(e.to_string()),
            other => DeployError::Registry(other.to_string()),
        })?;
        let generation = generation::current(&self.config.data_dir, name)
            .map_err(|e| DeployError::Registry(e.to_string()))?
            + 1;
        let status = RebuildStatus {
            plugin: name.to_owned(),
            state: "running",
            generation,
            sources: Vec::new(),
            eta_seconds: None,
            started_at: crate::clock::now_rfc3339(),
            finished_at: None,
            error: None,
        };
        {
            let mut rebuilds = self.rebuilds.lock().expect("rebuilds poisoned");
            if rebuilds.get(name).is_some_and(|s| s.borrow().running()) {
                return Err(DeployError::RebuildRunning(name.to_owned()));
            }
            rebuilds.insert(name.to_owned(), watch::Sender::new(status.clone()));
        }
        let deployer = self.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            let outcome = deployer.rebuild(&live, generation).await;
            deployer.update(&name, |s| {
                s.finished_at = Some(crate::clock::now_rfc3339());
                match &outcome {
                    Ok(()) => {
                        s.state = "switched";
                        s.eta_seconds = Some(0);
                    }
                    Err(e) => {
                        s.state = "failed";
                        s.error = Some(e.to_string());
                    }
                }
            });
            match outcome {
                Ok(()) => {
                    tracing::info!(plugin = %name, generation, "read model rebuilt and switched")
                }
                Err(e) => {
                    tracing::error!(plugin = %name, error = %e, "rebuild failed; the live copy keeps serving")
                }
            }
        });
        Ok(status)
    }

    /// The last or current rebuild of `name`.
    pub fn rebuild_status(&self, name: &str) -> Option<RebuildStatus> {
        self.rebuilds
            .lock()
            .expect("rebuilds poisoned")
            .get(name)
            .map(|s| s.borrow().clone())
    }

    /// Waits until the rebuild of `name` has switched or failed.
    pub async fn rebuild_finished(&self, name: &str) -> Option<RebuildStatus> {
        let mut status = self
            .rebuilds
            .lock()
            .expect("rebuilds poisoned")
            .get(name)?
            .subscribe();
        let done = status.wait_for(|s| !s.running()).await.ok()?.clone();
        Some(done)
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut RebuildStatus)) {
        if let Some(s) = self.rebuilds.lock().expect("rebuilds poisoned").get(name) {
            s.send_modify(change);
        }
    }

    async fn rebuild(&self, live: &Arc<Plugin>, generation: u64) -> Result<(), RebuildError> {
        let name = live.name.to_string();
        self.relay.check_history(live).await?;
        let copy = self.open_copy(live, generation).await?;
        let started = Instant::now();
        let mut progress = Vec::new();
        for _ in 0..MAX_PASSES {
            self.relay
                .replay(&copy, &mut progress, |p| self.report(&name, p, started))
                .await?;
            let lag: u64 = self.lag(&mut progress);
            self.report(&name, &progress, started);
            if lag <= SWITCH_LAG {
                break;
            }
        }
        // One deploy or switch at a time; a deploy since the start would make
        // the copy another version's.
        let _deploying = self.deploying.lock().await;
        let current = self
            .registry
            .get(&name)
            .ok_or_else(|| RebuildError::Gone(name.clone()))?;
        if current.sha256 != live.sha256 {
            return Err(RebuildError::Redeployed(name));
        }
        let old = current.slot.clone();
        self.relay
            .paused(&name, async {
                self.relay
                    .replay(&copy, &mut progress, |p| self.report(&name, p, started))
                    .await?;
                generation::set(&self.config.data_dir, &name, generation)
                    .map_err(|e| RebuildError::Pointer(e.to_string()))?;
                self.registry.put(copy.clone());
                Ok::<_, RebuildError>(())
            })
            .await?;
        self.report(&name, &progress, started);
        self.retire(&name, old, generation - 1);
        Ok(())
    }

    /// A fresh, migrated copy of `live`'s database as a plugin that does not
    /// serve yet.
    async fn open_copy(
        &self,
        live: &Arc<Plugin>,
        generation: u64,
    ) -> Result<Arc<Plugin>, RebuildError> {
        let name = live.name.to_string();
        let store = generation::store_name(&name, generation);
        let storage = self.config.storage_for(&name);
        // A copy left by a rebuild that failed starts over from nothing.
        destroy(storage, &self.config.data_dir, &store)
            .await
            .map_err(|e| RebuildError::Storage(StorageError::Setup(e)))?;
        let db = storage
            .open(&store, &self.config.data_dir, live.limits.query_bytes())
            .await?;
        crate::migrate::run_within(
            &name,
            &db,
            &live.compiled.manifest.migrations,
            crate::migrate::Mode::Forward,
            Duration::from_millis(self.config.migration_deadline_ms),
        )
        .await
        .map_err(|e| RebuildError::Load(e.into()))?;
        Ok(Arc::new(Plugin {
            name: live.name.clone(),
            version: live.version.clone(),
            sha256: live.sha256.clone(),
            subscriptions: live.subscriptions.clone(),
            openapi: live.openapi.clone(),
            read_model: true,
            limits: live.limits,
            compiled: live.compiled.clone(),
            outbound: live.outbound.clone(),
            slot: Arc::new(Slot::new(db, 0)),
        }))
    }

    /// The copy's total lag, with each source's head read again.
    fn lag(&self, progress: &mut [SourceProgress]) -> u64 {
        let mut total = 0;
        for p in progress.iter_mut() {
            if let Some(source) = self.registry.get(&p.source) {
                p.head = *source.slot.head.borrow();
                p.lag = p.head.saturating_sub(p.position);
            }
            total += p.lag;
        }
        total
    }

    fn report(&self, name: &str, progress: &[SourceProgress], started: Instant) {
        let replayed: u64 = progress.iter().map(|p| p.replayed).sum();
        let lag: u64 = progress.iter().map(|p| p.lag).sum();
        let elapsed = started.elapsed().as_secs_f64();
        let eta = (replayed > 0 && elapsed > 0.0)
            .then(|| (lag as f64 / (replayed as f64 / elapsed)).ceil() as u64);
        self.update(name, |s| {
            s.sources = progress.to_vec();
            s.eta_seconds = eta;
        });
    }

    /// Drops the copy that served before, once no call can still be on it:
    /// after the plugin's deadline (a call that started before the switch
    /// ends by then), with a second to spare.
    fn retire(&self, name: &str, old: Arc<Slot>, generation: u64) {
        let grace = self
            .registry
            .get(name)
            .map_or(Duration::from_secs(1), |p| p.limits.deadline())
            + Duration::from_secs(1);
        let store = generation::store_name(name, generation);
        let storage = self.config.storage_for(name).clone();
        let data_dir = self.config.data_dir.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            drop(old);
            let dropped = destroy(&storage, &data_dir, &store).await;
            match dropped {
                Ok(()) => {
                    tracing::info!(plugin = %name, copy = %store, "old copy of the read model dropped")
                }
                Err(e) => {
                    tracing::warn!(plugin = %name, copy = %store, error = %e, "dropping the old copy failed; remove it by hand")
                }
            }
        });
    }
}

/// Removes copy `store` of a database: its SQLite files, or its PostgreSQL
/// schemas and roles. Nothing there is not an error.
async fn destroy(
    storage: &crate::storage::StorageConfig,
    data_dir: &std::path::Path,
    store: &str,
) -> Result<(), String> {
    match storage.backend {
        crate::storage::BackendKind::Sqlite => {
            remove_sqlite_files(&data_dir.join(format!("{store}.db")))
        }
        crate::storage::BackendKind::Postgres => {
            let url = storage.url.clone().unwrap_or_default();
            crate::storage::postgres::PgDb::drop_schema(&url, &storage.namespace, store)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

fn remove_sqlite_files(path: &std::path::Path) -> Result<(), String> {
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", file.display())),
        }
    }
    Ok(())
}

/// Why a rebuild failed; the live copy serves on.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The replay stopped.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The copy's database failed.
    #[error("the new copy: {0}")]
    Storage(#[from] StorageError),
    /// Its migrations failed.
    #[error(transparent)]
    Load(#[from] PluginLoadError),
    /// The plugin was removed meanwhile.
    #[error("plugin `{0}` is no longer loaded")]
    Gone(String),
    /// A deploy switched the plugin meanwhile.
    #[error("plugin `{0}` was deployed during the rebuild; start it again")]
    Redeployed(String),
    /// The copy number could not be written.
    #[error("recording the new copy: {0}")]
    Pointer(String),
}
