//! Pure checkout rules: a session's life cycle and the saga decider that turns
//! what other contexts announce into steps and failures. No SDK host calls, so
//! everything here is unit-tested natively; `lib.rs` loads state, asks these
//! functions, and persists the answer through `store.rs`.
//!
//! Checkout owns process state, not business truth: nothing decided here is a
//! fact another context relies on. A step is recorded because an event proved
//! it; the session's status only summarises where the buyer stands.
use mercato_sdk::time::Instant;
use serde::{Deserialize, Serialize};

mod events;
mod input;
#[cfg(test)]
mod tests;

pub use events::{Incoming, StoredFacts, Subject, read_event};
pub use input::{NewSession, OpenSession, expires_at};

/// Where a session stands. `OPEN` until the buyer submits; `SUBMITTED` while
/// the saga runs (the steps show how far); then `COMPLETED` or `FAILED`.
/// `EXPIRED` is an `OPEN` session whose time ran out before submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Open,
    Submitted,
    Completed,
    Failed,
    Expired,
}

impl Status {
    /// The stored and serialized form.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "OPEN",
            Status::Submitted => "SUBMITTED",
            Status::Completed => "COMPLETED",
            Status::Failed => "FAILED",
            Status::Expired => "EXPIRED",
        }
    }
}

/// A milestone of the order saga, as the buyer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Step {
    Submitted,
    OrderPlaced,
    StockReserved,
    AwaitingPayment,
    Paid,
    Completed,
}

impl Step {
    /// Every step in saga order (the order of the session view).
    pub const ALL: [Step; 6] = [
        Step::Submitted,
        Step::OrderPlaced,
        Step::StockReserved,
        Step::AwaitingPayment,
        Step::Paid,
        Step::Completed,
    ];

    /// The stored and serialized form.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Submitted => "SUBMITTED",
            Step::OrderPlaced => "ORDER_PLACED",
            Step::StockReserved => "STOCK_RESERVED",
            Step::AwaitingPayment => "AWAITING_PAYMENT",
            Step::Paid => "PAID",
            Step::Completed => "COMPLETED",
        }
    }
}

/// Why a session failed (`checkout_failures.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// Orders refused the submission itself (`orders.CheckoutRejected`).
    Invalid,
    /// Inventory could not reserve a line.
    Stock,
    /// The coupon was refused.
    Coupon,
    /// The payment was declined, so orders cancelled the order.
    PaymentDeclined,
    /// The session (before submission) or the stock reservation (before
    /// payment) ran out of time.
    Expired,
    /// The order was cancelled for another reason (e.g. by the buyer).
    Cancelled,
}

impl FailureReason {
    /// The stored and serialized form.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Invalid => "invalid",
            FailureReason::Stock => "stock",
            FailureReason::Coupon => "coupon",
            FailureReason::PaymentDeclined => "payment_declined",
            FailureReason::Expired => "expired",
            FailureReason::Cancelled => "cancelled",
        }
    }
}

/// `orders.OrderRejected.reason` → failure. Orders rejects for two causes:
/// the coupon (`coupon_<coupons' reason>`, e.g. `coupon_usage_limit_reached`)
/// or the stock (`<inventory's reason>: <sku>`, e.g. `insufficient_stock:
/// TEE`, `unknown_sku: MUG`). Anything not marked as a coupon is the stock
/// side, the only other thing that rejects an order.
pub fn rejection_reason(reason: &str) -> FailureReason {
    if reason.starts_with("coupon_") {
        FailureReason::Coupon
    } else {
        FailureReason::Stock
    }
}

/// `orders.OrderCancelled.reason` → failure. Orders cancels with
/// `payment_<payments' reason>` (`payment_card_declined`,
/// `payment_insufficient_funds`), `reservation_expired` (the stock hold ran
/// out before payment) or `cancelled_by_buyer`; anything else is a plain
/// cancellation.
pub fn cancellation_reason(reason: &str) -> FailureReason {
    if reason.starts_with("payment_") {
        FailureReason::PaymentDeclined
    } else if reason == "reservation_expired" {
        FailureReason::Expired
    } else {
        FailureReason::Cancelled
    }
}

