use super::place::MAX_TOTAL_MINOR;
use super::*;
use serde_json::json;

/// The test catalog: TEE and GOLD in EUR, MUG in USD.
pub(super) fn offer(sku: &str) -> Option<Offer> {
    match sku {
        "TEE" => Some(Offer {
            sku: "TEE".into(),
            product_id: "p-tee".into(),
            name: "Tee".into(),
            price_minor: 1_500,
            currency: "EUR".into(),
            version: 2,
            attributes: json!({}),
        }),
        "MUG" => Some(Offer {
            sku: "MUG".into(),
            product_id: "p-mug".into(),
            name: "Mug".into(),
            price_minor: 800,
            currency: "USD".into(),
            version: 1,
            attributes: json!({}),
        }),
        "GOLD" => Some(Offer {
            sku: "GOLD".into(),
            product_id: "p-gold".into(),
            name: "Gold bar".into(),
            price_minor: MAX_TOTAL_MINOR,
            currency: "EUR".into(),
            version: 1,
            attributes: json!({}),
        }),
        _ => None,
    }
}

fn cmd(lines: Vec<(&str, i64)>, coupon: Option<&str>) -> PlaceOrder {
    PlaceOrder {
        buyer_id: "buyer-1".into(),
        currency: "EUR".into(),
        lines: lines.into_iter().map(|(s, q)| (s.to_owned(), q)).collect(),
        coupon_code: coupon.map(str::to_owned),
        shipping_address: address(),
        checkout_session_id: None,
    }
}

/// A valid address, with spaces validation trims.
fn address() -> ShippingAddress {
    ShippingAddress {
        name: "  Grace Hopper ".into(),
        line1: "1 Navy Way".into(),
        line2: Some(" ".into()),
        city: "Arlington".into(),
        postal_code: "22202".into(),
        country: "US".into(),
    }
}

fn pending(coupon: Option<&str>) -> Order {
    place("o1", cmd(vec![("TEE", 2)], coupon), offer).unwrap().0
}

/// The test payment intent `pi` was created.
fn intent_created() -> Fact {
    Fact::IntentCreated {
        intent_id: "pi".into(),
    }
}

/// `amount_minor` was captured on intent `pi`.
fn captured(amount_minor: i64) -> Fact {
    Fact::PaymentCaptured {
        intent_id: "pi".into(),
        amount_minor,
    }
}

/// Payments reports `refunded_total_minor` refunded so far.
fn refunded(refunded_total_minor: i64) -> Fact {
    Fact::PaymentRefunded {
        refunded_total_minor,
    }
}

/// Applies facts in turn, checking every transition is legal.
fn run(order: Order, facts: Vec<Fact>) -> (Order, Vec<Emit>) {
    let mut order = order;
    let mut emitted = Vec::new();
    for fact in facts {
        let d = decide(&order, fact).unwrap();
        if let Some(t) = &d.transition {
            assert!(legal(t.from, t.to), "{t:?}");
        }
        emitted.extend(d.emit);
        order = d.order;
    }
    (order, emitted)
}

#[test]
fn placing_prices_lines_from_the_catalog_snapshot() {
    let (order, lines) = place("o1", cmd(vec![("TEE", 3)], Some("save10")), offer).unwrap();
    assert_eq!(order.subtotal_minor, 4_500);
    assert_eq!(order.coupon_code.as_deref(), Some("SAVE10"));
    assert_eq!(order.coupon, Coupon::Pending);
    assert_eq!(lines[0].unit_price_minor, 1_500);
    assert_eq!(lines[0].snapshot["price_version"], 2);
}

