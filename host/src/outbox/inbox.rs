//! The subscriber's side of exactly-once delivery: which events a plugin has
//! consumed, recorded in the same transaction as the handler's effects.
//! In-order events advance a per-source cursor (`mercato_cursors`); delayed
//! events and redriven dead letters are consumed by deleting their row.
use super::OutboxEvent;
use crate::bindings::SqlValue;
use crate::outbound::store::{report_waiting, take_report};
use crate::storage::{StorageError, Tx, first_row};

/// Moves a cursor forward (never back), in `tx`.
pub const ADVANCE_CURSOR: &str = "INSERT INTO mercato_cursors (source, sequence) \
     VALUES ($1, $2) ON CONFLICT (source) DO UPDATE SET sequence = excluded.sequence \
     WHERE mercato_cursors.sequence < excluded.sequence";

/// The last sequence of `source` this database's plugin consumed, in `tx`.
pub async fn cursor_in(tx: &mut Tx, source: &str) -> Result<u64, StorageError> {
    let rows = tx
        .host_query(
            "SELECT sequence FROM mercato_cursors WHERE source = $1",
            &[SqlValue::Text(source.to_owned())],
        )
        .await?;
    first_row(&rows).map_or(Ok(0), |row| row.uint("sequence"))
}

/// How an event reaches a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// In source order; the subscriber's cursor for the source advances.
    Stream,
    /// A delayed event that became due; its `mercato_scheduled` row is removed.
    Scheduled,
    /// A dead letter redriven after a fix; its `mercato_dead_letters` row is removed.
    DeadLetter,
    /// The host's report of an outbound attempt (`crate::outbound`): the
    /// request's key is the aggregate id, the attempt number the sequence, and
    /// taking it clears the report in `mercato_outbound`.
    Report,
}

impl Delivery {
    /// Where an event waiting outside the ordered stream is kept.
    fn held_in(self) -> &'static str {
        match self {
            Delivery::DeadLetter => "mercato_dead_letters",
            Delivery::Stream | Delivery::Scheduled | Delivery::Report => "mercato_scheduled",
        }
    }
}

/// Whether `event` was consumed already. Only reads: the record is written
/// after the guest ran ([`record_consumed`]), conditionally, so two deliveries
/// racing for one event commit at most one effect.
pub async fn already_consumed(
    tx: &mut Tx,
    event: &OutboxEvent,
    delivery: Delivery,
) -> Result<bool, StorageError> {
    match delivery {
        Delivery::Stream => Ok(cursor_in(tx, &event.source).await? >= event.sequence),
        Delivery::Report => Ok(!report_waiting(tx, &event.aggregate_id, event.sequence).await?),
        Delivery::Scheduled | Delivery::DeadLetter => {
            let rows = tx
                .host_query(
                    &format!(
                        "SELECT event_id FROM {} WHERE event_id = $1",
                        delivery.held_in()
                    ),
                    &[SqlValue::Text(event.id.clone())],
                )
                .await?;
            Ok(rows.rows.is_empty())
        }
    }
}

/// Records that `event` was consumed, in the handler's transaction. False when
/// it had been recorded already (by a delivery that committed first);
/// [`StorageError::Fenced`] when this host lost the lease of the work.
pub async fn record_consumed(
    tx: &mut Tx,
    event: &OutboxEvent,
    delivery: Delivery,
) -> Result<bool, StorageError> {
    crate::cluster::fence::check(tx).await?;
    let changed = match delivery {
        Delivery::Stream => {
            tx.host_execute(
                ADVANCE_CURSOR,
                &[
                    SqlValue::Text(event.source.clone()),
                    SqlValue::Integer(event.sequence as i64),
                ],
            )
            .await?
        }
        Delivery::Report => {
            return take_report(tx, &event.aggregate_id, event.sequence).await;
        }
        Delivery::Scheduled | Delivery::DeadLetter => {
            tx.host_execute(
                &format!("DELETE FROM {} WHERE event_id = $1", delivery.held_in()),
                &[SqlValue::Text(event.id.clone())],
            )
            .await?
        }
    };
    Ok(changed > 0)
}

/// Records which version of the subscriber handled `events`, and when, in
/// the handler's transaction (`mercato_handled`, read by an operator's order
/// timeline): one statement for a whole batch. An event handled again (a
/// redriven dead letter that had no effect before) keeps its first record.
pub async fn record_handled(
    tx: &mut Tx,
    events: &[&OutboxEvent],
    version: &str,
) -> Result<(), StorageError> {
    if events.is_empty() {
        return Ok(());
    }
    let now = crate::clock::now_rfc3339();
    let mut params = vec![SqlValue::Text(version.to_owned()), SqlValue::Text(now)];
    let mut rows = Vec::with_capacity(events.len());
    for event in events {
        let n = params.len();
        rows.push(format!("(${}, ${}, ${}, $1, $2)", n + 1, n + 2, n + 3));
        params.extend([
            SqlValue::Text(event.id.clone()),
            SqlValue::Text(event.source.clone()),
            SqlValue::Integer(i64::try_from(event.sequence).unwrap_or(i64::MAX)),
        ]);
    }
    tx.host_execute(
        &format!(
            "INSERT INTO mercato_handled (event_id, source, sequence, version, handled_at) \
             VALUES {} ON CONFLICT (event_id) DO NOTHING",
            rows.join(", ")
        ),
        &params,
    )
    .await?;
    Ok(())
}
