//! Inventory's decisions, free of storage and host calls: plain values in, a
//! decision (what to change, which event to publish) or a domain error out.
//!
//! An item's stock splits into `available`, `reserved` (held for unpaid orders)
//! and `committed` (sold). Each reservation leaves RESERVED exactly once: to
//! COMMITTED when its order is paid, or to RELEASED when the order is called off
//! or the reservation expires.
use mercato_sdk::time::Instant;
use mercato_sdk::validate::{MAX_SKU_LEN, is_sku};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::RangeInclusive;

/// Largest stock count accepted for a new item, and largest single adjustment.
const MAX_QUANTITY: i64 = 1_000_000_000;
/// How long stock stays reserved for an unpaid order unless configured.
pub const DEFAULT_RESERVATION_TTL_MS: u64 = 900_000;
/// From one second (tests, demos) to one week.
const RESERVATION_TTL_MS: RangeInclusive<i64> = 1_000..=604_800_000;
const MAX_REASON_CHARS: usize = 200;
/// The release reason of a reservation whose time ran out.
const EXPIRED: &str = "expired";

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Not 1-64 characters of `[A-Za-z0-9._-]`.
    #[error("sku must be 1-{MAX_SKU_LEN} characters of A-Z, a-z, 0-9, '.', '_' or '-'")]
    InvalidSku,
    /// A new item's stock is outside `0..=MAX_QUANTITY`.
    #[error("on_hand must be an integer from 0 to {MAX_QUANTITY}")]
    InvalidQuantity,
    /// An adjustment is zero, larger than `MAX_QUANTITY` either way, or overflows.
    #[error("delta must be a non-zero integer from -{MAX_QUANTITY} to {MAX_QUANTITY}")]
    InvalidDelta,
    /// An adjustment's reason is blank or longer than 200 characters.
    #[error("reason must be 1-{MAX_REASON_CHARS} characters and not blank")]
    InvalidReason,
    /// The reservation TTL is outside [`RESERVATION_TTL_MS`].
    #[error(
        "reservation_ttl_ms must be an integer from {} to {}",
        RESERVATION_TTL_MS.start(),
        RESERVATION_TTL_MS.end()
    )]
    InvalidReservationTtl,
    /// The adjustment would leave less on hand than is reserved and committed.
    #[error(
        "on_hand {on_hand} adjusted by {delta} would fall below the {promised} units \
         reserved or committed"
    )]
    InsufficientStock {
        /// Stock on hand before the adjustment.
        on_hand: i64,
        /// The refused adjustment.
        delta: i64,
        /// Reserved plus committed: what is already promised to orders.
        promised: i64,
    },
}

impl DomainError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::InvalidSku => "invalid_sku",
            DomainError::InvalidQuantity => "invalid_quantity",
            DomainError::InvalidDelta => "invalid_delta",
            DomainError::InvalidReason => "invalid_reason",
            DomainError::InvalidReservationTtl => "invalid_reservation_ttl",
            DomainError::InsufficientStock { .. } => "insufficient_stock",
        }
    }
}

/// One item's stock (a `stock_items` row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct StockLevel {
    /// Units in the warehouse, including those reserved and committed.
    pub on_hand: i64,
    /// Units held for orders awaiting payment.
    pub reserved: i64,
    /// Units sold to paid orders.
    pub committed: i64,
}

impl StockLevel {
    /// Units that can still be promised to a new order.
    pub fn available(self) -> i64 {
        self.on_hand - self.reserved - self.committed
    }
}

/// Checks a SKU's format: the SDK's rule, which the catalog and orders share.
pub fn validate_sku(sku: &str) -> Result<(), DomainError> {
    if is_sku(sku) {
        Ok(())
    } else {
        Err(DomainError::InvalidSku)
    }
}

/// The stock of a newly received item.
pub fn receive_new_item(sku: &str, on_hand: i64) -> Result<StockLevel, DomainError> {
    validate_sku(sku)?;
    if !(0..=MAX_QUANTITY).contains(&on_hand) {
        return Err(DomainError::InvalidQuantity);
    }
    Ok(StockLevel {
        on_hand,
        reserved: 0,
        committed: 0,
    })
}