#[test]
fn bad_orders_are_refused_with_a_reason() {
    let cases = [
        (cmd(vec![("NOPE", 1)], None), "unknown_sku"),
        (cmd(vec![("TEE", 0)], None), "invalid_quantity"),
        (cmd(vec![("TEE", -2)], None), "invalid_quantity"),
        (cmd(vec![("TEE", 1_000_000)], None), "invalid_quantity"),
        (cmd(vec![("MUG", 1)], None), "currency_mismatch"),
        (cmd(vec![("GOLD", 2)], None), "amount_too_large"),
        (cmd(vec![], None), "no_items"),
        (cmd(vec![("bad sku", 1)], None), "invalid_sku"),
        (cmd(vec![("TEE", 1)], Some("x")), "invalid_coupon_code"),
        (
            PlaceOrder {
                currency: "euro".into(),
                ..cmd(vec![("TEE", 1)], None)
            },
            "invalid_currency",
        ),
        (
            PlaceOrder {
                buyer_id: " ".into(),
                ..cmd(vec![("TEE", 1)], None)
            },
            "invalid_buyer",
        ),
        (
            PlaceOrder {
                shipping_address: ShippingAddress {
                    postal_code: "22;202".into(),
                    ..address()
                },
                ..cmd(vec![("TEE", 1)], None)
            },
            "invalid_shipping_address",
        ),
        (
            PlaceOrder {
                shipping_address: ShippingAddress {
                    country: "USA".into(),
                    ..address()
                },
                ..cmd(vec![("TEE", 1)], None)
            },
            "invalid_shipping_address",
        ),
    ];
    for (c, code) in cases {
        assert_eq!(place("o", c, offer).unwrap_err().code, code);
    }
}

#[test]
fn happy_path_reaches_paid_and_full_refund() {
    let (order, emitted) = run(
        pending(None),
        vec![
            Fact::StockReserved,
            intent_created(),
            captured(3_000),
            refunded(1_000),
            refunded(3_000),
        ],
    );
    assert_eq!(order.status, Status::Refunded);
    assert_eq!(
        emitted,
        vec![
            Emit::Confirmed,
            Emit::Paid {
                intent_id: "pi".into(),
                amount_minor: 3_000
            },
            // Each refund that changes the status is announced.
            Emit::Refunded,
            Emit::Refunded,
        ]
    );
}

#[test]
fn a_coupon_order_confirms_only_when_both_sides_settle() {
    let order = pending(Some("SAVE"));
    let (order, emitted) = run(order, vec![Fact::StockReserved]);
    assert_eq!((order.status, emitted.len()), (Status::Pending, 0));
    let (order, emitted) = run(
        order,
        vec![Fact::CouponApplied {
            discount_minor: 500,
        }],
    );
    assert_eq!(order.status, Status::AwaitingPayment);
    assert_eq!(order.total_minor(), 2_500);
    assert_eq!(emitted, vec![Emit::Confirmed]);
}

#[test]
fn a_discount_never_exceeds_the_subtotal() {
    let (order, _) = run(
        pending(Some("ALL")),
        vec![Fact::CouponApplied {
            discount_minor: 99_999,
        }],
    );
    assert_eq!(order.total_minor(), 0);
}

#[test]
fn rejected_stock_or_coupon_rejects_the_order_once() {
    let (order, emitted) = run(
        pending(Some("SAVE")),
        vec![
            Fact::CouponApplied {
                discount_minor: 100,
            },
            Fact::StockRejected {
                sku: "TEE".into(),
                reason: "insufficient_stock".into(),
            },
            Fact::StockReserved,
        ],
    );
    assert_eq!(order.status, Status::Rejected);
    assert_eq!(emitted.len(), 1);
    let (order, emitted) = run(
        pending(Some("SAVE")),
        vec![
            Fact::StockReserved,
            coupon_rejected("usage_limit_reached", OnCouponNotApplicable::Reject),
        ],
    );
    assert_eq!(order.status, Status::Rejected);
    assert_eq!(
        emitted,
        vec![Emit::Rejected {
            reason: "coupon_usage_limit_reached".into()
        }]
    );
}

/// coupons rejected the coupon for `reason`, with the merchant's `setting`.
fn coupon_rejected(reason: &str, setting: OnCouponNotApplicable) -> Fact {
    let rule = reason == "rule_rejected";
    Fact::CouponRejected {
        reason: reason.into(),
        rule_code: rule.then(|| "declined".into()),
        message: format!("why {reason}"),
        setting,
    }
}