/// Why the order's coupon did not apply, as orders tells it in
/// `OrderConfirmed` (the order went on without it) or `OrderRejected` (the
/// order was rejected): coupons' reason code, the rule's code, the message for
/// the buyer (a rule's own), and the outcome (`proceeded_without` or
/// `order_rejected`). Shown on the session as it came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponRejection {
    pub code: String,
    #[serde(default)]
    pub rule_code: Option<String>,
    pub message: String,
    pub outcome: String,
}

/// What the decider knows about a session: its status, what it has learned
/// from other contexts, and the steps already recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub status: Status,
    pub order_id: Option<String>,
    pub payment_intent_id: Option<String>,
    pub shipment_id: Option<String>,
    pub total_minor: Option<i64>,
    pub reached: Vec<Step>,
    /// Why the order's coupon did not apply, when it did not.
    pub coupon_rejection: Option<CouponRejection>,
}

/// Something that happened, as it concerns a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// The session's own expiry timer (`checkout.CheckoutSessionExpiryDue`).
    ExpiryDue,
    /// `orders.OrderPlaced` for this session.
    OrderPlaced { order_id: String },
    /// `orders.CheckoutRejected`: orders refused to place the order.
    CheckoutRejected { code: String, message: String },
    /// `inventory.StockReserved`.
    StockReserved,
    /// `orders.OrderConfirmed`: the final total is known, payment is due
    /// (without the coupon, when `coupon_rejection` says why).
    OrderConfirmed {
        total_minor: i64,
        coupon_rejection: Option<CouponRejection>,
    },
    /// `payments.PaymentIntentCreated`: the buyer can pay this intent.
    PaymentIntentCreated { intent_id: String },
    /// `orders.OrderPaid`.
    OrderPaid,
    /// `shipping.ShipmentCreated`: the checkout is done.
    ShipmentCreated { shipment_id: String },
    /// `orders.OrderRejected` with orders' reason (and why the coupon did
    /// not apply, when that rejected it).
    OrderRejected {
        reason: String,
        coupon_rejection: Option<CouponRejection>,
    },
    /// `orders.OrderCancelled` with orders' reason.
    OrderCancelled { reason: String },
}

/// A step to record, at the time of the event that proved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    pub step: Step,
    pub at: String,
}

/// A failure to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: FailureReason,
    pub detail: String,
    pub at: String,
}

/// The session after some facts, with the steps and failures they add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub session: Session,
    pub steps: Vec<Reached>,
    pub failures: Vec<Failure>,
}

/// Detail of a session that expired before submission.
pub const EXPIRED_DETAIL: &str = "the session was not submitted before it expired";

