//! The order aggregate and its saga, as pure deciders: (state, fact) → decision.
//! No I/O here; `lib.rs` loads the state, persists the decision (through
//! `store.rs`) and emits events.
mod checkout;
mod coupon;
mod place;
mod shipments;

pub use checkout::{OrderRequest, read_submission};
pub use coupon::{CouponOutcome, CouponRejection, OnCouponNotApplicable, Settings, read_settings};
pub use place::{Line, Offer, PlaceOrder, place};
pub use shipments::{Fulfillment, Shipment, ShipmentStatus, advance, fulfillment};

use mercato_sdk::address::ShippingAddress;
use mercato_sdk::validate::Invalid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    AwaitingPayment,
    Paid,
    PartiallyRefunded,
    Refunded,
    Rejected,
    Cancelled,
}

impl Status {
    /// Every status, in saga order.
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::AwaitingPayment,
        Status::Paid,
        Status::PartiallyRefunded,
        Status::Refunded,
        Status::Rejected,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::AwaitingPayment => "AWAITING_PAYMENT",
            Status::Paid => "PAID",
            Status::PartiallyRefunded => "PARTIALLY_REFUNDED",
            Status::Refunded => "REFUNDED",
            Status::Rejected => "REJECTED",
            Status::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// The legal status transitions (docs/architecture/saga.md).
pub fn legal(from: Status, to: Status) -> bool {
    use Status::*;
    matches!(
        (from, to),
        (Pending, AwaitingPayment)
            | (Pending, Rejected)
            | (Pending, Cancelled)
            | (AwaitingPayment, Paid)
            | (AwaitingPayment, Cancelled)
            | (Paid, PartiallyRefunded)
            | (Paid, Refunded)
            | (PartiallyRefunded, Refunded)
            | (Cancelled, Refunded)
            | (Rejected, Refunded)
    )
}

/// Where the inventory side of the saga stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stock {
    Pending,
    Reserved,
    Rejected,
    Expired,
    CommitFailed,
}

impl Stock {
    pub fn as_str(self) -> &'static str {
        match self {
            Stock::Pending => "PENDING",
            Stock::Reserved => "RESERVED",
            Stock::Rejected => "REJECTED",
            Stock::Expired => "EXPIRED",
            Stock::CommitFailed => "COMMIT_FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Stock> {
        [
            Stock::Pending,
            Stock::Reserved,
            Stock::Rejected,
            Stock::Expired,
            Stock::CommitFailed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// Where the coupon side of the saga stands (`None`: no coupon on the order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coupon {
    None,
    Pending,
    Applied,
    Rejected,
}

impl Coupon {
    pub fn as_str(self) -> &'static str {
        match self {
            Coupon::None => "NONE",
            Coupon::Pending => "PENDING",
            Coupon::Applied => "APPLIED",
            Coupon::Rejected => "REJECTED",
        }
    }

    pub fn parse(s: &str) -> Option<Coupon> {
        [
            Coupon::None,
            Coupon::Pending,
            Coupon::Applied,
            Coupon::Rejected,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// The order aggregate's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: String,
    pub buyer_id: String,
    pub currency: String,
    pub status: Status,
    pub stock: Stock,
    pub coupon: Coupon,
    pub coupon_code: Option<String>,
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub payment_intent_id: Option<String>,
    pub captured_minor: i64,
    pub refunded_minor: i64,
    /// Validated when the order was placed; `None` only for orders placed
    /// before addresses were required.
    pub shipping_address: Option<ShippingAddress>,
    /// The checkout session the order was placed for (`None`: `POST /orders`).
    pub checkout_session_id: Option<String>,
    /// Derived from the order's shipments.
    pub fulfillment: Fulfillment,
    /// Why the coupon did not apply and what the order did about it; `None`
    /// unless coupons rejected the coupon while the order was PENDING.
    pub coupon_rejection: Option<CouponRejection>,
}

impl Order {
    pub fn total_minor(&self) -> i64 {
        self.subtotal_minor - self.discount_minor
    }

    /// True when the coupon did not apply and the order goes on without it.
    pub fn proceeds_without_coupon(&self) -> bool {
        self.coupon == Coupon::Rejected
            && self
                .coupon_rejection
                .as_ref()
                .is_some_and(|r| r.outcome == CouponOutcome::ProceededWithout)
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

/// Invalid input is 422, as in every context.
impl From<Invalid> for Refusal {
    fn from(e: Invalid) -> Self {
        refuse(422, e.code, e.message)
    }
}

fn refuse(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
    }
}

/// Something that happened elsewhere, or a command, as it concerns an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    StockReserved,
    StockRejected {
        sku: String,
        reason: String,
    },
    StockExpired,
    StockCommitFailed {
        reason: String,
    },
    CouponApplied {
        discount_minor: i64,
    },
    /// coupons' `CouponRejected`, with the merchant's setting at the time.
    CouponRejected {
        reason: String,
        rule_code: Option<String>,
        message: String,
        setting: OnCouponNotApplicable,
    },
    IntentCreated {
        intent_id: String,
    },
    PaymentCaptured {
        intent_id: String,
        amount_minor: i64,
    },
    PaymentFailed {
        reason: String,
    },
    PaymentRefunded {
        refunded_total_minor: i64,
    },
    CancelRequested,
    /// Shipping reported on a shipment; these are the statuses of all the
    /// order's shipments now.
    ShipmentsChanged {
        statuses: Vec<ShipmentStatus>,
    },
}

/// An event the order emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emit {
    Confirmed,
    Rejected {
        reason: String,
    },
    Cancelled {
        reason: String,
    },
    Paid {
        intent_id: String,
        amount_minor: i64,
    },
    RefundRequested {
        intent_id: String,
        amount_minor: i64,
        reason: String,
    },
    /// Money went back: the order is now PARTIALLY_REFUNDED or REFUNDED.
    Refunded,
}

/// A status change with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: Status,
    pub to: Status,
    pub reason: String,
}

/// What to persist and emit. `order` is the new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub order: Order,
    pub transition: Option<Transition>,
    pub emit: Vec<Emit>,
}

