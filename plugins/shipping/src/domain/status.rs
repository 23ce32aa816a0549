//! The shipment's states and how far along each is.
use serde::Deserialize;

/// Where a shipment stands. Stored and shown in the upper-case form of
/// [`Status::as_str`].
///
/// ```text
/// PENDING ─► LABEL_CREATED ─► IN_TRANSIT ─► DELIVERED | RETURNED | LOST
///    └───────────┴─► CANCELLED
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Pending,
    LabelCreated,
    InTransit,
    Delivered,
    Cancelled,
    Returned,
    Lost,
}

impl Status {
    /// Every status, in rank order.
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::LabelCreated,
        Status::InTransit,
        Status::Delivered,
        Status::Cancelled,
        Status::Returned,
        Status::Lost,
    ];

    /// The stored and serialized form.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::LabelCreated => "LABEL_CREATED",
            Status::InTransit => "IN_TRANSIT",
            Status::Delivered => "DELIVERED",
            Status::Cancelled => "CANCELLED",
            Status::Returned => "RETURNED",
            Status::Lost => "LOST",
        }
    }

    /// Parses the stored form (upper case only).
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// How far along the parcel is. Updates only ever raise it, so carrier
    /// events arriving out of order cannot move a shipment backwards. The
    /// outcomes share the top rank: once one is reached nothing follows.
    pub fn rank(self) -> u8 {
        match self {
            Status::Pending => 0,
            Status::LabelCreated => 1,
            Status::InTransit => 2,
            Status::Delivered | Status::Cancelled | Status::Returned | Status::Lost => 3,
        }
    }

    /// Whether nothing can happen to the shipment any more.
    pub fn is_terminal(self) -> bool {
        self.rank() == 3
    }

    /// Whether a carrier may report it. PENDING is where every shipment
    /// starts, and CANCELLED is the shop's decision, not the carrier's.
    pub fn carrier_reportable(self) -> bool {
        !matches!(self, Status::Pending | Status::Cancelled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn status_round_trips_through_its_stored_form() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            let json = format!("\"{}\"", status.as_str());
            assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
        }
        for bad in ["", "pending", "Delivered", "SHIPPED", "IN TRANSIT"] {
            assert_eq!(Status::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ranks_order_the_life_cycle_and_outcomes_are_terminal() {
        let ranks: Vec<u8> = Status::ALL.iter().map(|s| s.rank()).collect();
        assert_eq!(ranks, [0, 1, 2, 3, 3, 3, 3]);
        let terminal: Vec<Status> = Status::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, [Delivered, Cancelled, Returned, Lost]);
        let reportable: Vec<Status> = Status::ALL
            .into_iter()
            .filter(|s| s.carrier_reportable())
            .collect();
        assert_eq!(
            reportable,
            [LabelCreated, InTransit, Delivered, Returned, Lost]
        );
    }
}
