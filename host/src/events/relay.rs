//! The relay: delivers each source's outbox to every matching subscriber, at
//! least once and in source order, with retries, dead letters and delayed events.
//!
//! One *stream* task per (subscriber, source) pair reads the source's outbox past
//! the subscriber's cursor. It wakes when the source commits (the plugin's `head`
//! watch) and polls as a fallback. A failing event blocks only its own stream:
//! it is retried with exponential backoff and then dead-lettered, while streams
//! from other sources keep flowing. Events with a delay are moved from the
//! stream into the subscriber's `mercato_scheduled` table and delivered by the
//! subscriber's *scheduler* task when due. A *marker* task per source stamps
//! `published_at` once every subscriber has consumed an event.
use crate::cluster::Cluster;
use crate::config::EventsConfig;
use crate::metrics::Metrics;
use crate::outbox::store::mark_published;
use crate::plugin::Registry;
use crate::unit_of_work::UnitOfWork;
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Progress of one (subscriber, source) stream.
pub(super) struct Stream {
    pub(super) subscriber: Arc<str>,
    pub(super) source: Arc<str>,
    pub(super) position: watch::Sender<u64>,
    /// Fires when the host stops, or either plugin is removed.
    pub(super) life: CancellationToken,
}

/// A subscriber's delayed events as the router knows them.
pub(super) struct Schedule {
    /// When the earliest scheduled event is due (ms since the epoch), if any.
    pub(super) next_due: watch::Sender<Option<u64>>,
    /// Bumped by every insertion, so the scheduler never publishes a summary
    /// that missed a concurrent insertion.
    pub(super) inserted: std::sync::atomic::AtomicU64,
    pub(super) wake: Notify,
}

/// Delivers events between the registered plugins and tracks every stream
/// and scheduler so callers can observe and drain them; cheap to clone.
#[derive(Clone)]
pub struct Relay(Arc<Inner>);

/// What the relay's tasks share: the handles they deliver with and the
/// bookkeeping of every stream and schedule.
pub struct Inner {
    /// The running plugins: subscribers and sources.
    pub(super) registry: Arc<Registry>,
    /// Runs each delivery as a transaction of the subscriber.
    pub(super) calls: UnitOfWork,
    pub(super) metrics: Arc<Metrics>,
    pub(super) config: EventsConfig,
    /// Stops every task of the relay.
    pub(super) cancel: CancellationToken,
    pub(super) streams: Mutex<Vec<Arc<Stream>>>,
    pub(super) schedules: Mutex<HashMap<Arc<str>, Arc<Schedule>>>,
    pub(super) marked: Mutex<std::collections::HashSet<Arc<str>>>,
    pub(super) tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Notified whenever a stream, schedule or marker moves on.
    pub(super) progress: Notify,
    /// Per subscriber: deliveries hold it shared, a rebuild's switch holds it
    /// alone (see [`Relay::paused`]).
    pub(super) gates: Mutex<HashMap<Arc<str>, Arc<tokio::sync::RwLock<()>>>>,
    /// Per plugin: fires when the host stops or the plugin is removed, and
    /// ends its scheduler, marker, outbound worker and streams.
    pub(super) lifetimes: Mutex<HashMap<Arc<str>, CancellationToken>>,
    /// In a cluster: the leases each job runs under, and the wake-ups
    /// between hosts.
    pub(super) cluster: Option<Cluster>,
    /// Per plugin: rings when another host staged events (`cluster` only).
    pub(super) remote_staged: Mutex<HashMap<Arc<str>, Arc<Notify>>>,
}

impl Deref for Relay {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// A subscriber's view of one stream, for the admin API and metrics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreamStatus {
    /// Consuming plugin.
    pub subscriber: String,
    /// Producing plugin.
    pub source: String,
    /// Last outbox sequence consumed.
    pub position: u64,
    /// Source head minus position.
    pub lag: u64,
}

impl Relay {
    /// A relay between the plugins of `registry`, delivering through `calls`;
    /// its tasks stop when `cancel` fires.
    pub fn new(
        registry: Arc<Registry>,
        calls: UnitOfWork,
        metrics: Arc<Metrics>,
        config: EventsConfig,
        cancel: CancellationToken,
        cluster: Option<Cluster>,
    ) -> Self {
        Relay(Arc::new(Inner {
            cluster,
            remote_staged: Mutex::default(),
            registry,
            calls,
            metrics,
            config,
            cancel,
            streams: Mutex::default(),
            schedules: Mutex::default(),
            marked: Mutex::default(),
            tasks: Mutex::default(),
            progress: Notify::new(),
            gates: Mutex::default(),
            lifetimes: Mutex::default(),
        }))
    }

