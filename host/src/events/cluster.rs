//! The relay in a cluster: each job under its lease, wake-ups between hosts,
//! and every source's events published to JetStream.
use super::attempt::persist;
use super::relay::{Relay, StreamStatus};
use crate::cluster::{Published, subject_token};
use crate::outbox::store::{load_cursor, outbox_head, read_outbox};
use crate::plugin::Plugin;
use crate::storage::{Database, StorageError};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

impl Relay {
    /// Spawns `job`: at once on a host alone; in a cluster, on whichever
    /// host holds the lease `name`, fenced in `dbs`.
    pub(super) fn spawn_job<F, Fut>(
        &self,
        name: String,
        dbs: Vec<Database>,
        life: CancellationToken,
        mut job: F,
    ) -> JoinHandle<()>
    where
        F: FnMut(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        match self.cluster.clone() {
            None => tokio::spawn(job(life)),
            Some(cluster) => {
                tokio::spawn(async move { cluster.run_leased(name, dbs, life, job).await })
            }
        }
    }

    /// Every stream's position and lag as the databases have them: in a
    /// cluster, the host running a stream may be another.
    pub async fn stored_status(&self) -> Result<Vec<StreamStatus>, StorageError> {
        let pairs: Vec<(Arc<str>, Arc<str>)> = self
            .streams
            .lock()
            .expect("relay poisoned")
            .iter()
            .map(|s| (s.subscriber.clone(), s.source.clone()))
            .collect();
        let mut status = Vec::with_capacity(pairs.len());
        for (subscriber, source) in pairs {
            let (Some(sub), Some(src)) =
                (self.registry.get(&subscriber), self.registry.get(&source))
            else {
                continue;
            };
            let position = load_cursor(&sub.slot.db, &source).await?;
            let head = outbox_head(&src.slot.db).await?;
            status.push(StreamStatus {
                subscriber: subscriber.to_string(),
                source: source.to_string(),
                position,
                lag: head.saturating_sub(position),
            });
        }
        Ok(status)
    }

    /// In a cluster: brings the positions of `source`'s streams that other
    /// hosts run up to their cursors, so the marker and the lag gauges of
    /// the host holding `source` see them.
    pub(super) async fn refresh_positions(&self, source: &str) {
        if self.cluster.is_none() {
            return;
        }
        let streams: Vec<_> = self
            .streams
            .lock()
            .expect("relay poisoned")
            .iter()
            .filter(|s| &*s.source == source)
            .cloned()
            .collect();
        for stream in streams {
            let Some(subscriber) = self.registry.get(&stream.subscriber) else {
                continue;
            };
            match load_cursor(&subscriber.slot.db, source).await {
                Ok(cursor) => {
                    stream.position.send_if_modified(|p| {
                        let later = cursor > *p;
                        *p = (*p).max(cursor);
                        later
                    });
                }
                Err(e) => tracing::debug!(error = %e, "reading a cursor failed"),
            }
        }
    }

    /// Rings when another host staged events of `plugin`.
    pub(super) fn remote_staged(&self, plugin: &str) -> Arc<Notify> {
        self.remote_staged
            .lock()
            .expect("relay poisoned")
            .entry(plugin.into())
            .or_default()
            .clone()
    }

    /// Tells the other hosts that `plugin`'s head moved (after numbering).
    pub(super) async fn announce_head(&self, plugin: &str, head: u64) {
        if let Some(cluster) = &self.cluster {
            cluster.bus().notify("head", plugin, head).await;
        }
    }

    /// In a cluster: forwards the wake-ups of other hosts to this one's
    /// numberers and streams, until the host stops.
    pub async fn listen(&self) -> Result<(), String> {
        let Some(cluster) = self.cluster.clone() else {
            return Ok(());
        };
        let mut staged = cluster.bus().notifications("staged").await?;
        let mut heads = cluster.bus().notifications("head").await?;
        let relay = self.clone();
        self.tasks
            .lock()
            .expect("relay poisoned")
            .push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = relay.cancel.cancelled() => return,
                        Some((plugin, _)) = staged.next() => relay.remote_staged(&plugin).notify_one(),
                        Some((plugin, head)) = heads.next() => {
                            if let Some(p) = relay.registry.get(&plugin) {
                                p.slot.head.send_if_modified(|h| {
                                    let later = head > *h;
                                    *h = (*h).max(head);
                                    later
                                });
                            }
                        }
                        else => return,
                    }
                }
            }));
        Ok(())
    }
}

/// Tells the other hosts each time a call on this host staged events of
/// `plugin`, so the host numbering them wakes.
pub(super) async fn forward_staged(relay: Relay, plugin: Arc<Plugin>, life: CancellationToken) {
    let Some(cluster) = relay.cluster.clone() else {
        return;
    };
    let mut staged = plugin.slot.staged.subscribe();
    loop {
        tokio::select! {
            _ = life.cancelled() => return,
            changed = staged.changed() => if changed.is_err() { return },
        }
        let value = *staged.borrow_and_update();
        cluster.bus().notify("staged", &plugin.name, value).await;
    }
}

/// Publishes `source`'s numbered events to the JetStream events stream in
/// sequence order, each with the message id `<source>:<sequence>`, so a
/// republish after a crash is dropped as a duplicate.
pub(super) async fn run_publisher(relay: Relay, source: Arc<Plugin>, life: CancellationToken) {
    let Some(cluster) = relay.cluster.clone() else {
        return;
    };
    let poll = Duration::from_millis(relay.config.poll_ms);
    let mut head = source.slot.head.subscribe();
    let Some(mut through) = persist(&relay, "reading the published position", || async {
        cluster
            .published(&source.name)
            .await
            .map_err(crate::storage::StorageError::from)
    })
    .await
    else {
        return;
    };
    loop {
        let Some(batch) = persist(&relay, "reading outbox to publish", || {
            read_outbox(&source.slot.db, &source.name, through)
        })
        .await
        else {
            return;
        };
        let Some(last) = batch.last().map(|e| e.sequence) else {
            tokio::select! {
                _ = life.cancelled() => return,
                _ = head.wait_for(|h| *h > through) => {}
                _ = tokio::time::sleep(poll) => {}
            }
            continue;
        };
        let events = batch
            .iter()
            .map(|e| Published {
                subject: format!(
                    "{}.{}",
                    subject_token(&e.source),
                    subject_token(&e.event_type)
                ),
                id: format!("{}:{}", e.source, e.sequence),
                payload: serde_json::to_vec(&serde_json::json!({
                    "id": e.id,
                    "source": e.source,
                    "sequence": e.sequence,
                    "type": e.event_type,
                    "aggregate_id": e.aggregate_id,
                    "payload": e.payload,
                    "created_at": e.created_at,
                    "traceparent": e.traceparent,
                }))
                .unwrap_or_default(),
            })
            .collect();
        if let Err(e) = cluster.bus().publish(events).await {
            tracing::warn!(plugin = %source.name, error = %e, "publishing events to JetStream failed; retrying");
            tokio::select! {
                _ = life.cancelled() => return,
                _ = tokio::time::sleep(poll) => {}
            }
            continue;
        }
        if let Err(e) = cluster.set_published(&source.name, last).await {
            tracing::warn!(plugin = %source.name, error = %e, "recording the published position failed");
        }
        through = last;
        if life.is_cancelled() {
            return;
        }
    }
}
