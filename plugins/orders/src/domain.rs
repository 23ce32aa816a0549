//! The order aggregate and its saga, as pure deciders: (state, fact) → decision.
//! No I/O here; `lib.rs` loads the state, persists the decision (through
//! `store.rs`) and emits events.
use mercato_sdk::validate::{self, CouponCode, Invalid};
use serde::Deserialize;
use serde_json::{Value, json};

pub const MAX_LINES: usize = 100;
pub const MAX_QUANTITY: i64 = 1_000;
/// Largest order total, in minor units: the SDK's limit on any amount, so
/// payments accepts every intent an order can ask for.
pub const MAX_TOTAL_MINOR: i64 = validate::MAX_AMOUNT_MINOR;

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
        [
            Status::Pending,
            Status::AwaitingPayment,
            Status::Paid,
            Status::PartiallyRefunded,
            Status::Refunded,
            Status::Rejected,
            Status::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
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
}

impl Order {
    pub fn total_minor(&self) -> i64 {
        self.subtotal_minor - self.discount_minor
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

/// The catalog's current offer for a sku (the orders' own projection), read
/// from `products.ProductPublished`, whose payload has exactly these fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Offer {
    pub product_id: String,
    pub sku: String,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub version: i64,
    #[serde(default)]
    pub attributes: Value,
}

/// `POST /orders` as submitted.
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    pub buyer_id: String,
    pub currency: String,
    pub lines: Vec<(String, i64)>,
    pub coupon_code: Option<String>,
}

/// One priced line of a new order.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub sku: String,
    pub product_id: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
    pub line_total_minor: i64,
    pub snapshot: Value,
}

/// Validates and prices a new order from the catalog projection; the buyer
/// never sets a price.
pub fn place(
    id: &str,
    cmd: PlaceOrder,
    offer: impl Fn(&str) -> Option<Offer>,
) -> Result<(Order, Vec<Line>), Refusal> {
    let buyer = cmd.buyer_id.trim();
    if buyer.is_empty() || buyer.len() > 64 {
        return Err(refuse(
            422,
            "invalid_buyer",
            "buyer_id must be 1-64 characters",
        ));
    }
    validate::check_currency(&cmd.currency)?;
    if cmd.lines.is_empty() {
        return Err(refuse(422, "no_items", "an order needs at least one item"));
    }
    if cmd.lines.len() > MAX_LINES {
        return Err(refuse(
            422,
            "too_many_items",
            format!("an order has at most {MAX_LINES} lines"),
        ));
    }
    // Checked with the rule coupons creates codes by, so a code that cannot
    // exist is refused here rather than rejected later by the saga.
    let coupon_code = match cmd.coupon_code.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(
            CouponCode::parse(raw)
                .ok_or_else(|| {
                    refuse(
                        422,
                        "invalid_coupon_code",
                        "coupon_code must be 3-32 letters, digits, '_' or '-'",
                    )
                })?
                .into_string(),
        ),
    };
    let mut lines = Vec::with_capacity(cmd.lines.len());
    let mut subtotal: i64 = 0;
    for (sku, quantity) in cmd.lines {
        if !validate::is_sku(&sku) {
            return Err(refuse(
                422,
                "invalid_sku",
                format!("sku `{sku}` is malformed"),
            ));
        }
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            return Err(refuse(
                422,
                "invalid_quantity",
                format!("quantity of {sku} must be between 1 and {MAX_QUANTITY}"),
            ));
        }
        let offer = offer(&sku)
            .ok_or_else(|| refuse(422, "unknown_sku", format!("no product with sku {sku}")))?;
        if offer.currency != cmd.currency {
            return Err(refuse(
                422,
                "currency_mismatch",
                format!(
                    "{sku} is sold in {}, the order is in {}",
                    offer.currency, cmd.currency
                ),
            ));
        }
        let line_total = offer
            .price_minor
            .checked_mul(quantity)
            .ok_or_else(|| refuse(422, "amount_too_large", "the order total is too large"))?;
        subtotal = subtotal
            .checked_add(line_total)
            .ok_or_else(|| refuse(422, "amount_too_large", "the order total is too large"))?;
        lines.push(Line {
            snapshot: json!({
                "product_id": offer.product_id,
                "sku": offer.sku,
                "name": offer.name,
                "price_minor": offer.price_minor,
                "currency": offer.currency,
                "price_version": offer.version,
                "attributes": offer.attributes,
            }),
            sku,
            product_id: offer.product_id,
            quantity,
            unit_price_minor: offer.price_minor,
            line_total_minor: line_total,
        });
    }
    if subtotal > MAX_TOTAL_MINOR {
        return Err(refuse(
            422,
            "amount_too_large",
            format!("the order total may not exceed {MAX_TOTAL_MINOR} minor units"),
        ));
    }
    let order = Order {
        id: id.to_owned(),
        buyer_id: buyer.to_owned(),
        currency: cmd.currency,
        status: Status::Pending,
        stock: Stock::Pending,
        coupon: if coupon_code.is_some() {
            Coupon::Pending
        } else {
            Coupon::None
        },
        coupon_code,
        subtotal_minor: subtotal,
        discount_minor: 0,
        payment_intent_id: None,
        captured_minor: 0,
        refunded_minor: 0,
    };
    Ok((order, lines))
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
    CouponRejected {
        reason: String,
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

    /// Confirms once stock is reserved and the coupon (if any) is applied.
    fn confirm_if_settled(&mut self) {
        let o = &self.order;
        if o.status == Status::Pending
            && o.stock == Stock::Reserved
            && matches!(o.coupon, Coupon::None | Coupon::Applied)
        {
            self.to(Status::AwaitingPayment, "stock reserved, awaiting payment");
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
        Fact::CouponRejected { reason } => {
            if d.order.coupon == Coupon::Pending {
                d.order.coupon = Coupon::Rejected;
                if status == Status::Pending {
                    d.to(Status::Rejected, format!("coupon: {reason}"));
                    d.emit.push(Emit::Rejected {
                        reason: format!("coupon_{reason}"),
                    });
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
    }
    Ok(d)
}

#[cfg(test)]
mod tests;