    /// Waits for every task after the cancellation token fired, then stamps
    /// `published_at` once more so the outbox state is final.
    pub async fn stopped(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("relay poisoned"));
        for task in tasks {
            let _ = task.await;
        }
        self.mark_all().await;
    }

    /// Every stream's position and lag.
    pub fn status(&self) -> Vec<StreamStatus> {
        self.streams
            .lock()
            .expect("relay poisoned")
            .iter()
            .map(|s| {
                let position = *s.position.borrow();
                let head = self
                    .registry
                    .get(&s.source)
                    .map_or(position, |p| *p.slot.head.borrow());
                StreamStatus {
                    subscriber: s.subscriber.to_string(),
                    source: s.source.to_string(),
                    position,
                    lag: head.saturating_sub(position),
                }
            })
            .collect()
    }

    pub(super) fn min_position(&self, source: &str) -> Option<u64> {
        self.streams
            .lock()
            .expect("relay poisoned")
            .iter()
            .filter(|s| &*s.source == source)
            .map(|s| *s.position.borrow())
            .min()
    }

    fn caught_up(&self) -> bool {
        self.all_numbered() && self.status().iter().all(|s| s.lag == 0)
    }

    /// True when every event committed so far has its sequence number (and
    /// is in its source's head).
    fn all_numbered(&self) -> bool {
        self.registry
            .all()
            .iter()
            .all(|p| *p.slot.numbered.borrow() >= *p.slot.staged.borrow())
    }

    /// Waits until every event committed so far has its sequence number, so
    /// each outbox head counts it; delivers nothing itself.
    pub async fn drain_numbering(&self, timeout: Duration) -> Result<(), String> {
        self.wait_for(timeout, "numbering of committed events", || {
            self.all_numbered()
        })
        .await
    }

    /// True when no delayed event due at or before `until_ms` is still waiting.
    fn scheduled_done(&self, until_ms: u64) -> bool {
        self.schedules
            .lock()
            .expect("relay poisoned")
            .values()
            .all(|s| s.next_due.borrow().is_none_or(|due| due > until_ms))
    }

    async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn() -> bool,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let progressed = self.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            if done() {
                return Ok(());
            }
            // The timeout only bounds a missed wake-up; progress normally wakes us.
            let step = Duration::from_millis(50)
                .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            if step.is_zero() {
                return Err(format!("{what} did not finish within {timeout:?}"));
            }
            let _ = tokio::time::timeout(step, progressed).await;
        }
    }

    /// Waits until every subscriber has consumed every committed event
    /// (retries and dead-lettering included; delayed events count once scheduled).
    pub async fn drain(&self, timeout: Duration) -> Result<(), String> {
        self.wait_for(timeout, "event delivery", || self.caught_up())
            .await
    }

    /// Waits until `subscriber` has consumed everything `source` committed.
    pub async fn drain_stream(
        &self,
        subscriber: &str,
        source: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        self.wait_for(timeout, "event delivery", || {
            self.status()
                .iter()
                .filter(|s| s.subscriber == subscriber && s.source == source)
                .all(|s| s.lag == 0)
        })
        .await
    }

    /// Waits until every delayed event due at or before `until_ms` (ms since
    /// the epoch) has been delivered or dead-lettered.
    pub async fn drain_scheduled(&self, until_ms: u64, timeout: Duration) -> Result<(), String> {
        self.wait_for(timeout, "delayed event delivery", || {
            self.scheduled_done(until_ms)
        })
        .await
    }

    /// Waits until no plugin has an outbound request waiting for an attempt
    /// or for its report (retries included: a request settles as delivered
    /// or dead).
    pub async fn drain_outbound(&self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let progressed = self.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            let mut outstanding = 0;
            for plugin in self.registry.all() {
                outstanding += crate::outbound::store::outstanding(&plugin.slot.db)
                    .await
                    .map_err(|e| e.to_string())?
                    .0;
            }
            if outstanding == 0 {
                return Ok(());
            }
            let step = Duration::from_millis(50)
                .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            if step.is_zero() {
                return Err(format!(
                    "{outstanding} outbound requests still pending after {timeout:?}"
                ));
            }
            let _ = tokio::time::timeout(step, progressed).await;
        }
    }

    /// Stamps `published_at` up to what every subscriber has consumed; run once
    /// more at shutdown, after the streams stopped, so the outbox state is final.
    async fn mark_all(&self) {
        for source in self.registry.all() {
            let target = self
                .min_position(&source.name)
                .unwrap_or(*source.slot.head.borrow());
            if let Err(e) = mark_published(&source.slot.db, target).await {
                tracing::warn!(plugin = %source.name, error = %e, "marking events published failed");
            }
        }
    }

    /// The gate of `subscriber`'s deliveries.
    pub(super) fn gate(&self, subscriber: &str) -> Arc<tokio::sync::RwLock<()>> {
        self.gates
            .lock()
            .expect("relay poisoned")
            .entry(subscriber.into())
            .or_default()
            .clone()
    }

    /// Runs `work` while no event is being delivered to `subscriber`: its
    /// streams and scheduler finish the delivery in hand and wait.
    pub async fn paused<T>(&self, subscriber: &str, work: impl Future<Output = T>) -> T {
        let gate = self.gate(subscriber);
        let _alone = gate.write().await;
        work.await
    }

    /// Records a newly scheduled event (so drains see it at once) and wakes the
    /// subscriber's scheduler.
    pub(super) fn scheduled(&self, subscriber: &str, due_ms: u64) {
        if let Some(schedule) = self
            .schedules
            .lock()
            .expect("relay poisoned")
            .get(subscriber)
        {
            schedule
                .inserted
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            schedule
                .next_due
                .send_modify(|next| *next = Some(next.map_or(due_ms, |d| d.min(due_ms))));
            schedule.wake.notify_one();
        }
    }
}