impl Decision {
    /// No change yet.
    pub fn new(session: Session) -> Self {
        Decision {
            session,
            steps: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// Whether anything is to be persisted compared with `before`.
    pub fn changes(&self, before: &Session) -> bool {
        self.session != *before || !self.steps.is_empty() || !self.failures.is_empty()
    }

    /// Records `step` at `at` unless the session already reached it: a step
    /// is recorded once, with the time of the first event that proved it.
    fn reach(&mut self, step: Step, at: &str) -> bool {
        if self.session.reached.contains(&step) {
            return false;
        }
        self.session.reached.push(step);
        self.steps.push(Reached {
            step,
            at: at.to_owned(),
        });
        true
    }

    /// Fails a session whose saga is in flight. A failure of a session that
    /// is already COMPLETED, FAILED or EXPIRED (or never submitted) changes
    /// nothing: the first outcome stands.
    fn fail(&mut self, reason: FailureReason, detail: String, at: &str) -> bool {
        if self.session.status != Status::Submitted {
            return false;
        }
        self.session.status = Status::Failed;
        self.failures.push(Failure {
            reason,
            detail,
            at: at.to_owned(),
        });
        true
    }

    /// Applies one more fact, proven at `at` (the event's `occurred_at`).
    /// Facts that no longer apply change nothing, so a late or repeated
    /// event is harmless.
    pub fn apply(mut self, fact: Fact, at: &str) -> Self {
        match fact {
            Fact::ExpiryDue => {
                if self.session.status == Status::Open {
                    self.session.status = Status::Expired;
                    self.failures.push(Failure {
                        reason: FailureReason::Expired,
                        detail: EXPIRED_DETAIL.to_owned(),
                        at: at.to_owned(),
                    });
                }
            }
            Fact::OrderPlaced { order_id } => match &self.session.order_id {
                None => {
                    self.session.order_id = Some(order_id);
                    self.reach(Step::OrderPlaced, at);
                }
                Some(known) if *known == order_id => {
                    self.reach(Step::OrderPlaced, at);
                }
                // Orders places one order per session; a second one is not
                // this session's to follow.
                Some(_) => {}
            },
            Fact::CheckoutRejected { code, message } => {
                self.fail(FailureReason::Invalid, format!("{code}: {message}"), at);
            }
            Fact::StockReserved => {
                self.reach(Step::StockReserved, at);
            }
            Fact::OrderConfirmed {
                total_minor,
                coupon_rejection,
            } => {
                if self.reach(Step::AwaitingPayment, at) {
                    self.session.total_minor = Some(total_minor);
                    self.session.coupon_rejection = coupon_rejection;
                }
            }
            Fact::PaymentIntentCreated { intent_id } => {
                // No step of its own: AWAITING_PAYMENT (from OrderConfirmed)
                // already says payment is due; the intent id says what to pay.
                if self.session.payment_intent_id.is_none() {
                    self.session.payment_intent_id = Some(intent_id);
                }
            }
            Fact::OrderPaid => {
                self.reach(Step::Paid, at);
            }
            Fact::ShipmentCreated { shipment_id } => {
                if self.reach(Step::Completed, at) {
                    self.session.shipment_id = Some(shipment_id);
                    if self.session.status == Status::Submitted {
                        self.session.status = Status::Completed;
                    }
                }
            }
            Fact::OrderRejected {
                reason,
                coupon_rejection,
            } => {
                // The buyer is told why: the rule's message, or what failed the coupon.
                let detail = match &coupon_rejection {
                    Some(c) => format!("{reason}: {}", c.message),
                    None => reason.clone(),
                };
                if self.fail(rejection_reason(&reason), detail, at) {
                    self.session.coupon_rejection = coupon_rejection;
                }
            }
            Fact::OrderCancelled { reason } => {
                self.fail(cancellation_reason(&reason), reason, at);
            }
        }
        self
    }
}

/// Given a session, when `fact` happens at `at`, then the new state and what
/// to record.
pub fn decide(session: &Session, fact: Fact, at: &str) -> Decision {
    Decision::new(session.clone()).apply(fact, at)
}

/// Why a submission was refused (HTTP 409).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotOpen {
    pub message: String,
}

impl NotOpen {
    /// The API's `error.code`.
    pub const CODE: &'static str = "session_not_open";
}

/// Given a session expiring at `expires_at`, when the buyer submits it at
/// `now`, then SUBMITTED with its first step, or why not. A session past its
/// expiry is refused even if its timer has not fired yet (timers fire no
/// earlier than due, possibly later): the buyer was promised nothing beyond
/// `expires_at`.
pub fn submit(session: &Session, expires_at: Instant, now: Instant) -> Result<Decision, NotOpen> {
    if session.status != Status::Open {
        return Err(NotOpen {
            message: format!(
                "only an OPEN session can be submitted; this one is {}",
                session.status.as_str()
            ),
        });
    }
    if now >= expires_at {
        return Err(NotOpen {
            message: format!("the session expired at {expires_at}"),
        });
    }
    let mut d = Decision::new(session.clone());
    d.session.status = Status::Submitted;
    d.reach(Step::Submitted, &now.to_string());
    Ok(d)
}
