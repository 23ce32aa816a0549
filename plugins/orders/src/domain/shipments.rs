//! An order's shipments as shipping reports them, and the order's fulfillment
//! status derived from them. Pure: `lib.rs` reads the rows and writes the
//! decisions.
//!
//! Shipping's events about one shipment arrive in order, but nothing here
//! relies on it: a status only moves forward, so a late or repeated event
//! changes nothing.

/// A shipment's status as orders records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipmentStatus {
    Pending,
    LabelCreated,
    InTransit,
    Delivered,
    Cancelled,
}

impl ShipmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ShipmentStatus::Pending => "PENDING",
            ShipmentStatus::LabelCreated => "LABEL_CREATED",
            ShipmentStatus::InTransit => "IN_TRANSIT",
            ShipmentStatus::Delivered => "DELIVERED",
            ShipmentStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<ShipmentStatus> {
        [
            ShipmentStatus::Pending,
            ShipmentStatus::LabelCreated,
            ShipmentStatus::InTransit,
            ShipmentStatus::Delivered,
            ShipmentStatus::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// The status a shipping event reports. The event type says what
    /// happened, so it decides for dispatch, delivery and cancellation
    /// whatever shipping calls the status; a creation may already carry a
    /// later status (a label bought at once), which is taken when orders knows
    /// it. `None`: not a shipment event.
    pub fn reported(event_type: &str, status: Option<&str>) -> Option<ShipmentStatus> {
        Some(match event_type {
            "ShipmentCreated" => status
                .and_then(ShipmentStatus::parse)
                .unwrap_or(ShipmentStatus::Pending),
            "ShipmentDispatched" => ShipmentStatus::InTransit,
            "ShipmentDelivered" => ShipmentStatus::Delivered,
            "ShipmentCancelled" => ShipmentStatus::Cancelled,
            _ => return None,
        })
    }

    /// Position on the way to the buyer; `None` for a cancelled shipment,
    /// which is off that way.
    fn rank(self) -> Option<u8> {
        match self {
            ShipmentStatus::Pending => Some(0),
            ShipmentStatus::LabelCreated => Some(1),
            ShipmentStatus::InTransit => Some(2),
            ShipmentStatus::Delivered => Some(3),
            ShipmentStatus::Cancelled => None,
        }
    }

    /// Whether a shipment at `self` may move to `to`: forward by rank; a
    /// cancellation only before the parcel left (PENDING, LABEL_CREATED);
    /// nothing after a cancellation, so a late creation cannot revive it.
    pub fn may_move_to(self, to: ShipmentStatus) -> bool {
        match (self.rank(), to.rank()) {
            (None, _) => false,
            (Some(from), None) => from <= 1,
            (Some(from), Some(to)) => to > from,
        }
    }
}

/// One shipment of an order, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipment {
    pub status: ShipmentStatus,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
}

/// What a shipping event does to the recorded shipment (`None`: not recorded
/// yet): the new state, or `None` when nothing changes. A stale event (its
/// status not ahead of the recorded one) only fills a carrier or tracking
/// number still missing; an event that moves the status also brings its
/// carrier and tracking number, keeping the recorded ones it lacks.
pub fn advance(current: Option<&Shipment>, reported: Shipment) -> Option<Shipment> {
    let Some(current) = current else {
        return Some(reported);
    };
    let next = if current.status.may_move_to(reported.status) {
        Shipment {
            status: reported.status,
            carrier: reported.carrier.or_else(|| current.carrier.clone()),
            tracking_number: reported
                .tracking_number
                .or_else(|| current.tracking_number.clone()),
        }
    } else {
        Shipment {
            status: current.status,
            carrier: current.carrier.clone().or(reported.carrier),
            tracking_number: current.tracking_number.clone().or(reported.tracking_number),
        }
    };
    (next != *current).then_some(next)
}

/// How far an order has got to its buyer, from its shipments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fulfillment {
    Unfulfilled,
    Shipped,
    Delivered,
}

impl Fulfillment {
    pub fn as_str(self) -> &'static str {
        match self {
            Fulfillment::Unfulfilled => "UNFULFILLED",
            Fulfillment::Shipped => "SHIPPED",
            Fulfillment::Delivered => "DELIVERED",
        }
    }

    pub fn parse(s: &str) -> Option<Fulfillment> {
        [
            Fulfillment::Unfulfilled,
            Fulfillment::Shipped,
            Fulfillment::Delivered,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
    }
}

/// DELIVERED when at least one shipment is not cancelled and every such one
/// is delivered; SHIPPED when any is in transit or delivered; else
/// UNFULFILLED. Cancelled shipments count for nothing: a replaced parcel does
/// not hold an order back.
pub fn fulfillment(statuses: &[ShipmentStatus]) -> Fulfillment {
    let live = || statuses.iter().filter(|s| **s != ShipmentStatus::Cancelled);
    if live().next().is_some() && live().all(|s| *s == ShipmentStatus::Delivered) {
        Fulfillment::Delivered
    } else if live().any(|s| matches!(s, ShipmentStatus::InTransit | ShipmentStatus::Delivered)) {
        Fulfillment::Shipped
    } else {
        Fulfillment::Unfulfilled
    }
}

#[cfg(test)]
mod tests {
    use super::ShipmentStatus::*;
    use super::*;

