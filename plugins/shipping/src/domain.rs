//! Pure shipping rules: the shipment's states ([`Status`]), its state machine
//! and what a refund does to it ([`decide`], [`decide_refund`]), the carriers,
//! their labels and tracking numbers ([`label`]), and what clients
//! ([`input`]) and orders ([`order_paid`]) send. No host calls, so everything
//! here is unit-tested natively; `lib.rs` loads the state, persists the
//! decision through `store.rs` and emits the events.
pub mod input;
pub mod label;
pub mod order_paid;
mod status;

pub use status::Status;

use mercato_sdk::validate::Invalid;

/// What happens to a shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// The carrier reports the parcel in this state.
    Carrier(Status),
    /// The shop no longer wants the parcel sent (the order was refunded).
    Cancel,
}

/// An event to emit for an applied update, in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    Dispatched,
    Delivered,
    Cancelled,
    Returned,
    Lost,
}

impl Emit {
    /// The event type (no source prefix).
    pub fn event_type(self) -> &'static str {
        match self {
            Emit::Dispatched => "ShipmentDispatched",
            Emit::Delivered => "ShipmentDelivered",
            Emit::Cancelled => "ShipmentCancelled",
            Emit::Returned => "ShipmentReturned",
            Emit::Lost => "ShipmentLost",
        }
    }

    /// The state the event announces (its payload's `status`): IN_TRANSIT for
    /// a dispatch even when it is emitted on a jump straight to DELIVERED.
    pub fn status(self) -> Status {
        match self {
            Emit::Dispatched => Status::InTransit,
            Emit::Delivered => Status::Delivered,
            Emit::Cancelled => Status::Cancelled,
            Emit::Returned => Status::Returned,
            Emit::Lost => Status::Lost,
        }
    }
}

/// Why an update changes nothing. Carrier updates are still recorded in the
/// history, with [`Ignored::note`] as the row's note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// The shipment already reached an outcome (or was cancelled).
    Terminal(Status),
    /// The shipment is already at or past the reported state: a late or
    /// repeated report.
    NotForward { current: Status, reported: Status },
    /// The parcel is with the carrier: too late to cancel.
    AlreadyDispatched(Status),
    /// Money is still captured for the order: it ships.
    PartialRefund,
}

impl Ignored {
    /// Why, for the history and the log.
    pub fn note(self) -> String {
        match self {
            Ignored::Terminal(current) => {
                format!("not applied: the shipment is already {}", current.as_str())
            }
            Ignored::NotForward { current, reported } => format!(
                "not applied: the shipment is already {}, at or past {}",
                current.as_str(),
                reported.as_str()
            ),
            Ignored::AlreadyDispatched(current) => format!(
                "not cancelled: the shipment is already {}",
                current.as_str()
            ),
            Ignored::PartialRefund => "not cancelled: the refund is partial".to_owned(),
        }
    }
}

/// The outcome of an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Move the shipment to `to` and emit `emit`, in order.
    Apply { to: Status, emit: Vec<Emit> },
    /// Change nothing.
    Ignore(Ignored),
    /// The update is not one anybody may make (422).
    Refuse(Invalid),
}

/// Given a shipment in `current`, when `update` happens, then the decision.
///
/// Carrier reports only move a shipment forward; a report at or below the
/// current rank, or about a terminal shipment, is ignored. A jump past
/// IN_TRANSIT from a parcel never dispatched emits `ShipmentDispatched` first,
/// so consumers see every step whatever the carrier skipped. Cancelling is
/// possible until the parcel is dispatched.
pub fn decide(current: Status, update: Update) -> Decision {
    match update {
        Update::Carrier(reported) => {
            if !reported.carrier_reportable() {
                return Decision::Refuse(Invalid::new(
                    "invalid_status",
                    format!(
                        "a carrier cannot report {}; use LABEL_CREATED, IN_TRANSIT, DELIVERED, \
                         RETURNED or LOST",
                        reported.as_str()
                    ),
                ));
            }
            if current.is_terminal() {
                return Decision::Ignore(Ignored::Terminal(current));
            }
            if reported.rank() <= current.rank() {
                return Decision::Ignore(Ignored::NotForward { current, reported });
            }
            let mut emit = Vec::new();
            if current.rank() < Status::InTransit.rank()
                && reported.rank() >= Status::InTransit.rank()
            {
                emit.push(Emit::Dispatched);
            }
            match reported {
                Status::Delivered => emit.push(Emit::Delivered),
                Status::Returned => emit.push(Emit::Returned),
                Status::Lost => emit.push(Emit::Lost),
                _ => {}
            }
            Decision::Apply { to: reported, emit }
        }
        Update::Cancel => {
            if current.is_terminal() {
                Decision::Ignore(Ignored::Terminal(current))
            } else if current.rank() >= Status::InTransit.rank() {
                Decision::Ignore(Ignored::AlreadyDispatched(current))
            } else {
                Decision::Apply {
                    to: Status::Cancelled,
                    emit: vec![Emit::Cancelled],
                }
            }
        }
    }
}