#[test]
fn a_coupon_that_does_not_apply_rejects_the_order_with_its_message_by_default() {
    let (order, emitted) = run(
        pending(Some("SPEND")),
        vec![
            Fact::StockReserved,
            coupon_rejected("rule_rejected", OnCouponNotApplicable::default()),
        ],
    );
    assert_eq!(
        (order.status, order.coupon),
        (Status::Rejected, Coupon::Rejected)
    );
    assert_eq!(
        order.coupon_rejection,
        Some(CouponRejection {
            code: "rule_rejected".into(),
            rule_code: Some("declined".into()),
            message: "why rule_rejected".into(),
            outcome: CouponOutcome::OrderRejected,
        })
    );
    assert!(!order.proceeds_without_coupon());
    assert_eq!(
        emitted,
        vec![Emit::Rejected {
            reason: "coupon_rule_rejected".into()
        }]
    );
}

#[test]
fn by_the_merchants_setting_an_order_proceeds_without_a_coupon_that_does_not_apply() {
    let proceed = OnCouponNotApplicable::ProceedWithout;
    // Coupon first: the order waits for its stock, then confirms at full price.
    let d = decide(&pending(Some("SPEND")), coupon_rejected("expired", proceed)).unwrap();
    assert_eq!(
        (d.order.status, d.transition, d.emit.len()),
        (Status::Pending, None, 0)
    );
    assert!(d.order.proceeds_without_coupon());
    let confirmed = decide(&d.order, Fact::StockReserved).unwrap();
    assert_eq!(confirmed.order.status, Status::AwaitingPayment);
    assert_eq!(confirmed.emit, vec![Emit::Confirmed]);
    assert_eq!(
        confirmed.transition.unwrap().reason,
        "stock reserved, awaiting payment without coupon SPEND (expired)"
    );
    assert_eq!(
        confirmed.order.total_minor(),
        confirmed.order.subtotal_minor
    );
    // Stock first: the coupon's answer confirms it at once.
    let (order, emitted) = run(
        pending(Some("SPEND")),
        vec![
            Fact::StockReserved,
            coupon_rejected("rule_rejected", proceed),
        ],
    );
    assert_eq!(order.status, Status::AwaitingPayment);
    assert_eq!(emitted, vec![Emit::Confirmed]);
    assert_eq!(order.discount_minor, 0);
    let rejection = order.coupon_rejection.clone().unwrap();
    assert_eq!(
        (rejection.outcome, rejection.rule_code.as_deref()),
        (CouponOutcome::ProceededWithout, Some("declined"))
    );
    // A repeated rejection changes nothing; stock lost later still rejects.
    let again = decide(&order, coupon_rejected("rule_rejected", proceed)).unwrap();
    assert_eq!((again.order, again.emit.len()), (order, 0));
    let (order, emitted) = run(
        pending(Some("SPEND")),
        vec![
            coupon_rejected("expired", proceed),
            Fact::StockRejected {
                sku: "TEE".into(),
                reason: "insufficient_stock".into(),
            },
        ],
    );
    assert_eq!(order.status, Status::Rejected);
    assert_eq!(
        emitted,
        vec![Emit::Rejected {
            reason: "insufficient_stock: TEE".into()
        }]
    );
}

#[test]
fn a_coupon_rejected_after_the_order_ended_records_nothing_about_it() {
    let (cancelled, _) = run(pending(Some("SPEND")), vec![Fact::CancelRequested]);
    for setting in [
        OnCouponNotApplicable::Reject,
        OnCouponNotApplicable::ProceedWithout,
    ] {
        let d = decide(&cancelled, coupon_rejected("expired", setting)).unwrap();
        assert_eq!(d.order.status, Status::Cancelled);
        assert_eq!(d.order.coupon, Coupon::Rejected);
        assert_eq!((d.order.coupon_rejection, d.emit.len()), (None, 0));
    }
}

