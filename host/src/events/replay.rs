//! Replaying a read model's sources into a fresh copy of its database (the
//! rebuild, `crate::deploy::rebuild`): the same deliveries the streams make,
//! from sequence 1 of every source's retained outbox, into a plugin that is
//! not serving yet. Each event's effect commits with the copy's cursor, so a
//! replay interrupted and started again goes on where it was.
use super::relay::Relay;
use crate::outbox::store::{advance_cursor, dead_letter, load_cursor, read_outbox, schedule};
use crate::outbox::{Delivery, OutboxEvent};
use crate::plugin::Plugin;
use crate::storage::StorageError;
use crate::unit_of_work::EventOutcome;
use std::sync::Arc;

/// How far the replay of one source has come.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceProgress {
    /// The source plugin.
    pub source: String,
    /// Events of it handled by the copy.
    pub replayed: u64,
    /// The copy's cursor.
    pub position: u64,
    /// The source's outbox head when last looked at.
    pub head: u64,
    /// `head - position`.
    pub lag: u64,
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A source's outbox no longer starts at sequence 1: a replay would build
    /// a partial view.
    #[error(
        "the outbox of `{plugin}` starts at sequence {first}: events 1 to {} were pruned, so a rebuild would miss them",
        first - 1
    )]
    HistoryPruned {
        /// The source.
        plugin: String,
        /// Its first retained sequence.
        first: u64,
    },
    /// A database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The host is stopping.
    #[error("the host is stopping")]
    Stopped,
}

impl Relay {
    /// Checks that every source of `subscriber` still holds its whole history.
    pub async fn check_history(&self, subscriber: &Plugin) -> Result<(), ReplayError> {
        for name in subscriber.sources() {
            let Some(source) = self.registry.get(&name) else {
                continue;
            };
            if let Some(first) = crate::outbox::store::first_sequence(&source.slot.db).await?
                && first > 1
            {
                return Err(ReplayError::HistoryPruned {
                    plugin: name,
                    first,
                });
            }
        }
        Ok(())
    }

    /// Delivers to `copy` everything its sources committed up to their heads
    /// as read at the start, updating `progress` (one entry per source) after
    /// every batch. Failing events are retried and dead-lettered into the
    /// copy, as the live streams would.
    pub async fn replay(
        &self,
        copy: &Arc<Plugin>,
        progress: &mut Vec<SourceProgress>,
        mut report: impl FnMut(&[SourceProgress]),
    ) -> Result<(), ReplayError> {
        for name in copy.sources() {
            let Some(source) = self.registry.get(&name) else {
                continue;
            };
            let index = match progress.iter().position(|p| p.source == name) {
                Some(i) => i,
                None => {
                    progress.push(SourceProgress {
                        source: name.clone(),
                        ..SourceProgress::default()
                    });
                    progress.len() - 1
                }
            };
            let head = *source.slot.head.borrow();
            let mut position = load_cursor(&copy.slot.db, &name).await?;
            progress[index].head = head;
            progress[index].position = position;
            progress[index].lag = head.saturating_sub(position);
            while position < head {
                let batch = read_outbox(&source.slot.db, &source.name, position).await?;
                if batch.is_empty() {
                    break;
                }
                for event in batch {
                    if copy.subscribes_to(&name, &event.event_type) {
                        self.replay_one(copy, &event).await?;
                        progress[index].replayed += 1;
                        self.metrics
                            .rebuild_replayed
                            .with_label_values(&[&*copy.name, source.name.as_ref()])
                            .inc();
                    }
                    position = event.sequence;
                }
                advance_cursor(&copy.slot.db, &name, position).await?;
                progress[index].position = position;
                progress[index].lag = head.saturating_sub(position);
                self.metrics
                    .rebuild_lag
                    .with_label_values(&[&*copy.name, source.name.as_ref()])
                    .set(i64::try_from(progress[index].lag).unwrap_or(i64::MAX));
                report(progress);
            }
        }
        Ok(())
    }

    /// One event into the copy: scheduled if delayed, else handled with the
    /// relay's retries, dead-lettered after the last.
    async fn replay_one(&self, copy: &Arc<Plugin>, event: &OutboxEvent) -> Result<(), ReplayError> {
        if let Some(delay) = event.deliver_after_ms {
            let due = crate::clock::parse_millis(&event.created_at)
                .unwrap_or_else(crate::clock::now_millis)
                + delay;
            schedule(&copy.slot.db, event, due).await?;
            return Ok(());
        }
        let mut attempt = 1;
        loop {
            match self
                .calls
                .call_event(copy, event, attempt, Delivery::Stream)
                .await
            {
                Ok(EventOutcome::Handled | EventOutcome::AlreadyHandled | EventOutcome::Fenced) => {
                    return Ok(());
                }
                Err(error) if attempt >= self.config.max_attempts => {
                    tracing::error!(plugin = %copy.name, event = %event.id, source = %event.source, %error, "replayed event dead-lettered");
                    dead_letter(&copy.slot.db, event, &error, attempt, Delivery::Stream).await?;
                    return Ok(());
                }
                Err(error) => {
                    tracing::warn!(plugin = %copy.name, event = %event.id, attempt, %error, "replayed event failed; will retry");
                    tokio::select! {
                        _ = self.cancel.cancelled() => return Err(ReplayError::Stopped),
                        _ = tokio::time::sleep(self.config.backoff(attempt)) => {}
                    }
                    attempt += 1;
                }
            }
        }
    }
}