impl Decision {
    fn new(order: Order) -> Self {
        Decision {
            order,
            transition: None,
            emit: Vec::new(),
        }
    }

    fn to(&mut self, to: Status, reason: impl Into<String>) {
        let from = self.order.status;
        // Always checked: an illegal transition is a bug that must not persist.
        assert!(legal(from, to), "illegal transition {from:?} → {to:?}");
        self.order.status = to;
        self.transition = Some(Transition {
            from,
            to,
            reason: reason.into(),
        });
    }

    /// Confirms once stock is reserved and the coupon (if any) is applied,
    /// or did not apply and the order goes on without it.
    fn confirm_if_settled(&mut self) {
        let o = &self.order;
        let coupon_settled =
            matches!(o.coupon, Coupon::None | Coupon::Applied) || o.proceeds_without_coupon();
        if o.status == Status::Pending && o.stock == Stock::Reserved && coupon_settled {
            let reason = match (&o.coupon_rejection, &o.coupon_code) {
                (Some(r), Some(code)) if o.proceeds_without_coupon() => format!(
                    "stock reserved, awaiting payment without coupon {code} ({})",
                    r.code
                ),
                _ => "stock reserved, awaiting payment".to_owned(),
            };
            self.to(Status::AwaitingPayment, reason);
            self.emit.push(Emit::Confirmed);
        }
    }

    fn refund_outstanding(&mut self, reason: &str) {
        let outstanding = self.order.captured_minor - self.order.refunded_minor;
        if let (true, Some(intent_id)) = (outstanding > 0, self.order.payment_intent_id.clone()) {
            self.emit.push(Emit::RefundRequested {
                intent_id,
                amount_minor: outstanding,
                reason: reason.to_owned(),
            });
        }
    }
}

