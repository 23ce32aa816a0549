//! The saga decider and submission, natively.
use super::*;

const T0: &str = "2026-01-01T00:00:00.000Z";
const T1: &str = "2026-01-01T00:00:01.000Z";

fn session(status: Status) -> Session {
    Session {
        status,
        order_id: None,
        payment_intent_id: None,
        shipment_id: None,
        total_minor: None,
        reached: Vec::new(),
        coupon_rejection: None,
    }
}

/// A submitted session whose order `o1` was placed.
fn placed() -> Session {
    Session {
        order_id: Some("o1".into()),
        reached: vec![Step::Submitted, Step::OrderPlaced],
        ..session(Status::Submitted)
    }
}

fn at(text: &str) -> Instant {
    Instant::parse(text).unwrap()
}

fn reached(step: Step, at: &str) -> Vec<Reached> {
    vec![Reached {
        step,
        at: at.to_owned(),
    }]
}

fn failed(reason: FailureReason, detail: &str) -> Vec<Failure> {
    vec![Failure {
        reason,
        detail: detail.to_owned(),
        at: T1.to_owned(),
    }]
}

/// Applies facts in order, all at `T1`.
fn run(start: Session, facts: Vec<Fact>) -> Decision {
    facts
        .into_iter()
        .fold(Decision::new(start), |d, fact| d.apply(fact, T1))
}

#[test]
fn stored_forms_are_the_documented_ones() {
    let steps: Vec<_> = Step::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        steps,
        [
            "SUBMITTED",
            "ORDER_PLACED",
            "STOCK_RESERVED",
            "AWAITING_PAYMENT",
            "PAID",
            "COMPLETED"
        ]
    );
    for step in Step::ALL {
        assert_eq!(serde_json::to_value(step).unwrap(), step.as_str());
    }
    for status in [
        Status::Open,
        Status::Submitted,
        Status::Completed,
        Status::Failed,
        Status::Expired,
    ] {
        assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
    }
    for reason in [
        FailureReason::Invalid,
        FailureReason::Stock,
        FailureReason::Coupon,
        FailureReason::PaymentDeclined,
        FailureReason::Expired,
        FailureReason::Cancelled,
    ] {
        assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
    }
}

#[test]
fn orders_rejection_reasons_split_into_stock_and_coupon() {
    for stock in [
        "insufficient_stock: TEE",
        "unknown_sku: MUG",
        "unspecified: ",
        "unspecified",
    ] {
        assert_eq!(rejection_reason(stock), FailureReason::Stock, "{stock}");
    }
    for coupon in [
        "coupon_usage_limit_reached",
        "coupon_expired",
        "coupon_rule_rejected",
    ] {
        assert_eq!(rejection_reason(coupon), FailureReason::Coupon, "{coupon}");
    }
}

#[test]
fn orders_cancellation_reasons_split_into_payment_expiry_and_the_rest() {
    assert_eq!(
        cancellation_reason("payment_card_declined"),
        FailureReason::PaymentDeclined
    );
    assert_eq!(
        cancellation_reason("payment_insufficient_funds"),
        FailureReason::PaymentDeclined
    );
    assert_eq!(
        cancellation_reason("reservation_expired"),
        FailureReason::Expired
    );
    assert_eq!(
        cancellation_reason("cancelled_by_buyer"),
        FailureReason::Cancelled
    );
    assert_eq!(cancellation_reason("unspecified"), FailureReason::Cancelled);
}

#[test]
fn given_an_in_flight_session_each_progress_fact_records_its_step() {
    let cases = [
        (Fact::StockReserved, Step::StockReserved),
        (
            Fact::OrderConfirmed {
                total_minor: 2_500,
                coupon_rejection: None,
            },
            Step::AwaitingPayment,
        ),
        (Fact::OrderPaid, Step::Paid),
        (
            Fact::ShipmentCreated {
                shipment_id: "sh".into(),
            },
            Step::Completed,
        ),
    ];
    for (fact, step) in cases {
        let d = decide(&placed(), fact.clone(), T1);
        assert_eq!(d.steps, reached(step, T1), "{fact:?}");
        assert!(d.failures.is_empty());
        assert!(d.session.reached.contains(&step));
    }
}