/// Corrects the stock on hand (a count, damage, a delivery). Stock already
/// promised to orders cannot be adjusted away.
pub fn adjust(level: StockLevel, delta: i64, reason: &str) -> Result<StockLevel, DomainError> {
    if delta == 0 || delta.unsigned_abs() > MAX_QUANTITY.unsigned_abs() {
        return Err(DomainError::InvalidDelta);
    }
    if reason.trim().is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(DomainError::InvalidReason);
    }
    let on_hand = level
        .on_hand
        .checked_add(delta)
        .ok_or(DomainError::InvalidDelta)?;
    let promised = level.reserved + level.committed;
    if on_hand < promised {
        return Err(DomainError::InsufficientStock {
            on_hand: level.on_hand,
            delta,
            promised,
        });
    }
    Ok(StockLevel { on_hand, ..level })
}

/// Accepts a reservation TTL from a client.
pub fn validate_reservation_ttl(ms: i64) -> Result<u64, DomainError> {
    if RESERVATION_TTL_MS.contains(&ms) {
        Ok(ms.unsigned_abs())
    } else {
        Err(DomainError::InvalidReservationTtl)
    }
}

/// A line of an order as `orders.OrderPlaced` carries it (other fields ignored),
/// and a reserved line as `inventory.StockReserved` publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The item.
    pub sku: String,
    /// Units.
    pub quantity: i64,
}

/// The lifecycle of one reservation; stored as `RESERVED`, `COMMITTED`, `RELEASED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReservationStatus {
    /// Held for an order awaiting payment.
    Reserved,
    /// The order was paid: the units are sold.
    Committed,
    /// Given back: the order was called off or the reservation expired.
    Released,
}

impl ReservationStatus {
    /// The stored and published spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Reserved => "RESERVED",
            ReservationStatus::Committed => "COMMITTED",
            ReservationStatus::Released => "RELEASED",
        }
    }
}

/// Units of one SKU held for one order (a `stock_reservations` row).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Reservation {
    /// UUID.
    pub id: String,
    /// The item.
    pub sku: String,
    /// Units held.
    pub quantity: i64,
    /// Where it is in its lifecycle.
    pub status: ReservationStatus,
    /// RFC 3339 time after which an unpaid reservation is released.
    pub expires_at: String,
}

/// Why an order's stock could not be reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionReason {
    /// No such item.
    UnknownSku,
    /// Fewer units available than ordered.
    InsufficientStock,
}

/// What inventory publishes (`inventory.<variant>`), with the saga's payloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum InventoryEvent {
    /// Every line of the order is reserved until `expires_at`.
    StockReserved {
        /// The order.
        order_id: String,
        /// Reserved units per SKU.
        items: Vec<OrderLine>,
        /// When the reservation lapses unless the order is paid.
        expires_at: String,
    },
    /// A line could not be reserved, so nothing was.
    StockReservationRejected {
        /// The order.
        order_id: String,
        /// The first SKU that failed.
        sku: String,
        /// Why.
        reason: RejectionReason,
    },
    /// The order was called off and its reservation given back.
    StockReleased {
        /// The order.
        order_id: String,
        /// The order's reason.
        reason: String,
    },
    /// The reservation lapsed before payment and was given back.
    StockReservationExpired {
        /// The order.
        order_id: String,
    },
    /// The paid order's units are sold.
    StockCommitted {
        /// The order.
        order_id: String,
    },
    /// The order was paid after its reservation had been given back.
    StockCommitFailed {
        /// The order.
        order_id: String,
        /// Always `reservation_expired`.
        reason: String,
    },
    /// The timer inventory sets itself for a reservation's expiry.
    ReservationExpiryDue {
        /// The order.
        order_id: String,
    },
}

