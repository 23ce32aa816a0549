//! Carrier kinds, the `test` carrier's labels, and tracking numbers.
use serde::Deserialize;

/// How a carrier integration makes labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CarrierKind {
    /// Labels at once, deterministically: tests and demos know the tracking
    /// number an order will get.
    Test,
    /// The carrier's own process makes the label; the shipment waits for
    /// its updates.
    Manual,
}

impl CarrierKind {
    /// Every kind, in the order error messages list them.
    pub const ALL: [CarrierKind; 2] = [CarrierKind::Test, CarrierKind::Manual];

    /// The stored and API form.
    pub fn as_str(self) -> &'static str {
        match self {
            CarrierKind::Test => "test",
            CarrierKind::Manual => "manual",
        }
    }

    /// Parses the API form.
    pub fn parse(s: &str) -> Option<CarrierKind> {
        CarrierKind::ALL.into_iter().find(|kind| kind.as_str() == s)
    }

    /// The label a new shipment for `order_id` gets when it is created, if
    /// this kind makes one then.
    pub fn label_at_creation(self, order_id: &str) -> Option<Label> {
        match self {
            CarrierKind::Test => Some(Label::test(order_id)),
            CarrierKind::Manual => None,
        }
    }
}

/// A shipping label and the tracking number printed on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// `TEST` + 12 upper-case hex digits for the test carrier.
    pub tracking_number: String,
    /// `LBL-` + the same digits for the test carrier.
    pub label_id: String,
}

impl Label {
    /// The test carrier's label for `order_id`: the top 48 bits of the
    /// id's FNV-1a hash. No randomness, so a redelivered event or a rerun
    /// test gives the same number; 48 bits make a clash between two orders
    /// unlikely enough for a test carrier.
    pub fn test(order_id: &str) -> Label {
        let digits = format!("{:012X}", fnv1a_64(order_id.as_bytes()) >> 16);
        Label {
            tracking_number: format!("TEST{digits}"),
            label_id: format!("LBL-{digits}"),
        }
    }
}

/// FNV-1a, 64-bit: a few lines, no dependency, and well spread for short keys.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

/// A carrier update names a tracking number other than the shipment's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingMismatch {
    /// The shipment's.
    pub current: String,
    /// The update's.
    pub reported: String,
}

/// The tracking number a shipment has after an applied update that reported
/// `reported`. A shipment without one (a `manual` carrier's) adopts the first
/// it is told; one that has a number keeps it, and a report naming another is
/// a mismatch the caller refuses rather than guessing which parcel is meant.
pub fn reconcile_tracking<'a>(
    current: Option<&'a str>,
    reported: Option<&'a str>,
) -> Result<Option<&'a str>, TrackingMismatch> {
    match (current, reported) {
        (Some(current), Some(reported)) if current != reported => Err(TrackingMismatch {
            current: current.to_owned(),
            reported: reported.to_owned(),
        }),
        (Some(current), _) => Ok(Some(current)),
        (None, reported) => Ok(reported),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_64_matches_the_reference_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn test_labels_are_deterministic_and_well_formed() {
        let order_id = "0b7c5a4e-6f1d-4c2b-9a3e-8d2f1e0c7b6a";
        let label = Label::test(order_id);
        assert_eq!(label, Label::test(order_id), "same order, same label");
        let digits = &label.tracking_number["TEST".len()..];
        assert_eq!(label.tracking_number.len(), 16);
        assert!(
            digits
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
            "{digits}"
        );
        assert_eq!(label.label_id, format!("LBL-{digits}"));
        // Pinned: a change of derivation would change every test order's number.
        assert_eq!(Label::test("a").tracking_number, "TESTAF63DC4C8601");
        assert_eq!(Label::test("").label_id, "LBL-CBF29CE48422");
    }

    #[test]
    fn different_orders_get_different_tracking_numbers() {
        let numbers: std::collections::BTreeSet<String> = (0..1_000)
            .map(|n| Label::test(&format!("order-{n}")).tracking_number)
            .collect();
        assert_eq!(numbers.len(), 1_000);
    }

    #[test]
    fn only_the_test_kind_labels_at_creation() {
        assert_eq!(
            CarrierKind::Test.label_at_creation("o-1"),
            Some(Label::test("o-1"))
        );
        assert_eq!(CarrierKind::Manual.label_at_creation("o-1"), None);
    }

    #[test]
    fn kinds_round_trip_through_their_api_form() {
        for kind in CarrierKind::ALL {
            assert_eq!(CarrierKind::parse(kind.as_str()), Some(kind));
            let json = format!("\"{}\"", kind.as_str());
            assert_eq!(serde_json::from_str::<CarrierKind>(&json).unwrap(), kind);
        }
        for bad in ["", "Test", "MANUAL", "ups"] {
            assert_eq!(CarrierKind::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_tracking_number_is_adopted_once_and_never_replaced() {
        assert_eq!(reconcile_tracking(None, None), Ok(None));
        assert_eq!(reconcile_tracking(None, Some("1Z999")), Ok(Some("1Z999")));
        assert_eq!(reconcile_tracking(Some("1Z999"), None), Ok(Some("1Z999")));
        assert_eq!(
            reconcile_tracking(Some("1Z999"), Some("1Z999")),
            Ok(Some("1Z999"))
        );
        assert_eq!(
            reconcile_tracking(Some("1Z999"), Some("1Z000")),
            Err(TrackingMismatch {
                current: "1Z999".into(),
                reported: "1Z000".into()
            })
        );
    }
}
