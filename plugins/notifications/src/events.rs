//! The event handlers: an inbox notification and webhook deliveries for each
//! subscribed event, and the host's reports on those deliveries.
//!
//! Events from different sources arrive in no particular order, so nothing
//! here depends on having seen another event first: a notification for an
//! order whose buyer is unknown waits, and a report for an unknown delivery
//! is acknowledged.
use crate::domain::delivery::{self, Outcome, Progress, QUEUED, Report};
use crate::domain::webhook::{self, DELIVERY_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER};
use crate::domain::{is_subscribed, template};
use crate::store::{self, NewNotification, webhooks};
use mercato_sdk::outbound::{Attempt, Outgoing};
use mercato_sdk::prelude::*;
use serde_json::Value;

/// Routes one event.
pub fn handle(event: &Event) -> Result<(), Error> {
    if let Some(report) = outbound::attempt(event) {
        return on_delivery_attempted(event, &report?);
    }
    let event_type = format!("{}.{}", event.source, event.event_type);
    if !is_subscribed(&event_type) {
        // Not subscribed; acknowledging keeps the subscription moving.
        log::warn(&format!("ignoring unexpected event {event_type}"));
        return Ok(());
    }
    on_subscribed(event, &event_type)
}

/// A non-empty string field of the payload.
fn text_field<'a>(payload: &'a Value, name: &str) -> Option<&'a str> {
    payload
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Records the inbox notification and queues the webhooks for one event.
/// Every subscribed event names its order; one that does not is a broken
/// contract, retried and then dead-lettered where an operator sees it.
fn on_subscribed(event: &Event, event_type: &str) -> Result<(), Error> {
    let payload: Value = events::payload(event)?;
    let order_id = text_field(&payload, "order_id").ok_or_else(|| {
        Error::Invalid(format!(
            "{event_type} {}: payload has no order_id",
            event.id
        ))
    })?;
    let now = clock::now();
    let recipient = match text_field(&payload, "buyer_id") {
        Some(buyer_id) => Some(learn_recipient(order_id, buyer_id, &now)?),
        None => store::recipient_of(order_id)?,
    };
    let template = store::template(event_type)?
        .ok_or_else(|| Error::Internal(format!("no notification template for {event_type}")))?;
    let subject = template::render(&template.subject, &payload);
    let body = template::render(&template.body, &payload);
    let recorded = store::insert_notification(
        &NewNotification {
            recipient: recipient.as_deref(),
            order_id,
            event_id: &event.id,
            event_type,
            subject: &subject,
            body: &body,
        },
        &now,
    )?;
    if !recorded {
        log::info(&format!("{event_type} {} was already notified", event.id));
    }
    queue_webhooks(event, event_type, &payload, &now)
}

/// Remembers the order's buyer and sends whatever waited for them; returns
/// the buyer on record (the first one named: an order's buyer never changes).
fn learn_recipient(order_id: &str, buyer_id: &str, now: &str) -> Result<String, Error> {
    let on_record = store::remember_recipient(order_id, buyer_id, now)?;
    if on_record != buyer_id {
        log::warn(&format!(
            "order {order_id}: an event names buyer {buyer_id}, but {on_record} was named first"
        ));
    }
    let sent = store::deliver_waiting(order_id, &on_record, now)?;
    if sent > 0 {
        log::info(&format!(
            "order {order_id}: {sent} waiting notification(s) sent to {on_record}"
        ));
    }
    Ok(on_record)
}

/// Creates a delivery and queues a signed request for every enabled
/// endpoint that wants this event type. Every endpoint gets the same body;
/// each signs it with its own secret.
fn queue_webhooks(
    event: &Event,
    event_type: &str,
    payload: &Value,
    now: &str,
) -> Result<(), Error> {
    let body = webhook::envelope(&event.id, event_type, &event.occurred_at, payload);
    for endpoint in webhooks::enabled_endpoints()? {
        if !webhook::matches(&endpoint.event_types()?, event_type) {
            continue;
        }
        let delivery_id = new_id();
        if !webhooks::insert_delivery(&delivery_id, &endpoint.id, &event.id, event_type, now)? {
            continue;
        }
        let signed_at = clock::now_millis() / 1000;
        let request = Outgoing::post_json(&endpoint.url, body.clone())
            .header(
                SIGNATURE_HEADER,
                &webhook::signature(&endpoint.secret, signed_at, &body),
            )
            .header(DELIVERY_ID_HEADER, &delivery_id)
            .header(EVENT_TYPE_HEADER, event_type);
        // The host refusing a request is final (the operator's allow-list, or a
        // request it cannot send): retrying the event would not change it and
        // would hold up the buyer's notification, so it is recorded instead.
        let refusal = match outbound::send(request, &delivery_id) {
            Ok(()) => continue,
            Err(Error::Denied(message)) => (Outcome::Denied, message),
            Err(Error::Invalid(message)) => (Outcome::Invalid, message),
            Err(other) => return Err(other),
        };
        log::warn(&format!(
            "webhook delivery {delivery_id} to endpoint {} refused by the host: {}",
            endpoint.id, refusal.1
        ));
        let report = delivery::refused(refusal.0, &refusal.1);
        record(&delivery_id, QUEUED, &report, 0, now)?;
    }
    Ok(())
}

/// Logs an attempt and moves the delivery (read at `progress`)
/// accordingly, unless that attempt was logged before.
fn record(
    delivery_id: &str,
    progress: Progress,
    report: &Report,
    duration_ms: i64,
    at: &str,
) -> Result<(), Error> {
    if !webhooks::insert_attempt(delivery_id, report, duration_ms, at)? {
        return Ok(());
    }
    match delivery::after(progress, report) {
        Some(change) => webhooks::update_delivery(delivery_id, progress, &change, &clock::now()),
        None => Ok(()),
    }
}

/// `outbound.DeliveryAttempted`: the host's report on one attempt. A report
/// whose key is no delivery of ours is acknowledged and ignored.
fn on_delivery_attempted(event: &Event, attempt: &Attempt) -> Result<(), Error> {
    let Some(delivery) = webhooks::delivery(&attempt.key)? else {
        log::info(&format!("delivery report for unknown key {}", attempt.key));
        return Ok(());
    };
    let outcome = Outcome::from_report(&attempt.outcome).map_err(|e| Error::Invalid(e.message))?;
    let report = Report {
        attempt: attempt.attempt.into(),
        outcome,
        status: attempt.status.map(i64::from),
        error: attempt.error.clone(),
    };
    let duration_ms = i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX);
    record(
        &delivery.id,
        delivery.progress()?,
        &report,
        duration_ms,
        &event.occurred_at,
    )
}