/// `payments.PaymentRefunded` for the shipment's order: a full refund
/// (`refunded_total_minor >= captured_minor`) cancels a shipment that has not
/// left; a partial one leaves it alone.
pub fn decide_refund(current: Status, refunded_total_minor: i64, captured_minor: i64) -> Decision {
    if refunded_total_minor < captured_minor {
        return Decision::Ignore(Ignored::PartialRefund);
    }
    decide(current, Update::Cancel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    fn apply(to: Status, emit: &[Emit]) -> Decision {
        Decision::Apply {
            to,
            emit: emit.to_vec(),
        }
    }

    fn refused(decision: &Decision) -> bool {
        matches!(decision, Decision::Refuse(invalid) if invalid.code == "invalid_status")
    }

    /// Every (current, reported) pair, written out rather than derived, so the
    /// table is the specification the decider is checked against.
    #[test]
    fn every_carrier_report_from_every_state() {
        use Emit as E;
        let not_forward =
            |current, reported| Decision::Ignore(Ignored::NotForward { current, reported });
        let terminal = |current| Decision::Ignore(Ignored::Terminal(current));
        let table: [(Status, Status, Decision); 35] = [
            (Pending, LabelCreated, apply(LabelCreated, &[])),
            (Pending, InTransit, apply(InTransit, &[E::Dispatched])),
            (
                Pending,
                Delivered,
                apply(Delivered, &[E::Dispatched, E::Delivered]),
            ),
            (
                Pending,
                Returned,
                apply(Returned, &[E::Dispatched, E::Returned]),
            ),
            (Pending, Lost, apply(Lost, &[E::Dispatched, E::Lost])),
            (
                LabelCreated,
                LabelCreated,
                not_forward(LabelCreated, LabelCreated),
            ),
            (LabelCreated, InTransit, apply(InTransit, &[E::Dispatched])),
            (
                LabelCreated,
                Delivered,
                apply(Delivered, &[E::Dispatched, E::Delivered]),
            ),
            (
                LabelCreated,
                Returned,
                apply(Returned, &[E::Dispatched, E::Returned]),
            ),
            (LabelCreated, Lost, apply(Lost, &[E::Dispatched, E::Lost])),
            (
                InTransit,
                LabelCreated,
                not_forward(InTransit, LabelCreated),
            ),
            (InTransit, InTransit, not_forward(InTransit, InTransit)),
            (InTransit, Delivered, apply(Delivered, &[E::Delivered])),
            (InTransit, Returned, apply(Returned, &[E::Returned])),
            (InTransit, Lost, apply(Lost, &[E::Lost])),
            (Delivered, LabelCreated, terminal(Delivered)),
            (Delivered, InTransit, terminal(Delivered)),
            (Delivered, Delivered, terminal(Delivered)),
            (Delivered, Returned, terminal(Delivered)),
            (Delivered, Lost, terminal(Delivered)),
            (Cancelled, LabelCreated, terminal(Cancelled)),
            (Cancelled, InTransit, terminal(Cancelled)),
            (Cancelled, Delivered, terminal(Cancelled)),
            (Cancelled, Returned, terminal(Cancelled)),
            (Cancelled, Lost, terminal(Cancelled)),
            (Returned, LabelCreated, terminal(Returned)),
            (Returned, InTransit, terminal(Returned)),
            (Returned, Delivered, terminal(Returned)),
            (Returned, Returned, terminal(Returned)),
            (Returned, Lost, terminal(Returned)),
            (Lost, LabelCreated, terminal(Lost)),
            (Lost, InTransit, terminal(Lost)),
            (Lost, Delivered, terminal(Lost)),
            (Lost, Returned, terminal(Lost)),
            (Lost, Lost, terminal(Lost)),
        ];
        for (current, reported, expected) in &table {
            assert_eq!(
                decide(*current, Update::Carrier(*reported)),
                *expected,
                "{current:?} + {reported:?}"
            );
        }
        // The table covers every state against every reportable status.
        for current in Status::ALL {
            for reported in Status::ALL.into_iter().filter(|s| s.carrier_reportable()) {
                assert!(
                    table
                        .iter()
                        .any(|(c, r, _)| (*c, *r) == (current, reported)),
                    "{current:?} + {reported:?} missing"
                );
            }
        }
    }

    #[test]
    fn a_carrier_can_never_report_pending_or_cancelled_whatever_the_state() {
        for current in Status::ALL {
            for reported in [Pending, Cancelled] {
                let decision = decide(current, Update::Carrier(reported));
                assert!(
                    refused(&decision),
                    "{current:?} + {reported:?}: {decision:?}"
                );
            }
        }
        let Decision::Refuse(invalid) = decide(Pending, Update::Carrier(Cancelled)) else {
            unreachable!()
        };
        assert_eq!(
            invalid.message,
            "a carrier cannot report CANCELLED; use LABEL_CREATED, IN_TRANSIT, DELIVERED, \
             RETURNED or LOST"
        );
    }

    #[test]
    fn cancelling_works_until_dispatch_from_every_state() {
        let cancelled = apply(Cancelled, &[Emit::Cancelled]);
        let expected = [
            (Pending, cancelled.clone()),
            (LabelCreated, cancelled),
            (
                InTransit,
                Decision::Ignore(Ignored::AlreadyDispatched(InTransit)),
            ),
            (Delivered, Decision::Ignore(Ignored::Terminal(Delivered))),
            (Cancelled, Decision::Ignore(Ignored::Terminal(Cancelled))),
            (Returned, Decision::Ignore(Ignored::Terminal(Returned))),
            (Lost, Decision::Ignore(Ignored::Terminal(Lost))),
        ];
        assert_eq!(expected.len(), Status::ALL.len());
        for (current, decision) in expected {
            assert_eq!(decide(current, Update::Cancel), decision, "{current:?}");
        }
    }

    #[test]
    fn no_applied_update_ever_moves_a_shipment_backwards() {
        let updates = Status::ALL
            .into_iter()
            .map(Update::Carrier)
            .chain([Update::Cancel]);
        for current in Status::ALL {
            for update in updates.clone() {
                if let Decision::Apply { to, emit } = decide(current, update) {
                    assert!(!current.is_terminal(), "{current:?} changed");
                    assert!(to.rank() > current.rank(), "{current:?} -> {to:?}");
                    assert!(
                        !emit.is_empty() || to == LabelCreated,
                        "{current:?} -> {to:?}"
                    );
                    assert_eq!(emit.last().map(|e| e.status()).unwrap_or(to), to);
                }
            }
        }
    }

    /// Out-of-order delivery: whatever order a carrier's reports arrive in,
    /// folding them through the decider ends at the furthest one, and every
    /// shipment that reached DELIVERED announced its dispatch exactly once.
    #[test]
    fn out_of_order_reports_end_at_the_furthest_state() {
        let orders: [&[Status]; 4] = [
            &[LabelCreated, InTransit, Delivered],
            &[Delivered, InTransit, LabelCreated],
            &[InTransit, Delivered, LabelCreated, InTransit],
            &[LabelCreated, Delivered, Delivered],
        ];
        for reports in orders {
            let mut state = Pending;
            let mut emitted = Vec::new();
            for reported in reports {
                match decide(state, Update::Carrier(*reported)) {
                    Decision::Apply { to, emit } => {
                        state = to;
                        emitted.extend(emit);
                    }
                    Decision::Ignore(_) => {}
                    Decision::Refuse(invalid) => panic!("{invalid}"),
                }
            }
            assert_eq!(state, Delivered, "{reports:?}");
            assert_eq!(emitted, [Emit::Dispatched, Emit::Delivered], "{reports:?}");
        }
    }

    #[test]
    fn only_a_full_refund_cancels_and_only_before_dispatch() {
        let cancelled = apply(Cancelled, &[Emit::Cancelled]);
        assert_eq!(decide_refund(Pending, 1_000, 1_000), cancelled);
        assert_eq!(decide_refund(LabelCreated, 1_000, 1_000), cancelled);
        // Refunded past what was captured is still "everything".
        assert_eq!(decide_refund(LabelCreated, 1_200, 1_000), cancelled);
        for current in Status::ALL {
            assert_eq!(
                decide_refund(current, 999, 1_000),
                Decision::Ignore(Ignored::PartialRefund),
                "{current:?}"
            );
        }
        assert_eq!(
            decide_refund(InTransit, 1_000, 1_000),
            Decision::Ignore(Ignored::AlreadyDispatched(InTransit))
        );
        for current in [Delivered, Returned, Lost, Cancelled] {
            assert_eq!(
                decide_refund(current, 1_000, 1_000),
                Decision::Ignore(Ignored::Terminal(current))
            );
        }
    }

    #[test]
    fn events_announce_their_own_state() {
        let emits = [
            (Emit::Dispatched, "ShipmentDispatched", InTransit),
            (Emit::Delivered, "ShipmentDelivered", Delivered),
            (Emit::Cancelled, "ShipmentCancelled", Cancelled),
            (Emit::Returned, "ShipmentReturned", Returned),
            (Emit::Lost, "ShipmentLost", Lost),
        ];
        for (emit, event_type, status) in emits {
            assert_eq!((emit.event_type(), emit.status()), (event_type, status));
        }
    }

    #[test]
    fn ignored_updates_say_why() {
        assert_eq!(
            Ignored::NotForward {
                current: InTransit,
                reported: LabelCreated
            }
            .note(),
            "not applied: the shipment is already IN_TRANSIT, at or past LABEL_CREATED"
        );
        assert_eq!(
            Ignored::Terminal(Delivered).note(),
            "not applied: the shipment is already DELIVERED"
        );
        assert_eq!(
            Ignored::AlreadyDispatched(InTransit).note(),
            "not cancelled: the shipment is already IN_TRANSIT"
        );
        assert_eq!(
            Ignored::PartialRefund.note(),
            "not cancelled: the refund is partial"
        );
    }
}