#[test]
fn order_placed_links_the_order_and_records_the_step() {
    let start = Session {
        reached: vec![Step::Submitted],
        ..session(Status::Submitted)
    };
    let d = decide(
        &start,
        Fact::OrderPlaced {
            order_id: "o1".into(),
        },
        T1,
    );
    assert_eq!(d.session.order_id.as_deref(), Some("o1"));
    assert_eq!(d.session.status, Status::Submitted);
    assert_eq!(d.steps, reached(Step::OrderPlaced, T1));
}

#[test]
fn a_second_order_for_a_linked_session_is_not_followed() {
    let d = decide(
        &placed(),
        Fact::OrderPlaced {
            order_id: "o2".into(),
        },
        T1,
    );
    assert!(!d.changes(&placed()));
}

#[test]
fn confirmation_records_the_total_and_the_intent_its_id_without_a_step() {
    let d = run(
        placed(),
        vec![
            Fact::OrderConfirmed {
                total_minor: 2_500,
                coupon_rejection: None,
            },
            Fact::PaymentIntentCreated {
                intent_id: "pi".into(),
            },
        ],
    );
    assert_eq!(d.session.total_minor, Some(2_500));
    assert_eq!(d.session.payment_intent_id.as_deref(), Some("pi"));
    assert_eq!(d.steps, reached(Step::AwaitingPayment, T1));
    // A second intent announcement does not replace the first.
    let again = decide(
        &d.session,
        Fact::PaymentIntentCreated {
            intent_id: "other".into(),
        },
        T1,
    );
    assert!(!again.changes(&d.session));
}

#[test]
fn a_shipment_completes_the_session() {
    let d = decide(
        &placed(),
        Fact::ShipmentCreated {
            shipment_id: "sh".into(),
        },
        T1,
    );
    assert_eq!(d.session.status, Status::Completed);
    assert_eq!(d.session.shipment_id.as_deref(), Some("sh"));
}

#[test]
fn each_failure_fact_fails_an_in_flight_session_with_its_reason() {
    let cases = [
        (
            Fact::CheckoutRejected {
                code: "unknown_sku".into(),
                message: "no product with sku X".into(),
            },
            FailureReason::Invalid,
            "unknown_sku: no product with sku X",
        ),
        (
            Fact::OrderRejected {
                reason: "insufficient_stock: TEE".into(),
                coupon_rejection: None,
            },
            FailureReason::Stock,
            "insufficient_stock: TEE",
        ),
        (
            Fact::OrderRejected {
                reason: "coupon_expired".into(),
                coupon_rejection: None,
            },
            FailureReason::Coupon,
            "coupon_expired",
        ),
        (
            Fact::OrderCancelled {
                reason: "payment_card_declined".into(),
            },
            FailureReason::PaymentDeclined,
            "payment_card_declined",
        ),
        (
            Fact::OrderCancelled {
                reason: "reservation_expired".into(),
            },
            FailureReason::Expired,
            "reservation_expired",
        ),
        (
            Fact::OrderCancelled {
                reason: "cancelled_by_buyer".into(),
            },
            FailureReason::Cancelled,
            "cancelled_by_buyer",
        ),
    ];
    for (fact, reason, detail) in cases {
        let d = decide(&placed(), fact.clone(), T1);
        assert_eq!(d.session.status, Status::Failed, "{fact:?}");
        assert_eq!(d.failures, failed(reason, detail), "{fact:?}");
        assert!(d.steps.is_empty());
    }
}

/// Why coupon SPEND did not apply, and what the order did.
fn coupon_rejection(outcome: &str) -> Option<CouponRejection> {
    Some(CouponRejection {
        code: "rule_rejected".into(),
        rule_code: Some("declined".into()),
        message: "rule `tiered-spend` 1.0.0: declined: subtotal 9.00 EUR is below the lowest tier"
            .into(),
        outcome: outcome.into(),
    })
}