#[test]
fn failed_payment_and_expiry_cancel_an_unpaid_order() {
    let (order, emitted) = run(
        pending(None),
        vec![
            Fact::StockReserved,
            Fact::PaymentFailed {
                reason: "card_declined".into(),
            },
        ],
    );
    assert_eq!(order.status, Status::Cancelled);
    assert_eq!(
        emitted[1],
        Emit::Cancelled {
            reason: "payment_card_declined".into()
        }
    );
    let (order, _) = run(pending(None), vec![Fact::StockReserved, Fact::StockExpired]);
    assert_eq!(order.status, Status::Cancelled);
}

#[test]
fn a_late_capture_is_refunded_and_ends_refunded() {
    let (order, emitted) = run(
        pending(None),
        vec![
            Fact::StockReserved,
            intent_created(),
            Fact::StockExpired,
            captured(3_000),
            refunded(3_000),
        ],
    );
    assert_eq!(order.status, Status::Refunded);
    assert!(emitted.contains(&Emit::RefundRequested {
        intent_id: "pi".into(),
        amount_minor: 3_000,
        reason: "order_not_payable".into()
    }));
}

#[test]
fn stock_lost_after_payment_is_refunded() {
    let (order, emitted) = run(
        pending(None),
        vec![
            Fact::StockReserved,
            captured(3_000),
            Fact::StockCommitFailed {
                reason: "reservation_expired".into(),
            },
        ],
    );
    assert_eq!(order.status, Status::Paid);
    assert_eq!(
        emitted.last(),
        Some(&Emit::RefundRequested {
            intent_id: "pi".into(),
            amount_minor: 3_000,
            reason: "stock_reservation_expired".into()
        })
    );
}

#[test]
fn only_unpaid_orders_can_be_cancelled() {
    let (order, emitted) = run(pending(None), vec![Fact::CancelRequested]);
    assert_eq!((order.status, emitted.len()), (Status::Cancelled, 1));
    let (paid, _) = run(pending(None), vec![Fact::StockReserved, captured(3_000)]);
    assert_eq!(
        decide(&paid, Fact::CancelRequested).unwrap_err().code,
        "order_not_cancellable"
    );
}

#[test]
fn repeated_facts_change_nothing() {
    let (order, _) = run(pending(None), vec![Fact::StockReserved]);
    let again = decide(&order, Fact::StockReserved).unwrap();
    assert_eq!((again.order, again.emit.len()), (order, 0));
}

#[test]
fn placing_snapshots_the_validated_address() {
    let (order, _) = place("o1", cmd(vec![("TEE", 1)], None), offer).unwrap();
    let a = order.shipping_address.unwrap();
    assert_eq!((a.name.as_str(), a.line2), ("Grace Hopper", None));
    assert_eq!(order.checkout_session_id, None);
    assert_eq!(order.fulfillment, Fulfillment::Unfulfilled);
}

#[test]
fn shipments_set_the_fulfillment_and_nothing_else() {
    let (paid, _) = run(pending(None), vec![Fact::StockReserved, captured(3_000)]);
    let shipped = decide(
        &paid,
        Fact::ShipmentsChanged {
            statuses: vec![ShipmentStatus::InTransit, ShipmentStatus::Pending],
        },
    )
    .unwrap();
    assert_eq!(shipped.order.fulfillment, Fulfillment::Shipped);
    assert_eq!((shipped.transition, shipped.emit.len()), (None, 0));
    assert_eq!(
        Order {
            fulfillment: paid.fulfillment,
            ..shipped.order.clone()
        },
        paid,
        "only the fulfillment changed"
    );
    let delivered = decide(
        &shipped.order,
        Fact::ShipmentsChanged {
            statuses: vec![ShipmentStatus::Delivered, ShipmentStatus::Cancelled],
        },
    )
    .unwrap();
    assert_eq!(delivered.order.fulfillment, Fulfillment::Delivered);
    // The same statuses again decide the same state: nothing to persist.
    let again = decide(
        &delivered.order,
        Fact::ShipmentsChanged {
            statuses: vec![ShipmentStatus::Delivered],
        },
    )
    .unwrap();
    assert_eq!(again.order, delivered.order);
}