impl InventoryEvent {
    /// The event type, without the `inventory.` prefix.
    pub fn event_type(&self) -> &'static str {
        match self {
            InventoryEvent::StockReserved { .. } => "StockReserved",
            InventoryEvent::StockReservationRejected { .. } => "StockReservationRejected",
            InventoryEvent::StockReleased { .. } => "StockReleased",
            InventoryEvent::StockReservationExpired { .. } => "StockReservationExpired",
            InventoryEvent::StockCommitted { .. } => "StockCommitted",
            InventoryEvent::StockCommitFailed { .. } => "StockCommitFailed",
            InventoryEvent::ReservationExpiryDue { .. } => "ReservationExpiryDue",
        }
    }

    /// Every inventory event is about an order.
    pub fn order_id(&self) -> &str {
        match self {
            InventoryEvent::StockReserved { order_id, .. }
            | InventoryEvent::StockReservationRejected { order_id, .. }
            | InventoryEvent::StockReleased { order_id, .. }
            | InventoryEvent::StockReservationExpired { order_id }
            | InventoryEvent::StockCommitted { order_id }
            | InventoryEvent::StockCommitFailed { order_id, .. }
            | InventoryEvent::ReservationExpiryDue { order_id } => order_id,
        }
    }
}

/// An `OrderPlaced` that breaks the contract (no lines, a non-positive
/// quantity). Retrying will not help; the event is dead-lettered for a human.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidOrder(pub String);

/// What to do about a placed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// The order already has reservations: this decision was taken before.
    AlreadyHandled,
    /// Reserve nothing, publish the rejection.
    Rejected(InventoryEvent),
    /// Reserve `lines` (one per SKU) until `expires_at`, publish `event`.
    Reserved {
        /// Units per SKU, in order of first appearance.
        lines: Vec<OrderLine>,
        /// RFC 3339.
        expires_at: String,
        /// `StockReserved`.
        event: InventoryEvent,
    },
}

/// The order's lines summed per SKU, in order of first appearance.
fn merge_lines(lines: &[OrderLine]) -> Result<Vec<OrderLine>, InvalidOrder> {
    if lines.is_empty() {
        return Err(InvalidOrder("the order has no lines".into()));
    }
    let mut merged: Vec<OrderLine> = Vec::new();
    for line in lines {
        if line.quantity <= 0 {
            return Err(InvalidOrder(format!(
                "line for {} has quantity {}",
                line.sku, line.quantity
            )));
        }
        match merged.iter_mut().find(|m| m.sku == line.sku) {
            Some(m) => {
                m.quantity = m
                    .quantity
                    .checked_add(line.quantity)
                    .ok_or_else(|| InvalidOrder(format!("quantities of {} overflow", line.sku)))?;
            }
            None => merged.push(line.clone()),
        }
    }
    Ok(merged)
}

/// Reserves all of an order's lines or none. `existing` are the order's
/// reservations, `stock` the level of every known SKU the order names.
pub fn decide_placement(
    order_id: &str,
    lines: &[OrderLine],
    existing: &[Reservation],
    stock: &BTreeMap<String, StockLevel>,
    now_ms: u64,
    ttl_ms: u64,
) -> Result<Placement, InvalidOrder> {
    if !existing.is_empty() {
        return Ok(Placement::AlreadyHandled);
    }
    let lines = merge_lines(lines)?;
    for line in &lines {
        let reason = match stock.get(&line.sku) {
            None => RejectionReason::UnknownSku,
            Some(level) if level.available() < line.quantity => RejectionReason::InsufficientStock,
            Some(_) => continue,
        };
        return Ok(Placement::Rejected(
            InventoryEvent::StockReservationRejected {
                order_id: order_id.to_owned(),
                sku: line.sku.clone(),
                reason,
            },
        ));
    }
    let expires_at = Instant::from_unix_millis(now_ms.saturating_add(ttl_ms)).to_string();
    let event = InventoryEvent::StockReserved {
        order_id: order_id.to_owned(),
        items: lines.clone(),
        expires_at: expires_at.clone(),
    };
    Ok(Placement::Reserved {
        lines,
        expires_at,
        event,
    })
}

/// Reservations to give back, and what to publish about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The order's reservations still RESERVED.
    pub reservations: Vec<Reservation>,
    /// Recorded on each RELEASED movement.
    pub reason: String,
    /// `StockReleased` or `StockReservationExpired`.
    pub event: InventoryEvent,
}

fn still_reserved(reservations: &[Reservation]) -> Vec<Reservation> {
    reservations
        .iter()
        .filter(|r| r.status == ReservationStatus::Reserved)
        .cloned()
        .collect()
}

