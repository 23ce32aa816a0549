//! Starting the relay's jobs: a stream per (subscriber, source), a scheduler
//! per subscriber, and a marker and an outbound worker per plugin, each once.
use super::cluster::{forward_staged, run_publisher};
use super::marker::run_marker;
use super::numberer::run_numberer;
use super::outbound::run_outbound;
use super::relay::{Relay, Schedule, Stream};
use super::scheduler::run_scheduler;
use super::stream::run_stream;
use std::sync::Arc;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

impl Relay {
    /// Spawns the streams, schedulers and markers the registered plugins need
    /// and that are not running yet: at start, and after a deploy brings a new
    /// plugin or new subscriptions. (A stream whose subscription was dropped
    /// keeps running and skips everything, which keeps its cursor current.)
    pub fn ensure(&self) {
        let mut tasks = Vec::new();
        let plugins = self.registry.all();
        for subscriber in &plugins {
            if subscriber.subscriptions.is_empty() {
                continue;
            }
            for source_name in subscriber.sources() {
                let Some(source) = self.registry.get(&source_name) else {
                    tracing::warn!(plugin = %subscriber.name, source = %source_name, "subscription names a plugin that is not loaded");
                    continue;
                };
                let mut streams = self.streams.lock().expect("relay poisoned");
                if streams
                    .iter()
                    .any(|s| s.subscriber == subscriber.name && s.source == source.name)
                {
                    continue;
                }
                let stream = Arc::new(Stream {
                    subscriber: subscriber.name.clone(),
                    source: source.name.clone(),
                    position: watch::Sender::new(0),
                    life: self.lifetime(&subscriber.name).child_token(),
                });
                streams.push(stream.clone());
                let (relay, name) = (self.clone(), subscriber.name.clone());
                tasks.push(self.spawn_job(
                    format!("stream:{}:{}", subscriber.name, source.name),
                    vec![subscriber.slot.db.clone()],
                    stream.life.clone(),
                    move |life| {
                        run_stream(
                            relay.clone(),
                            name.clone(),
                            source.clone(),
                            stream.clone(),
                            life,
                        )
                    },
                ));
            }
            let mut schedules = self.schedules.lock().expect("relay poisoned");
            if !schedules.contains_key(&subscriber.name) {
                let schedule = Arc::new(Schedule {
                    next_due: watch::Sender::new(None),
                    inserted: Default::default(),
                    wake: Notify::new(),
                });
                schedules.insert(subscriber.name.clone(), schedule.clone());
                let (relay, name) = (self.clone(), subscriber.name.clone());
                tasks.push(self.spawn_job(
                    format!("scheduler:{}", subscriber.name),
                    vec![subscriber.slot.db.clone()],
                    self.lifetime(&subscriber.name),
                    move |life| run_scheduler(relay.clone(), name.clone(), schedule.clone(), life),
                ));
            }
        }
        let mut marked = self.marked.lock().expect("relay poisoned");
        for source in plugins {
            if marked.insert(source.name.clone()) {
                // Every plugin gets its source-side jobs once: outbound
                // worker, numberer (PostgreSQL), marker and, in a cluster,
                // JetStream publisher; under one lease there.
                let life = self.lifetime(&source.name);
                if self.cluster.is_some() {
                    tasks.push(tokio::spawn(forward_staged(
                        self.clone(),
                        source.clone(),
                        life.clone(),
                    )));
                }
                let relay = self.clone();
                tasks.push(self.spawn_job(
                    format!("source:{}", source.name),
                    vec![source.slot.db.clone()],
                    life,
                    move |life| source_jobs(relay.clone(), source.clone(), life),
                ));
            }
        }
        self.tasks.lock().expect("relay poisoned").extend(tasks);
    }

    /// The token that ends `plugin`'s jobs: a child of the host's, replaced
    /// by a fresh one after [`Relay::retire`].
    fn lifetime(&self, plugin: &str) -> CancellationToken {
        self.lifetimes
            .lock()
            .expect("relay poisoned")
            .entry(plugin.into())
            .or_insert_with(|| self.cancel.child_token())
            .clone()
    }

    /// Ends every job of a removed `plugin`: its streams (as subscriber and
    /// as source), scheduler, marker and outbound worker stop at their next
    /// step, and a later [`Relay::ensure`] starts them afresh if it returns.
    /// Call it with the plugin's deliveries paused ([`Relay::paused`]), so
    /// none is in hand: a stream checks its token before each delivery.
    pub fn retire(&self, plugin: &str) {
        if let Some(life) = self
            .lifetimes
            .lock()
            .expect("relay poisoned")
            .remove(plugin)
        {
            life.cancel();
        }
        self.streams.lock().expect("relay poisoned").retain(|s| {
            let ended = &*s.subscriber == plugin || &*s.source == plugin;
            if ended {
                s.life.cancel();
            }
            !ended
        });
        self.schedules
            .lock()
            .expect("relay poisoned")
            .remove(plugin);
        self.marked.lock().expect("relay poisoned").remove(plugin);
    }
}

/// The jobs on `source`'s side of its streams, until `life` fires.
async fn source_jobs(relay: Relay, source: Arc<crate::plugin::Plugin>, life: CancellationToken) {
    let numberer = async {
        if source.slot.db.kind() == crate::storage::BackendKind::Postgres {
            run_numberer(relay.clone(), source.clone(), life.clone()).await;
        }
    };
    tokio::join!(
        run_outbound(relay.clone(), source.name.clone(), life.clone()),
        numberer,
        run_marker(relay.clone(), source.clone(), life.clone()),
        run_publisher(relay.clone(), source.clone(), life.clone()),
    );
}
