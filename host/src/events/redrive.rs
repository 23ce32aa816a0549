//! Dead-letter redrive: after a fixing deploy, the dead letters of a plugin are
//! delivered again to its current version. Each delivery deletes the dead letter
//! in the handler's own transaction, so a redriven event takes effect once; one
//! that fails again stays, with its new error.
use super::{HELD_EVENT_COLUMNS, OutboxEvent, held_event};
use crate::bindings::SqlValue;
use crate::host::Host;
use crate::storage::{StorageError, TxMode};
use crate::uow::{Delivery, EventOutcome};

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

impl Host {
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
        for event in dead_letters(&subscriber.db).await? {
            if event_ids.is_some_and(|ids| !ids.contains(&event.id)) {
                continue;
            }
            match self
                .call_event(&subscriber, &event, 1, Delivery::DeadLetter)
                .await
            {
                Ok(EventOutcome::Handled) => report.redriven.push(event.id),
                Ok(EventOutcome::AlreadyHandled) => {}
                Err(error) => {
                    note_failure(&subscriber.db, &event.id, &error).await?;
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

async fn dead_letters(db: &crate::storage::Database) -> Result<Vec<OutboxEvent>, StorageError> {
    let mut tx = db.begin(TxMode::ReadOnly).await?;
    let rows = tx
        .host_query(
            &format!("SELECT {HELD_EVENT_COLUMNS} FROM mercato_dead_letters ORDER BY failed_at, source, sequence"),
            &[],
        )
        .await?;
    tx.rollback().await?;
    Ok((0..rows.rows.len()).map(|i| held_event(&rows, i)).collect())
}

async fn note_failure(
    db: &crate::storage::Database,
    event_id: &str,
    error: &str,
) -> Result<(), StorageError> {
    let mut tx = db.begin(TxMode::ReadWrite).await?;
    tx.host_execute(
        "UPDATE mercato_dead_letters SET error = $1, attempts = attempts + 1, failed_at = $2 WHERE event_id = $3",
        &[
            SqlValue::Text(error.to_owned()),
            SqlValue::Text(crate::clock::now_rfc3339()),
            SqlValue::Text(event_id.to_owned()),
        ],
    )
    .await?;
    tx.commit().await
}