/// Decides what `fact` does to `order`. Facts that no longer apply leave the
/// order unchanged (handlers are idempotent in intent); only commands are refused.
pub fn decide(order: &Order, fact: Fact) -> Result<Decision, Refusal> {
    let mut d = Decision::new(order.clone());
    let status = order.status;
    match fact {
        Fact::StockReserved => {
            if d.order.stock == Stock::Pending {
                d.order.stock = Stock::Reserved;
                d.confirm_if_settled();
            }
        }
        Fact::StockRejected { sku, reason } => {
            d.order.stock = Stock::Rejected;
            if status == Status::Pending {
                d.to(Status::Rejected, format!("stock: {reason} ({sku})"));
                d.emit.push(Emit::Rejected {
                    reason: format!("{reason}: {sku}"),
                });
            }
        }
        Fact::CouponApplied { discount_minor } => {
            if d.order.coupon == Coupon::Pending && status == Status::Pending {
                d.order.coupon = Coupon::Applied;
                d.order.discount_minor = discount_minor.clamp(0, d.order.subtotal_minor);
                d.confirm_if_settled();
            }
        }
        Fact::CouponRejected {
            reason,
            rule_code,
            message,
            setting,
        } => {
            if d.order.coupon == Coupon::Pending {
                d.order.coupon = Coupon::Rejected;
                if status == Status::Pending {
                    let outcome = match setting {
                        OnCouponNotApplicable::Reject => CouponOutcome::OrderRejected,
                        OnCouponNotApplicable::ProceedWithout => CouponOutcome::ProceededWithout,
                    };
                    d.order.coupon_rejection = Some(CouponRejection {
                        code: reason.clone(),
                        rule_code,
                        message,
                        outcome,
                    });
                    match outcome {
                        CouponOutcome::OrderRejected => {
                            d.to(Status::Rejected, format!("coupon: {reason}"));
                            d.emit.push(Emit::Rejected {
                                reason: format!("coupon_{reason}"),
                            });
                        }
                        CouponOutcome::ProceededWithout => {
                            d.order.discount_minor = 0;
                            d.confirm_if_settled();
                        }
                    }
                }
            }
        }
        Fact::StockExpired => {
            d.order.stock = Stock::Expired;
            if matches!(status, Status::Pending | Status::AwaitingPayment) {
                d.to(Status::Cancelled, "reservation expired before payment");
                d.emit.push(Emit::Cancelled {
                    reason: "reservation_expired".into(),
                });
            }
        }
        Fact::StockCommitFailed { reason } => {
            d.order.stock = Stock::CommitFailed;
            if matches!(status, Status::Paid | Status::PartiallyRefunded) {
                d.refund_outstanding(&format!("stock_{reason}"));
            }
        }
        Fact::IntentCreated { intent_id } => {
            d.order.payment_intent_id = Some(intent_id);
        }
        Fact::PaymentCaptured {
            intent_id,
            amount_minor,
        } => {
            if d.order.captured_minor == 0 {
                d.order.payment_intent_id = Some(intent_id.clone());
                d.order.captured_minor = amount_minor;
                if status == Status::AwaitingPayment {
                    d.to(Status::Paid, "payment captured");
                    d.emit.push(Emit::Paid {
                        intent_id,
                        amount_minor,
                    });
                } else {
                    // Money arrived for an order that can no longer be fulfilled.
                    d.refund_outstanding("order_not_payable");
                }
            }
        }
        Fact::PaymentFailed { reason } => {
            if status == Status::AwaitingPayment {
                d.to(Status::Cancelled, format!("payment failed: {reason}"));
                d.emit.push(Emit::Cancelled {
                    reason: format!("payment_{reason}"),
                });
            }
        }
        Fact::PaymentRefunded {
            refunded_total_minor,
        } => {
            let refunded =
                refunded_total_minor.clamp(d.order.refunded_minor, d.order.captured_minor);
            d.order.refunded_minor = refunded;
            let fully = refunded == d.order.captured_minor && refunded > 0;
            match status {
                Status::Paid | Status::PartiallyRefunded if fully => {
                    d.to(Status::Refunded, "refunded in full")
                }
                Status::Paid if refunded > 0 => {
                    d.to(Status::PartiallyRefunded, "partially refunded")
                }
                Status::Cancelled | Status::Rejected if fully => {
                    d.to(Status::Refunded, "late payment refunded")
                }
                _ => {}
            }
            if d.transition.is_some() {
                d.emit.push(Emit::Refunded);
            }
        }
        Fact::CancelRequested => {
            if !matches!(status, Status::Pending | Status::AwaitingPayment) {
                return Err(refuse(
                    409,
                    "order_not_cancellable",
                    format!("an order in status {} cannot be cancelled", status.as_str()),
                ));
            }
            d.to(Status::Cancelled, "cancelled by the buyer");
            d.emit.push(Emit::Cancelled {
                reason: "cancelled_by_buyer".into(),
            });
        }
        Fact::ShipmentsChanged { statuses } => {
            // Whatever the order's status: a parcel that left is a fact even
            // for an order refunded meanwhile, and the buyer should see it.
            d.order.fulfillment = fulfillment(&statuses);
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests;
