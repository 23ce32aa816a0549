//! Dead-letter redrive: after a fixing deploy, the dead letters of a plugin are
//! delivered again to its current version. Each delivery deletes the dead letter
//! in the handler's own transaction, so a redriven event takes effect once; one
//! that fails again stays, with its new error.
use super::relay::Relay;
use crate::outbox::Delivery;
use crate::outbox::store::{dead_letter_events, note_failure};
use crate::storage::StorageError;
use crate::unit_of_work::EventOutcome;

/// What a redrive did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RedriveReport {
    /// Plugin whose dead letters were redriven.
    pub plugin: String,
    /// Events handled now.
    pub redriven: Vec<String>,
    /// Events that failed again, with the error.
    pub failed: Vec<(String, String)>,
}

impl Relay {
    /// Redrives `plugin`'s dead letters (all, or those in `event_ids`), oldest first.
    pub async fn redrive(
        &self,
        plugin: &str,
        event_ids: Option<&[String]>,
    ) -> Result<RedriveReport, RedriveError> {
        let subscriber = self
            .registry
            .get(plugin)
            .ok_or_else(|| RedriveError::UnknownPlugin(plugin.to_owned()))?;
        let mut report = RedriveReport {
            plugin: plugin.to_owned(),
            ..RedriveReport::default()
        };
        for event in dead_letter_events(&subscriber.slot.db).await? {
            if event_ids.is_some_and(|ids| !ids.contains(&event.id)) {
                continue;
            }
            match self
                .calls
                .call_event(&subscriber, &event, 1, Delivery::DeadLetter)
                .await
            {
                Ok(EventOutcome::Handled) => report.redriven.push(event.id),
                Ok(EventOutcome::AlreadyHandled | EventOutcome::Fenced) => {}
                Err(error) => {
                    note_failure(&subscriber.slot.db, &event.id, &error).await?;
                    report.failed.push((event.id, error));
                }
            }
        }
        Ok(report)
    }
}

/// Why a redrive could not run.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// No such plugin.
    #[error("no plugin named `{0}` is loaded")]
    UnknownPlugin(String),
    /// Its database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}