#[test]
fn a_coupon_that_rejected_the_order_fails_the_session_with_its_message() {
    let d = decide(
        &placed(),
        Fact::OrderRejected {
            reason: "coupon_rule_rejected".into(),
            coupon_rejection: coupon_rejection("order_rejected"),
        },
        T1,
    );
    assert_eq!(d.session.status, Status::Failed);
    assert_eq!(
        d.failures,
        failed(
            FailureReason::Coupon,
            "coupon_rule_rejected: rule `tiered-spend` 1.0.0: declined: subtotal 9.00 EUR is below the lowest tier"
        )
    );
    assert_eq!(
        d.session.coupon_rejection,
        coupon_rejection("order_rejected")
    );
    // Once the outcome is known, a late rejection records nothing.
    let late = decide(
        &d.session,
        Fact::OrderRejected {
            reason: "coupon_expired".into(),
            coupon_rejection: coupon_rejection("order_rejected"),
        },
        T1,
    );
    assert!(!late.changes(&d.session));
}

#[test]
fn an_order_that_proceeds_without_its_coupon_shows_why_and_goes_on() {
    let d = run(
        placed(),
        vec![
            Fact::StockReserved,
            Fact::OrderConfirmed {
                total_minor: 2_500,
                coupon_rejection: coupon_rejection("proceeded_without"),
            },
        ],
    );
    assert_eq!(d.session.status, Status::Submitted);
    assert_eq!(d.session.total_minor, Some(2_500));
    assert!(d.failures.is_empty());
    assert_eq!(
        d.session.coupon_rejection,
        coupon_rejection("proceeded_without")
    );
    // A repeated confirmation changes nothing.
    let again = decide(
        &d.session,
        Fact::OrderConfirmed {
            total_minor: 2_500,
            coupon_rejection: None,
        },
        T1,
    );
    assert!(!again.changes(&d.session));
}

#[test]
fn a_failure_after_the_outcome_is_known_is_ignored() {
    let completed = run(
        placed(),
        vec![Fact::ShipmentCreated {
            shipment_id: "sh".into(),
        }],
    )
    .session;
    let failed = run(
        placed(),
        vec![Fact::OrderRejected {
            reason: "coupon_expired".into(),
            coupon_rejection: None,
        }],
    )
    .session;
    let expired = run(session(Status::Open), vec![Fact::ExpiryDue]).session;
    for state in [completed, failed, expired, session(Status::Open)] {
        for fact in [
            Fact::OrderCancelled {
                reason: "payment_card_declined".into(),
            },
            Fact::OrderRejected {
                reason: "insufficient_stock: TEE".into(),
                coupon_rejection: None,
            },
            Fact::CheckoutRejected {
                code: "c".into(),
                message: "m".into(),
            },
        ] {
            let d = decide(&state, fact, T1);
            assert!(!d.changes(&state), "{:?}", state.status);
        }
    }
}

#[test]
fn each_step_is_recorded_once_with_its_first_time() {
    let d = run(placed(), vec![Fact::StockReserved, Fact::OrderPaid]);
    let again = run(
        d.session.clone(),
        vec![
            Fact::StockReserved,
            Fact::OrderPaid,
            Fact::OrderConfirmed {
                total_minor: 1,
                coupon_rejection: None,
            },
        ],
    );
    assert_eq!(again.steps, reached(Step::AwaitingPayment, T1));
    let twice = decide(
        &again.session,
        Fact::OrderConfirmed {
            total_minor: 999,
            coupon_rejection: None,
        },
        T0,
    );
    assert!(
        !twice.changes(&again.session),
        "a repeated confirmation changes neither step nor total"
    );
    let placed_again = decide(
        &placed(),
        Fact::OrderPlaced {
            order_id: "o1".into(),
        },
        T1,
    );
    assert!(!placed_again.changes(&placed()));
}

