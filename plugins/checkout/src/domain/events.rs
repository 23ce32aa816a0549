//! Reading other contexts' events into [`Fact`]s, and the facts kept for an
//! order whose session is not known yet.
//!
//! Tolerant reader: only the fields checkout needs are read, extra fields are
//! ignored, and a missing reason is `unspecified` (not worth dead-lettering
//! process state over). A missing id or total is a broken contract and an
//! error, so an operator sees it in the dead letters.
use super::{CouponRejection, Fact};
use serde::Deserialize;

/// Whom an event concerns: a session by its id, or an order, whose session
/// is found through `checkout_sessions.order_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Session(String),
    Order(String),
}

/// An event checkout follows, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub subject: Subject,
    pub fact: Fact,
}

/// The union of the payload fields checkout reads.
#[derive(Debug, Default, Deserialize)]
struct Payload {
    session_id: Option<String>,
    checkout_session_id: Option<String>,
    order_id: Option<String>,
    code: Option<String>,
    message: Option<String>,
    reason: Option<String>,
    total_minor: Option<i64>,
    intent_id: Option<String>,
    shipment_id: Option<String>,
    coupon_rejection: Option<CouponRejection>,
}

/// A required, non-empty text field.
fn required(value: Option<String>, field: &str) -> Result<String, String> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("missing {field}"))
}

/// Reads `source.event_type` with its JSON payload. `Ok(None)`: not an event
/// checkout follows, or an order placed without a checkout (`POST /orders`).
/// `Err`: the payload breaks the event's contract.
pub fn read_event(
    source: &str,
    event_type: &str,
    payload: &str,
) -> Result<Option<Incoming>, String> {
    let p: Payload = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    let reason = |r: Option<String>| r.unwrap_or_else(|| "unspecified".to_owned());
    let (subject, fact) = match (source, event_type) {
        ("checkout", "CheckoutSessionExpiryDue") => (
            Subject::Session(required(p.session_id, "session_id")?),
            Fact::ExpiryDue,
        ),
        ("orders", "OrderPlaced") => {
            let order_id = required(p.order_id, "order_id")?;
            let Some(session_id) = p.checkout_session_id.filter(|s| !s.is_empty()) else {
                return Ok(None);
            };
            (Subject::Session(session_id), Fact::OrderPlaced { order_id })
        }
        ("orders", "CheckoutRejected") => (
            Subject::Session(required(p.session_id, "session_id")?),
            Fact::CheckoutRejected {
                code: p.code.unwrap_or_else(|| "rejected".to_owned()),
                message: p.message.unwrap_or_default(),
            },
        ),
        ("orders", "OrderConfirmed") => {
            let total_minor = p.total_minor.ok_or("missing total_minor")?;
            if total_minor < 0 {
                return Err(format!("total_minor {total_minor} is negative"));
            }
            (
                Subject::Order(required(p.order_id, "order_id")?),
                Fact::OrderConfirmed {
                    total_minor,
                    coupon_rejection: p.coupon_rejection,
                },
            )
        }
        ("orders", "OrderPaid") => (
            Subject::Order(required(p.order_id, "order_id")?),
            Fact::OrderPaid,
        ),
        ("orders", "OrderRejected") => (
            Subject::Order(required(p.order_id, "order_id")?),
            Fact::OrderRejected {
                reason: reason(p.reason),
                coupon_rejection: p.coupon_rejection,
            },
        ),
        ("orders", "OrderCancelled") => (
            Subject::Order(required(p.order_id, "order_id")?),
            Fact::OrderCancelled {
                reason: reason(p.reason),
            },
        ),
        ("inventory", "StockReserved") => (
            Subject::Order(required(p.order_id, "order_id")?),
            Fact::StockReserved,
        ),
        ("payments", "PaymentIntentCreated") => (
            Subject::Order(required(p.order_id, "order_id")?),
            Fact::PaymentIntentCreated {
                intent_id: required(p.intent_id, "intent_id")?,
            },
        ),
        ("shipping", "ShipmentCreated") => (
            Subject::Order(required(p.order_id, "order_id")?),
            Fact::ShipmentCreated {
                shipment_id: required(p.shipment_id, "shipment_id")?,
            },
        ),
        _ => return Ok(None),
    };
    Ok(Some(Incoming { subject, fact }))
}

/// A `checkout_order_facts` row: facts about an order that may arrive before
/// `orders.OrderPlaced` links the order to its session. Only facts from other
/// sources than orders can: orders' own events follow its `OrderPlaced` in
/// orders' outbox, which checkout reads in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct StoredFacts {
    pub stock_reserved_at: Option<String>,
    pub payment_intent_id: Option<String>,
    pub payment_intent_at: Option<String>,
    pub shipment_id: Option<String>,
    pub shipment_at: Option<String>,
}