    fn shipment(status: ShipmentStatus, carrier: Option<&str>, tracking: Option<&str>) -> Shipment {
        Shipment {
            status,
            carrier: carrier.map(str::to_owned),
            tracking_number: tracking.map(str::to_owned),
        }
    }

    /// Applies reported statuses in turn from nothing; the final status.
    fn replay(reports: &[ShipmentStatus]) -> ShipmentStatus {
        let mut current: Option<Shipment> = None;
        for status in reports {
            if let Some(next) = advance(current.as_ref(), shipment(*status, None, None)) {
                current = Some(next);
            }
        }
        current.unwrap().status
    }

    #[test]
    fn statuses_round_trip_and_unknown_text_is_refused() {
        for s in [Pending, LabelCreated, InTransit, Delivered, Cancelled] {
            assert_eq!(ShipmentStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ShipmentStatus::parse("SHIPPED"), None);
        for f in [
            Fulfillment::Unfulfilled,
            Fulfillment::Shipped,
            Fulfillment::Delivered,
        ] {
            assert_eq!(Fulfillment::parse(f.as_str()), Some(f));
        }
    }

    #[test]
    fn the_event_type_decides_the_reported_status() {
        assert_eq!(
            ShipmentStatus::reported("ShipmentCreated", None),
            Some(Pending)
        );
        assert_eq!(
            ShipmentStatus::reported("ShipmentCreated", Some("LABEL_CREATED")),
            Some(LabelCreated)
        );
        assert_eq!(
            ShipmentStatus::reported("ShipmentCreated", Some("whatever")),
            Some(Pending)
        );
        assert_eq!(
            ShipmentStatus::reported("ShipmentDispatched", Some("DISPATCHED")),
            Some(InTransit)
        );
        assert_eq!(
            ShipmentStatus::reported("ShipmentDelivered", None),
            Some(Delivered)
        );
        assert_eq!(
            ShipmentStatus::reported("ShipmentCancelled", Some("PENDING")),
            Some(Cancelled)
        );
        assert_eq!(ShipmentStatus::reported("ShipmentLost", None), None);
    }

    #[test]
    fn a_status_only_moves_forward() {
        assert_eq!(
            replay(&[Pending, LabelCreated, InTransit, Delivered]),
            Delivered
        );
        assert_eq!(replay(&[InTransit, Pending, LabelCreated]), InTransit);
        assert_eq!(replay(&[Delivered, InTransit]), Delivered);
        assert!(
            advance(
                Some(&shipment(InTransit, None, None)),
                shipment(InTransit, None, None)
            )
            .is_none()
        );
    }

    #[test]
    fn cancellation_replaces_only_a_shipment_not_yet_sent() {
        assert_eq!(replay(&[Pending, Cancelled]), Cancelled);
        assert_eq!(replay(&[LabelCreated, Cancelled]), Cancelled);
        assert_eq!(replay(&[InTransit, Cancelled]), InTransit);
        assert_eq!(replay(&[Delivered, Cancelled]), Delivered);
        // Out of order: the creation arriving after the cancellation revives nothing.
        assert_eq!(replay(&[Cancelled, Pending]), Cancelled);
        assert_eq!(replay(&[Cancelled, InTransit]), Cancelled);
    }

    #[test]
    fn carrier_and_tracking_come_with_progress_and_fill_gaps_otherwise() {
        let created = shipment(LabelCreated, Some("DHL"), None);
        let sent = advance(Some(&created), shipment(InTransit, None, Some("TRK1"))).unwrap();
        assert_eq!(sent, shipment(InTransit, Some("DHL"), Some("TRK1")));
        // A late creation with other details changes nothing already known.
        assert!(advance(Some(&sent), shipment(Pending, Some("UPS"), Some("OLD"))).is_none());
        // but fills what is missing.
        let bare = shipment(InTransit, None, None);
        assert_eq!(
            advance(
                Some(&bare),
                shipment(LabelCreated, Some("DHL"), Some("TRK1"))
            ),
            Some(shipment(InTransit, Some("DHL"), Some("TRK1")))
        );
        // Progress brings newer details.
        assert_eq!(
            advance(Some(&sent), shipment(Delivered, Some("DHL"), Some("TRK2"))),
            Some(shipment(Delivered, Some("DHL"), Some("TRK2")))
        );
    }

    #[test]
    fn the_first_report_is_recorded_as_it_is() {
        let first = shipment(InTransit, Some("DHL"), Some("T"));
        assert_eq!(advance(None, first.clone()), Some(first));
    }

    #[test]
    fn fulfillment_follows_the_shipments_that_are_not_cancelled() {
        let cases: [(&[ShipmentStatus], Fulfillment); 11] = [
            (&[], Fulfillment::Unfulfilled),
            (&[Pending], Fulfillment::Unfulfilled),
            (&[LabelCreated, Pending], Fulfillment::Unfulfilled),
            (&[Cancelled], Fulfillment::Unfulfilled),
            (&[Cancelled, Cancelled], Fulfillment::Unfulfilled),
            (&[InTransit], Fulfillment::Shipped),
            (&[Delivered, Pending], Fulfillment::Shipped),
            (&[Delivered, InTransit], Fulfillment::Shipped),
            (&[Delivered], Fulfillment::Delivered),
            (&[Delivered, Delivered], Fulfillment::Delivered),
            (&[Cancelled, Delivered], Fulfillment::Delivered),
        ];
        for (statuses, expected) in cases {
            assert_eq!(fulfillment(statuses), expected, "{statuses:?}");
        }
    }
}