#[test]
fn late_steps_of_a_finished_session_are_still_recorded_but_change_no_status() {
    // Stock reserved, reported after the coupon already rejected the order.
    let failed = run(
        placed(),
        vec![Fact::OrderRejected {
            reason: "coupon_expired".into(),
            coupon_rejection: None,
        }],
    )
    .session;
    let d = decide(&failed, Fact::StockReserved, T0);
    assert_eq!(
        (d.session.status, d.steps),
        (Status::Failed, reached(Step::StockReserved, T0))
    );
    // Payment reported after the shipment.
    let completed = run(
        placed(),
        vec![Fact::ShipmentCreated {
            shipment_id: "sh".into(),
        }],
    )
    .session;
    let d = decide(&completed, Fact::OrderPaid, T0);
    assert_eq!(
        (d.session.status, d.steps),
        (Status::Completed, reached(Step::Paid, T0))
    );
}

#[test]
fn expiry_only_expires_an_open_session() {
    let d = decide(&session(Status::Open), Fact::ExpiryDue, T1);
    assert_eq!(d.session.status, Status::Expired);
    assert_eq!(d.failures, failed(FailureReason::Expired, EXPIRED_DETAIL));
    for status in [
        Status::Submitted,
        Status::Completed,
        Status::Failed,
        Status::Expired,
    ] {
        let state = session(status);
        assert!(
            !decide(&state, Fact::ExpiryDue, T1).changes(&state),
            "{status:?}"
        );
    }
}

#[test]
fn only_an_open_unexpired_session_can_be_submitted() {
    let open = session(Status::Open);
    let d = submit(&open, at(T1), at(T0)).unwrap();
    assert_eq!(d.session.status, Status::Submitted);
    assert_eq!(d.steps, reached(Step::Submitted, T0));
    assert!(
        submit(&open, at(T1), at(T1))
            .unwrap_err()
            .message
            .contains("expired at")
    );
    for status in [
        Status::Submitted,
        Status::Completed,
        Status::Failed,
        Status::Expired,
    ] {
        let refused = submit(&session(status), at(T1), at(T0)).unwrap_err();
        assert!(
            refused.message.contains(status.as_str()),
            "{}",
            refused.message
        );
    }
    assert_eq!(NotOpen::CODE, "session_not_open");
}

#[test]
fn the_happy_path_ends_completed_in_any_order_of_arrival() {
    let submitted = submit(&session(Status::Open), at(T1), at(T0))
        .unwrap()
        .session;
    let in_order = run(
        submitted.clone(),
        vec![
            Fact::OrderPlaced {
                order_id: "o1".into(),
            },
            Fact::StockReserved,
            Fact::OrderConfirmed {
                total_minor: 2_500,
                coupon_rejection: None,
            },
            Fact::PaymentIntentCreated {
                intent_id: "pi".into(),
            },
            Fact::OrderPaid,
            Fact::ShipmentCreated {
                shipment_id: "sh".into(),
            },
        ],
    );
    // Shipping and inventory reported before orders did.
    let shuffled = run(
        submitted,
        vec![
            Fact::OrderPlaced {
                order_id: "o1".into(),
            },
            Fact::ShipmentCreated {
                shipment_id: "sh".into(),
            },
            Fact::PaymentIntentCreated {
                intent_id: "pi".into(),
            },
            Fact::StockReserved,
            Fact::OrderConfirmed {
                total_minor: 2_500,
                coupon_rejection: None,
            },
            Fact::OrderPaid,
        ],
    );
    for d in [&in_order, &shuffled] {
        assert_eq!(d.session.status, Status::Completed);
        assert_eq!(d.steps.len(), 5);
        let mut steps = d.session.reached.clone();
        steps.sort();
        assert_eq!(steps, Step::ALL);
    }
    assert_eq!(in_order.session.total_minor, shuffled.session.total_minor);
    assert_eq!(
        in_order.session.payment_intent_id,
        shuffled.session.payment_intent_id
    );
}
