//! SQL for the notifications tables, inside the current call's transaction:
//! recipients, templates and inbox notifications here; webhooks in
//! [`webhooks`].
pub mod webhooks;

use crate::domain::{CHANNEL_INBOX, NotificationStatus};
use mercato_sdk::list::Listing;
use mercato_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

/// Records that `buyer_id` placed `order_id`, unless the order is known
/// already (its buyer never changes, so the first record stands). Returns the
/// buyer on record.
pub fn remember_recipient(order_id: &str, buyer_id: &str, now: &str) -> Result<String, Error> {
    db::execute(
        "INSERT INTO order_recipients (order_id, buyer_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (order_id) DO NOTHING",
        &[order_id.into(), buyer_id.into(), now.into()],
    )?;
    recipient_of(order_id)?.ok_or_else(|| {
        Error::Internal(format!(
            "order {order_id} has no recipient right after its insert"
        ))
    })
}

/// The buyer of `order_id`, if an event has named them.
pub fn recipient_of(order_id: &str) -> Result<Option<String>, Error> {
    let rows = db::query(
        "SELECT buyer_id FROM order_recipients WHERE order_id = $1",
        &[order_id.into()],
    )?;
    rows.first()
        .map(|row| row.text("buyer_id").map(str::to_owned))
        .transpose()
}

/// Sends the order's waiting notifications to `recipient`; returns how many.
pub fn deliver_waiting(order_id: &str, recipient: &str, now: &str) -> Result<u64, Error> {
    let sent = NotificationStatus::Sent;
    db::execute(
        "UPDATE notifications SET recipient = $2, status = $3, attempts = $4, sent_at = $5 \
         WHERE order_id = $1 AND recipient IS NULL",
        &[
            order_id.into(),
            recipient.into(),
            sent.as_str().into(),
            sent.attempts().into(),
            now.into(),
        ],
    )
}

/// A template as stored.
#[derive(Debug, Clone, Deserialize)]
pub struct Template {
    pub event_type: String,
    pub subject: String,
    pub body: String,
    pub updated_at: String,
}

impl Template {
    /// The API representation.
    pub fn to_json(&self) -> Value {
        json!({
            "event_type": self.event_type,
            "subject": self.subject,
            "body": self.body,
            "updated_at": self.updated_at,
        })
    }
}

/// The template for `event_type` (`source.EventType`).
pub fn template(event_type: &str) -> Result<Option<Template>, Error> {
    db::query(
        "SELECT event_type, subject, body, updated_at FROM notification_templates \
         WHERE event_type = $1",
        &[event_type.into()],
    )?
    .parse_first()
}

/// Every template, by event type.
pub fn templates() -> Result<Vec<Template>, Error> {
    db::query(
        "SELECT event_type, subject, body, updated_at FROM notification_templates \
         ORDER BY event_type",
        &[],
    )?
    .parse_all()
}

/// Replaces the template of `event_type` (creating it if it were missing).
/// Notifications already recorded keep the text they were rendered with.
pub fn save_template(event_type: &str, subject: &str, body: &str, now: &str) -> Result<(), Error> {
    db::execute(
        "INSERT INTO notification_templates (event_type, subject, body, updated_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (event_type) DO UPDATE SET subject = excluded.subject, \
         body = excluded.body, updated_at = excluded.updated_at",
        &[event_type.into(), subject.into(), body.into(), now.into()],
    )
    .map(drop)
}

/// A rendered notification about to be recorded.
pub struct NewNotification<'a> {
    pub recipient: Option<&'a str>,
    pub order_id: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
}

/// Records the inbox notification for an event, unless it exists (one per
/// event and channel); false when it did.
pub fn insert_notification(new: &NewNotification<'_>, now: &str) -> Result<bool, Error> {
    let status = NotificationStatus::for_recipient(new.recipient);
    let sent_at = new.recipient.map(|_| now);
    let changed = db::execute(
        "INSERT INTO notifications (id, recipient, order_id, event_id, event_type, channel, \
         subject, body, status, attempts, created_at, sent_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (event_id, channel) DO NOTHING",
        &[
            new_id().into(),
            new.recipient.into(),
            new.order_id.into(),
            new.event_id.into(),
            new.event_type.into(),
            CHANNEL_INBOX.into(),
            new.subject.into(),
            new.body.into(),
            status.as_str().into(),
            status.attempts().into(),
            now.into(),
            sent_at.into(),
        ],
    )?;
    Ok(changed == 1)
}

/// Every notification as a list, newest first by `(created_at, id)`; the
/// handler adds its filters.
pub fn notification_listing() -> Listing {
    Listing::new(
        "notifications",
        "id, recipient, order_id, event_id, event_type, channel, subject, body, status, \
         attempts, created_at, sent_at",
    )
}