/// The order was rejected or cancelled: give back what is still held. `None`
/// when nothing is (never reserved, already expired, already committed).
pub fn decide_release(
    order_id: &str,
    reservations: &[Reservation],
    reason: &str,
) -> Option<Release> {
    let held = still_reserved(reservations);
    (!held.is_empty()).then(|| Release {
        reservations: held,
        reason: reason.to_owned(),
        event: InventoryEvent::StockReleased {
            order_id: order_id.to_owned(),
            reason: reason.to_owned(),
        },
    })
}

/// The reservation's timer fired: give the stock back unless the order was
/// paid or called off meanwhile.
pub fn decide_expiry(order_id: &str, reservations: &[Reservation]) -> Option<Release> {
    let held = still_reserved(reservations);
    (!held.is_empty()).then(|| Release {
        reservations: held,
        reason: EXPIRED.to_owned(),
        event: InventoryEvent::StockReservationExpired {
            order_id: order_id.to_owned(),
        },
    })
}

/// What to do about a paid order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payment {
    /// Never reserved here, or already committed.
    Ignore,
    /// Turn these reservations into sales, publish `StockCommitted`.
    Commit {
        /// The order's reservations still RESERVED.
        reservations: Vec<Reservation>,
        /// `StockCommitted`.
        event: InventoryEvent,
    },
    /// The stock was given back before the payment landed: publish
    /// `StockCommitFailed` so orders refunds.
    Fail(InventoryEvent),
}

