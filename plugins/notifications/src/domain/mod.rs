//! Pure notification rules: which events this context speaks about, how a
//! template is checked and rendered, how a webhook endpoint is validated,
//! matched and signed, and how a delivery moves with each reported attempt.
//! No SDK host calls, so everything here is unit-tested natively.
pub mod delivery;
pub mod template;
pub mod webhook;

/// Every event type this plugin subscribes to, as `source.EventType`. The
/// manifest subscribes to exactly these; templates exist for exactly these
/// (the 0003 migration seeds one each); webhook endpoints may ask for them.
pub const SUBSCRIBED_EVENT_TYPES: [&str; 12] = [
    "orders.OrderPlaced",
    "orders.OrderConfirmed",
    "orders.OrderPaid",
    "orders.OrderCancelled",
    "orders.OrderRejected",
    "payments.PaymentCaptured",
    "payments.PaymentFailed",
    "payments.PaymentRefunded",
    "shipping.ShipmentCreated",
    "shipping.ShipmentDispatched",
    "shipping.ShipmentDelivered",
    "shipping.ShipmentCancelled",
];

/// True for one of [`SUBSCRIBED_EVENT_TYPES`].
pub fn is_subscribed(event_type: &str) -> bool {
    SUBSCRIBED_EVENT_TYPES.contains(&event_type)
}

/// The only channel: there is no e-mail provider, so a notification is an
/// in-app message, delivered the moment it is recorded for a known recipient.
pub const CHANNEL_INBOX: &str = "inbox";

/// A notification's state, stored as [`NotificationStatus::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationStatus {
    /// The event arrived before anything told us whose order it is (e.g. a
    /// `payments.PaymentCaptured` before the `orders.OrderPlaced`).
    PendingRecipient,
    /// In the recipient's inbox.
    Sent,
}

impl NotificationStatus {
    /// The stored and serialized form.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::PendingRecipient => "PENDING_RECIPIENT",
            NotificationStatus::Sent => "SENT",
        }
    }

    /// An inbox notification is sent as soon as its recipient is known.
    pub fn for_recipient(recipient: Option<&str>) -> Self {
        match recipient {
            Some(_) => NotificationStatus::Sent,
            None => NotificationStatus::PendingRecipient,
        }
    }

    /// Delivery attempts recorded with this status: putting a message in an
    /// inbox is one attempt that cannot fail; none is made without a recipient.
    pub fn attempts(self) -> i64 {
        match self {
            NotificationStatus::PendingRecipient => 0,
            NotificationStatus::Sent => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribed_types_are_source_qualified_and_unique() {
        for (i, event_type) in SUBSCRIBED_EVENT_TYPES.iter().enumerate() {
            let (source, kind) = event_type.split_once('.').expect("source.Type");
            assert!(["orders", "payments", "shipping"].contains(&source));
            assert!(kind.starts_with(|c: char| c.is_ascii_uppercase()));
            assert!(!SUBSCRIBED_EVENT_TYPES[..i].contains(event_type));
            assert!(is_subscribed(event_type));
        }
        assert!(!is_subscribed("orders.RefundRequested"));
        assert!(!is_subscribed("OrderPaid"));
        assert!(!is_subscribed("orders.*"));
    }

    #[test]
    fn a_notification_is_sent_once_its_recipient_is_known() {
        let sent = NotificationStatus::for_recipient(Some("buyer-7"));
        assert_eq!((sent.as_str(), sent.attempts()), ("SENT", 1));
        let pending = NotificationStatus::for_recipient(None);
        assert_eq!(
            (pending.as_str(), pending.attempts()),
            ("PENDING_RECIPIENT", 0)
        );
    }
}