impl StoredFacts {
    /// `fact` at `at` as a row's columns; `None` for a fact that is never
    /// early (it concerns a session, or comes from orders).
    pub fn of(fact: &Fact, at: &str) -> Option<StoredFacts> {
        let at = Some(at.to_owned());
        match fact {
            Fact::StockReserved => Some(StoredFacts {
                stock_reserved_at: at,
                ..StoredFacts::default()
            }),
            Fact::PaymentIntentCreated { intent_id } => Some(StoredFacts {
                payment_intent_id: Some(intent_id.clone()),
                payment_intent_at: at,
                ..StoredFacts::default()
            }),
            Fact::ShipmentCreated { shipment_id } => Some(StoredFacts {
                shipment_id: Some(shipment_id.clone()),
                shipment_at: at,
                ..StoredFacts::default()
            }),
            _ => None,
        }
    }

    /// The stored facts with their times, oldest first (times are the host's
    /// fixed-width RFC 3339 text, so they sort as text).
    pub fn into_facts(self) -> Vec<(Fact, String)> {
        let mut facts = Vec::new();
        if let Some(at) = self.stock_reserved_at {
            facts.push((Fact::StockReserved, at));
        }
        if let (Some(intent_id), Some(at)) = (self.payment_intent_id, self.payment_intent_at) {
            facts.push((Fact::PaymentIntentCreated { intent_id }, at));
        }
        if let (Some(shipment_id), Some(at)) = (self.shipment_id, self.shipment_at) {
            facts.push((Fact::ShipmentCreated { shipment_id }, at));
        }
        facts.sort_by(|a, b| a.1.cmp(&b.1));
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(source: &str, kind: &str, payload: serde_json::Value) -> Option<Incoming> {
        read_event(source, kind, &payload.to_string()).expect("readable")
    }

    fn order(fact: Fact) -> Option<Incoming> {
        Some(Incoming {
            subject: Subject::Order("o1".into()),
            fact,
        })
    }

    #[test]
    fn every_followed_event_reads_into_its_fact() {
        let session = |fact| {
            Some(Incoming {
                subject: Subject::Session("s1".into()),
                fact,
            })
        };
        let cases = [
            (
                "checkout",
                "CheckoutSessionExpiryDue",
                json!({"session_id": "s1"}),
                session(Fact::ExpiryDue),
            ),
            (
                "orders",
                "OrderPlaced",
                json!({"order_id": "o1", "checkout_session_id": "s1", "buyer_id": "b", "items": []}),
                session(Fact::OrderPlaced {
                    order_id: "o1".into(),
                }),
            ),
            (
                "orders",
                "CheckoutRejected",
                json!({"session_id": "s1", "code": "unknown_sku", "message": "no X"}),
                session(Fact::CheckoutRejected {
                    code: "unknown_sku".into(),
                    message: "no X".into(),
                }),
            ),
            (
                "orders",
                "OrderConfirmed",
                json!({"order_id": "o1", "subtotal_minor": 3_000, "discount_minor": 0, "total_minor": 3_000}),
                order(Fact::OrderConfirmed {
                    total_minor: 3_000,
                    coupon_rejection: None,
                }),
            ),
            (
                "orders",
                "OrderPaid",
                json!({"order_id": "o1", "intent_id": "pi", "amount_minor": 3_000}),
                order(Fact::OrderPaid),
            ),
            (
                "orders",
                "OrderRejected",
                json!({"order_id": "o1", "reason": "coupon_expired", "coupon_code": "X"}),
                order(Fact::OrderRejected {
                    reason: "coupon_expired".into(),
                    coupon_rejection: None,
                }),
            ),
            (
                "orders",
                "OrderCancelled",
                json!({"order_id": "o1", "reason": "cancelled_by_buyer", "coupon_code": null}),
                order(Fact::OrderCancelled {
                    reason: "cancelled_by_buyer".into(),
                }),
            ),
            (
                "inventory",
                "StockReserved",
                json!({"order_id": "o1", "items": [], "expires_at": "2026-01-01T00:00:00.000Z"}),
                order(Fact::StockReserved),
            ),
            (
                "payments",
                "PaymentIntentCreated",
                json!({"intent_id": "pi", "order_id": "o1", "amount_minor": 1, "currency": "EUR"}),
                order(Fact::PaymentIntentCreated {
                    intent_id: "pi".into(),
                }),
            ),
            (
                "shipping",
                "ShipmentCreated",
                json!({"shipment_id": "sh", "order_id": "o1"}),
                order(Fact::ShipmentCreated {
                    shipment_id: "sh".into(),
                }),
            ),
        ];
        for (source, kind, payload, expected) in cases {
            assert_eq!(read(source, kind, payload), expected, "{source}.{kind}");
        }
    }

    #[test]
    fn a_coupon_that_did_not_apply_is_read_from_the_order_event() {
        let rejection = json!({ "code": "rule_rejected", "rule_code": "declined",
            "message": "too small", "outcome": "proceeded_without" });
        let expected = Some(CouponRejection {
            code: "rule_rejected".into(),
            rule_code: Some("declined".into()),
            message: "too small".into(),
            outcome: "proceeded_without".into(),
        });
        assert_eq!(
            read(
                "orders",
                "OrderConfirmed",
                json!({"order_id": "o1", "total_minor": 3_000, "coupon_rejection": rejection})
            ),
            order(Fact::OrderConfirmed {
                total_minor: 3_000,
                coupon_rejection: expected.clone()
            })
        );
        assert_eq!(
            read(
                "orders",
                "OrderRejected",
                json!({"order_id": "o1", "reason": "coupon_rule_rejected", "coupon_rejection": rejection})
            ),
            order(Fact::OrderRejected {
                reason: "coupon_rule_rejected".into(),
                coupon_rejection: expected
            })
        );
        assert_eq!(
            read(
                "orders",
                "OrderConfirmed",
                json!({"order_id": "o1", "total_minor": 1, "coupon_rejection": null})
            ),
            order(Fact::OrderConfirmed {
                total_minor: 1,
                coupon_rejection: None
            })
        );
    }

    #[test]
    fn orders_placed_without_a_checkout_and_other_events_concern_nobody() {
        assert_eq!(
            read("orders", "OrderPlaced", json!({"order_id": "o1"})),
            None
        );
        assert_eq!(
            read(
                "orders",
                "OrderPlaced",
                json!({"order_id": "o1", "checkout_session_id": null})
            ),
            None
        );
        assert_eq!(
            read("orders", "RefundRequested", json!({"order_id": "o1"})),
            None
        );
        assert_eq!(
            read("inventory", "StockReleased", json!({"order_id": "o1"})),
            None
        );
    }

    #[test]
    fn a_missing_reason_or_code_is_tolerated() {
        assert_eq!(
            read("orders", "OrderCancelled", json!({"order_id": "o1"})),
            order(Fact::OrderCancelled {
                reason: "unspecified".into()
            })
        );
        assert_eq!(
            read("orders", "CheckoutRejected", json!({"session_id": "s1"})).map(|i| i.fact),
            Some(Fact::CheckoutRejected {
                code: "rejected".into(),
                message: String::new()
            })
        );
    }

    #[test]
    fn a_broken_contract_is_an_error() {
        for (source, kind, payload) in [
            ("checkout", "CheckoutSessionExpiryDue", json!({})),
            (
                "orders",
                "OrderPlaced",
                json!({"checkout_session_id": "s1"}),
            ),
            ("orders", "OrderConfirmed", json!({"order_id": "o1"})),
            (
                "orders",
                "OrderConfirmed",
                json!({"order_id": "o1", "total_minor": -1}),
            ),
            ("orders", "OrderPaid", json!({"order_id": ""})),
            (
                "payments",
                "PaymentIntentCreated",
                json!({"order_id": "o1"}),
            ),
            ("shipping", "ShipmentCreated", json!({"order_id": "o1"})),
            ("inventory", "StockReserved", json!({"order_id": 7})),
        ] {
            assert!(
                read_event(source, kind, &payload.to_string()).is_err(),
                "{source}.{kind} {payload}"
            );
        }
        assert!(read_event("orders", "OrderPaid", "not json").is_err());
    }

    #[test]
    fn early_facts_are_stored_and_come_back_oldest_first() {
        let intent = Fact::PaymentIntentCreated {
            intent_id: "pi".into(),
        };
        let shipment = Fact::ShipmentCreated {
            shipment_id: "sh".into(),
        };
        let t = |s: &str| format!("2026-01-01T00:00:0{s}.000Z");
        let merged = StoredFacts {
            stock_reserved_at: StoredFacts::of(&Fact::StockReserved, &t("3"))
                .unwrap()
                .stock_reserved_at,
            ..StoredFacts::of(&intent, &t("1")).unwrap()
        };
        let merged = StoredFacts {
            shipment_id: Some("sh".into()),
            shipment_at: Some(t("2")),
            ..merged
        };
        assert_eq!(
            merged.into_facts(),
            vec![
                (intent, t("1")),
                (shipment, t("2")),
                (Fact::StockReserved, t("3"))
            ]
        );
        assert_eq!(StoredFacts::default().into_facts(), vec![]);
    }

    #[test]
    fn only_facts_from_outside_orders_are_ever_early() {
        for fact in [
            Fact::ExpiryDue,
            Fact::OrderPlaced {
                order_id: "o".into(),
            },
            Fact::OrderPaid,
            Fact::OrderConfirmed {
                total_minor: 1,
                coupon_rejection: None,
            },
            Fact::OrderRejected {
                reason: "x".into(),
                coupon_rejection: None,
            },
            Fact::OrderCancelled { reason: "x".into() },
            Fact::CheckoutRejected {
                code: "c".into(),
                message: "m".into(),
            },
        ] {
            assert_eq!(StoredFacts::of(&fact, "t"), None, "{fact:?}");
        }
    }
}