/// The order was paid: its held stock is sold.
pub fn decide_payment(order_id: &str, reservations: &[Reservation]) -> Payment {
    let held = still_reserved(reservations);
    if !held.is_empty() {
        return Payment::Commit {
            reservations: held,
            event: InventoryEvent::StockCommitted {
                order_id: order_id.to_owned(),
            },
        };
    }
    let all_released = !reservations.is_empty()
        && reservations
            .iter()
            .all(|r| r.status == ReservationStatus::Released);
    if all_released {
        Payment::Fail(InventoryEvent::StockCommitFailed {
            order_id: order_id.to_owned(),
            reason: "reservation_expired".to_owned(),
        })
    } else {
        Payment::Ignore
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ORDER: &str = "0b7e9f6a-3c1d-4e57-9a55-2f4a8c1d0e11";
    const NOW_MS: u64 = 1_700_000_000_123;

    fn level(on_hand: i64, reserved: i64, committed: i64) -> StockLevel {
        StockLevel {
            on_hand,
            reserved,
            committed,
        }
    }

    fn line(sku: &str, quantity: i64) -> OrderLine {
        OrderLine {
            sku: sku.into(),
            quantity,
        }
    }

    fn stock(items: &[(&str, StockLevel)]) -> BTreeMap<String, StockLevel> {
        items.iter().map(|(s, l)| (s.to_string(), *l)).collect()
    }

    fn reservation(sku: &str, quantity: i64, status: ReservationStatus) -> Reservation {
        Reservation {
            id: format!("r-{sku}"),
            sku: sku.into(),
            quantity,
            status,
            expires_at: "2023-11-14T22:28:20.123Z".into(),
        }
    }

    fn place(
        lines: &[OrderLine],
        existing: &[Reservation],
        stock: &BTreeMap<String, StockLevel>,
    ) -> Placement {
        decide_placement(ORDER, lines, existing, stock, NOW_MS, 900_000).unwrap()
    }

    // --- items -----------------------------------------------------------

    #[test]
    fn available_is_what_is_neither_reserved_nor_committed() {
        assert_eq!(level(10, 3, 2).available(), 5);
        assert_eq!(level(5, 5, 0).available(), 0);
    }

    #[test]
    fn skus_follow_the_shared_rule_and_are_refused_as_invalid_sku() {
        assert_eq!(validate_sku("TSHIRT_RED.XL"), Ok(()));
        assert_eq!(validate_sku("a b"), Err(DomainError::InvalidSku));
        assert_eq!(
            DomainError::InvalidSku.to_string(),
            "sku must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-'"
        );
    }

    #[test]
    fn receiving_a_new_item_makes_all_of_it_available() {
        let received = receive_new_item("MUG", 12).unwrap();
        assert_eq!(received, level(12, 0, 0));
        assert_eq!(received.available(), 12);
        assert_eq!(receive_new_item("MUG", 0), Ok(level(0, 0, 0)));
        assert_eq!(
            receive_new_item("MUG", MAX_QUANTITY),
            Ok(level(MAX_QUANTITY, 0, 0))
        );
    }

    #[test]
    fn receiving_refuses_bad_skus_and_counts() {
        assert_eq!(receive_new_item("a b", 1), Err(DomainError::InvalidSku));
        assert_eq!(
            receive_new_item("MUG", -1),
            Err(DomainError::InvalidQuantity)
        );
        assert_eq!(
            receive_new_item("MUG", MAX_QUANTITY + 1),
            Err(DomainError::InvalidQuantity)
        );
    }

    #[test]
    fn given_stock_when_adjusted_up_or_down_then_on_hand_moves_and_promises_stay() {
        let given = level(10, 3, 2);
        assert_eq!(adjust(given, 5, "delivery"), Ok(level(15, 3, 2)));
        assert_eq!(adjust(given, -5, "damaged"), Ok(level(5, 3, 2)));
    }

    #[test]
    fn given_promised_stock_when_adjusted_below_it_then_insufficient_stock() {
        let err = adjust(level(10, 3, 2), -6, "count").unwrap_err();
        assert_eq!(
            err,
            DomainError::InsufficientStock {
                on_hand: 10,
                delta: -6,
                promised: 5
            }
        );
        assert_eq!(err.code(), "insufficient_stock");
        assert!(err.to_string().contains("below the 5 units"), "{err}");
    }

    #[test]
    fn adjustments_need_a_bounded_non_zero_delta_and_a_reason() {
        let given = level(10, 0, 0);
        assert_eq!(adjust(given, 0, "x"), Err(DomainError::InvalidDelta));
        assert_eq!(
            adjust(given, MAX_QUANTITY + 1, "x"),
            Err(DomainError::InvalidDelta)
        );
        assert_eq!(
            adjust(given, -MAX_QUANTITY - 1, "x"),
            Err(DomainError::InvalidDelta)
        );
        assert_eq!(adjust(given, i64::MIN, "x"), Err(DomainError::InvalidDelta));
        assert_eq!(
            adjust(level(0, 0, 0), MAX_QUANTITY, "x"),
            Ok(level(MAX_QUANTITY, 0, 0))
        );
        assert_eq!(adjust(given, 1, ""), Err(DomainError::InvalidReason));
        assert_eq!(adjust(given, 1, "   "), Err(DomainError::InvalidReason));
        assert_eq!(adjust(given, 1, &"é".repeat(200)), Ok(level(11, 0, 0)));
        assert_eq!(
            adjust(given, 1, &"é".repeat(201)),
            Err(DomainError::InvalidReason)
        );
    }

    #[test]
    fn an_adjustment_that_would_overflow_is_refused() {
        assert_eq!(
            adjust(level(i64::MAX - 1, 0, 0), 2, "x"),
            Err(DomainError::InvalidDelta)
        );
    }

    #[test]
    fn reservation_ttl_is_one_second_to_one_week() {
        assert_eq!(validate_reservation_ttl(1_000), Ok(1_000));
        assert_eq!(validate_reservation_ttl(604_800_000), Ok(604_800_000));
        for bad in [999, 604_800_001, 0, -1_000] {
            assert_eq!(
                validate_reservation_ttl(bad),
                Err(DomainError::InvalidReservationTtl)
            );
        }
        let default = i64::try_from(DEFAULT_RESERVATION_TTL_MS).unwrap();
        assert!(RESERVATION_TTL_MS.contains(&default));
    }

    #[test]
    fn every_error_has_a_distinct_code_and_a_message() {
        let errors = [
            DomainError::InvalidSku,
            DomainError::InvalidQuantity,
            DomainError::InvalidDelta,
            DomainError::InvalidReason,
            DomainError::InvalidReservationTtl,
            DomainError::InsufficientStock {
                on_hand: 1,
                delta: -2,
                promised: 0,
            },
        ];
        let codes: std::collections::BTreeSet<_> = errors.iter().map(DomainError::code).collect();
        assert_eq!(codes.len(), errors.len());
        assert!(errors.iter().all(|e| !e.to_string().is_empty()));
    }

    // --- placing an order --------------------------------------------------

    #[test]
    fn given_enough_stock_when_an_order_is_placed_then_every_line_is_reserved() {
        let stock = stock(&[("MUG", level(10, 0, 0)), ("TEE", level(3, 1, 0))]);
        let placement = place(&[line("MUG", 2), line("TEE", 2)], &[], &stock);
        let expires_at = "2023-11-14T22:28:20.123Z".to_string();
        assert_eq!(
            placement,
            Placement::Reserved {
                lines: vec![line("MUG", 2), line("TEE", 2)],
                expires_at: expires_at.clone(),
                event: InventoryEvent::StockReserved {
                    order_id: ORDER.into(),
                    items: vec![line("MUG", 2), line("TEE", 2)],
                    expires_at,
                },
            }
        );
    }

    #[test]
    fn given_exactly_the_available_units_when_ordered_then_they_are_reserved() {
        let stock = stock(&[("MUG", level(5, 2, 1))]);
        assert!(matches!(
            place(&[line("MUG", 2)], &[], &stock),
            Placement::Reserved { .. }
        ));
    }

    #[test]
    fn lines_of_the_same_sku_are_summed_before_checking_stock() {
        let stock = stock(&[("MUG", level(3, 0, 0)), ("TEE", level(9, 0, 0))]);
        let Placement::Reserved { lines, .. } = place(
            &[line("MUG", 1), line("TEE", 1), line("MUG", 2)],
            &[],
            &stock,
        ) else {
            panic!("expected a reservation");
        };
        assert_eq!(lines, vec![line("MUG", 3), line("TEE", 1)]);

        let rejected = place(&[line("MUG", 2), line("MUG", 2)], &[], &stock);
        assert_eq!(
            rejected,
            Placement::Rejected(InventoryEvent::StockReservationRejected {
                order_id: ORDER.into(),
                sku: "MUG".into(),
                reason: RejectionReason::InsufficientStock,
            })
        );
    }

    #[test]
    fn given_an_unknown_sku_when_ordered_then_nothing_is_reserved() {
        let stock = stock(&[("MUG", level(10, 0, 0))]);
        assert_eq!(
            place(&[line("MUG", 1), line("GHOST", 1)], &[], &stock),
            Placement::Rejected(InventoryEvent::StockReservationRejected {
                order_id: ORDER.into(),
                sku: "GHOST".into(),
                reason: RejectionReason::UnknownSku,
            })
        );
    }

    #[test]
    fn given_reserved_and_committed_units_when_more_are_ordered_than_remain_then_rejected() {
        let stock = stock(&[("MUG", level(10, 4, 5))]);
        assert_eq!(
            place(&[line("MUG", 2)], &[], &stock),
            Placement::Rejected(InventoryEvent::StockReservationRejected {
                order_id: ORDER.into(),
                sku: "MUG".into(),
                reason: RejectionReason::InsufficientStock,
            })
        );
    }

    #[test]
    fn the_first_failing_line_is_reported() {
        let stock = stock(&[("MUG", level(0, 0, 0))]);
        let Placement::Rejected(InventoryEvent::StockReservationRejected { sku, reason, .. }) =
            place(&[line("MUG", 1), line("GHOST", 1)], &[], &stock)
        else {
            panic!("expected a rejection");
        };
        assert_eq!(
            (sku.as_str(), reason),
            ("MUG", RejectionReason::InsufficientStock)
        );
    }

    #[test]
    fn given_reservations_for_the_order_when_placed_again_then_already_handled() {
        let stock = stock(&[("MUG", level(10, 2, 0))]);
        for status in [
            ReservationStatus::Reserved,
            ReservationStatus::Committed,
            ReservationStatus::Released,
        ] {
            let existing = [reservation("MUG", 2, status)];
            assert_eq!(
                place(&[line("MUG", 2)], &existing, &stock),
                Placement::AlreadyHandled
            );
        }
    }

    #[test]
    fn orders_without_lines_or_with_non_positive_quantities_break_the_contract() {
        let stock = stock(&[("MUG", level(10, 0, 0))]);
        for lines in [
            vec![],
            vec![line("MUG", 0)],
            vec![line("MUG", 1), line("MUG", -1)],
        ] {
            assert!(
                decide_placement(ORDER, &lines, &[], &stock, NOW_MS, 1_000).is_err(),
                "{lines:?}"
            );
        }
        let overflow = [line("MUG", i64::MAX), line("MUG", 1)];
        assert!(merge_lines(&overflow).is_err());
    }

    #[test]
    fn a_flash_sale_of_n_units_to_many_buyers_sells_exactly_n() {
        // The router delivers OrderPlaced one at a time; each reservation is
        // applied before the next decision sees the stock.
        let mut mug = level(5, 0, 0);
        let mut reserved_orders = 0;
        for buyer in 0..100 {
            let order_id = format!("order-{buyer}");
            let stock = stock(&[("MUG", mug)]);
            match decide_placement(&order_id, &[line("MUG", 1)], &[], &stock, NOW_MS, 1_000)
                .unwrap()
            {
                Placement::Reserved { lines, .. } => {
                    mug.reserved += lines[0].quantity;
                    reserved_orders += 1;
                }
                Placement::Rejected(_) => {}
                Placement::AlreadyHandled => panic!("new order seen as handled"),
            }
        }
        assert_eq!(reserved_orders, 5);
        assert_eq!(mug, level(5, 5, 0));
        assert_eq!(mug.available(), 0);
    }

    #[test]
    fn the_reservation_expires_one_ttl_after_now() {
        let Placement::Reserved { expires_at, .. } = decide_placement(
            ORDER,
            &[line("MUG", 1)],
            &[],
            &stock(&[("MUG", level(1, 0, 0))]),
            0,
            DEFAULT_RESERVATION_TTL_MS,
        )
        .unwrap() else {
            panic!("expected a reservation");
        };
        assert_eq!(expires_at, "1970-01-01T00:15:00.000Z");
    }

    // --- releasing, expiring, committing ------------------------------------

    #[test]
    fn given_held_stock_when_the_order_is_called_off_then_it_is_released() {
        let held = [
            reservation("MUG", 2, ReservationStatus::Reserved),
            reservation("TEE", 1, ReservationStatus::Reserved),
        ];
        assert_eq!(
            decide_release(ORDER, &held, "coupon_rejected"),
            Some(Release {
                reservations: held.to_vec(),
                reason: "coupon_rejected".into(),
                event: InventoryEvent::StockReleased {
                    order_id: ORDER.into(),
                    reason: "coupon_rejected".into(),
                },
            })
        );
    }

    #[test]
    fn given_nothing_held_when_the_order_is_called_off_then_nothing_happens() {
        assert_eq!(decide_release(ORDER, &[], "insufficient_stock"), None);
        for status in [ReservationStatus::Committed, ReservationStatus::Released] {
            let done = [reservation("MUG", 2, status)];
            assert_eq!(decide_release(ORDER, &done, "buyer_cancelled"), None);
        }
    }

    #[test]
    fn given_held_stock_when_the_timer_fires_then_it_is_released_as_expired() {
        let held = [reservation("MUG", 2, ReservationStatus::Reserved)];
        assert_eq!(
            decide_expiry(ORDER, &held),
            Some(Release {
                reservations: held.to_vec(),
                reason: EXPIRED.into(),
                event: InventoryEvent::StockReservationExpired {
                    order_id: ORDER.into()
                },
            })
        );
    }

    #[test]
    fn given_a_paid_or_called_off_order_when_the_timer_fires_then_nothing_happens() {
        assert_eq!(decide_expiry(ORDER, &[]), None);
        for status in [ReservationStatus::Committed, ReservationStatus::Released] {
            assert_eq!(decide_expiry(ORDER, &[reservation("MUG", 1, status)]), None);
        }
    }

    #[test]
    fn given_held_stock_when_the_order_is_paid_then_it_is_committed() {
        let held = [
            reservation("MUG", 2, ReservationStatus::Reserved),
            reservation("TEE", 1, ReservationStatus::Reserved),
        ];
        assert_eq!(
            decide_payment(ORDER, &held),
            Payment::Commit {
                reservations: held.to_vec(),
                event: InventoryEvent::StockCommitted {
                    order_id: ORDER.into()
                },
            }
        );
    }

    #[test]
    fn given_an_expired_reservation_when_the_order_is_paid_then_the_commit_fails() {
        let released = [
            reservation("MUG", 2, ReservationStatus::Released),
            reservation("TEE", 1, ReservationStatus::Released),
        ];
        assert_eq!(
            decide_payment(ORDER, &released),
            Payment::Fail(InventoryEvent::StockCommitFailed {
                order_id: ORDER.into(),
                reason: "reservation_expired".into(),
            })
        );
    }

    #[test]
    fn given_a_committed_or_unknown_order_when_paid_then_nothing_happens() {
        let committed = [reservation("MUG", 2, ReservationStatus::Committed)];
        assert_eq!(decide_payment(ORDER, &committed), Payment::Ignore);
        assert_eq!(decide_payment(ORDER, &[]), Payment::Ignore);
    }

    // --- events -------------------------------------------------------------

    #[test]
    fn events_serialize_to_the_saga_payloads() {
        let cases = [
            (
                InventoryEvent::StockReserved {
                    order_id: "o".into(),
                    items: vec![line("MUG", 2)],
                    expires_at: "t".into(),
                },
                "StockReserved",
                json!({"order_id": "o", "items": [{"sku": "MUG", "quantity": 2}], "expires_at": "t"}),
            ),
            (
                InventoryEvent::StockReservationRejected {
                    order_id: "o".into(),
                    sku: "MUG".into(),
                    reason: RejectionReason::UnknownSku,
                },
                "StockReservationRejected",
                json!({"order_id": "o", "sku": "MUG", "reason": "unknown_sku"}),
            ),
            (
                InventoryEvent::StockReservationRejected {
                    order_id: "o".into(),
                    sku: "MUG".into(),
                    reason: RejectionReason::InsufficientStock,
                },
                "StockReservationRejected",
                json!({"order_id": "o", "sku": "MUG", "reason": "insufficient_stock"}),
            ),
            (
                InventoryEvent::StockReleased {
                    order_id: "o".into(),
                    reason: "buyer_cancelled".into(),
                },
                "StockReleased",
                json!({"order_id": "o", "reason": "buyer_cancelled"}),
            ),
            (
                InventoryEvent::StockReservationExpired {
                    order_id: "o".into(),
                },
                "StockReservationExpired",
                json!({"order_id": "o"}),
            ),
            (
                InventoryEvent::StockCommitted {
                    order_id: "o".into(),
                },
                "StockCommitted",
                json!({"order_id": "o"}),
            ),
            (
                InventoryEvent::StockCommitFailed {
                    order_id: "o".into(),
                    reason: "reservation_expired".into(),
                },
                "StockCommitFailed",
                json!({"order_id": "o", "reason": "reservation_expired"}),
            ),
            (
                InventoryEvent::ReservationExpiryDue {
                    order_id: "o".into(),
                },
                "ReservationExpiryDue",
                json!({"order_id": "o"}),
            ),
        ];
        for (event, event_type, payload) in cases {
            assert_eq!(event.event_type(), event_type);
            assert_eq!(event.order_id(), "o");
            assert_eq!(
                serde_json::to_value(&event).unwrap(),
                payload,
                "{event_type}"
            );
        }
    }

    #[test]
    fn order_lines_are_read_from_order_placed_ignoring_other_fields() {
        let lines: Vec<OrderLine> = serde_json::from_value(json!([
            {"sku": "MUG", "quantity": 2, "unit_price_minor": 1250}
        ]))
        .unwrap();
        assert_eq!(lines, vec![line("MUG", 2)]);
    }

    #[test]
    fn reservation_statuses_round_trip_their_stored_spelling() {
        for status in [
            ReservationStatus::Reserved,
            ReservationStatus::Committed,
            ReservationStatus::Released,
        ] {
            let stored = json!(status.as_str());
            assert_eq!(
                serde_json::from_value::<ReservationStatus>(stored).unwrap(),
                status
            );
        }
        assert!(serde_json::from_value::<ReservationStatus>(json!("AVAILABLE")).is_err());
    }
}
