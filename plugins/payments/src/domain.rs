//! Pure payment rules: the intent's state machine, what may be refunded, and
//! which balanced ledger entries a money movement produces. No SDK calls, so
//! everything here is unit-tested natively.
//!
//! Money is always integer minor units (`i64`) in the intent's currency, and
//! every sum goes through checked arithmetic: an overflow is an error, never a
//! wrapped amount.
use serde::Deserialize;

/// Largest amount accepted in minor units: the SDK's limit on any amount,
/// far below `i64::MAX` so sums of many amounts cannot overflow in practice.
pub use mercato_sdk::validate::MAX_AMOUNT_MINOR;

/// Why a command was refused. `lib.rs` maps each to an HTTP status; the
/// message (`Display`) is for a human.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The payment method is not one the test provider knows.
    #[error(
        "unknown payment_method `{0}`; use one of: {methods}",
        methods = PaymentMethod::ALL.map(PaymentMethod::as_str).join(", ")
    )]
    UnknownPaymentMethod(String),
    /// The order was cancelled before payment: the intent can no longer be paid.
    #[error("the payment intent was canceled because its order was cancelled")]
    IntentCanceled,
    /// The intent was already paid.
    #[error("the payment intent was already paid")]
    IntentAlreadySucceeded,
    /// A previous attempt failed; the order is being cancelled.
    #[error("a payment attempt for this intent failed; the order is cancelled")]
    IntentFailed,
    /// Refunds need captured money.
    #[error("only a payment intent with captured money can be refunded")]
    IntentNotCaptured,
    /// Amounts must be positive (and at most [`MAX_AMOUNT_MINOR`]).
    #[error("amount_minor must be between 1 and {MAX_AMOUNT_MINOR}, got {0}")]
    InvalidAmount(i64),
    /// More than what is still refundable was asked for.
    #[error(
        "refund of {requested} exceeds the {refundable} still refundable (captured minus refunded)"
    )]
    RefundExceedsCaptured { requested: i64, refundable: i64 },
}

impl Refusal {
    /// Stable machine-readable code (the API's `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::UnknownPaymentMethod(_) => "unknown_payment_method",
            Refusal::IntentCanceled => "intent_canceled",
            Refusal::IntentAlreadySucceeded => "intent_already_succeeded",
            Refusal::IntentFailed => "intent_failed",
            Refusal::IntentNotCaptured => "intent_not_captured",
            Refusal::InvalidAmount(_) => "invalid_amount",
            Refusal::RefundExceedsCaptured { .. } => "refund_exceeds_captured",
        }
    }
}

/// A stored intent that breaks the invariants below: a bug or tampering, never
/// a user error, so it is reported as an internal failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inconsistent(pub String);

/// The intent's life cycle. `RequiresPaymentMethod` is the only state that
/// moves; the other three are terminal (refunds change amounts, not status).
/// Stored in the upper-case form of [`IntentStatus::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IntentStatus {
    RequiresPaymentMethod,
    Succeeded,
    Failed,
    Canceled,
}

impl IntentStatus {
    /// Every status, the moving one first.
    pub const ALL: [IntentStatus; 4] = [
        IntentStatus::RequiresPaymentMethod,
        IntentStatus::Succeeded,
        IntentStatus::Failed,
        IntentStatus::Canceled,
    ];

    /// The stored and serialized form.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentStatus::RequiresPaymentMethod => "REQUIRES_PAYMENT_METHOD",
            IntentStatus::Succeeded => "SUCCEEDED",
            IntentStatus::Failed => "FAILED",
            IntentStatus::Canceled => "CANCELED",
        }
    }
}

/// The deterministic test provider's cards: the method alone decides the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentMethod {
    Good,
    Declined,
    InsufficientFunds,
}

impl PaymentMethod {
    /// Every method the provider accepts, in the order the error message lists them.
    pub const ALL: [PaymentMethod; 3] = [
        PaymentMethod::Good,
        PaymentMethod::Declined,
        PaymentMethod::InsufficientFunds,
    ];

    /// The API and stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Good => "pm_card_ok",
            PaymentMethod::Declined => "pm_card_declined",
            PaymentMethod::InsufficientFunds => "pm_card_insufficient_funds",
        }
    }

    /// Parses the API form; anything else is refused with the valid list.
    pub fn parse(s: &str) -> Result<Self, Refusal> {
        Self::ALL
            .into_iter()
            .find(|method| method.as_str() == s)
            .ok_or_else(|| Refusal::UnknownPaymentMethod(s.to_owned()))
    }
}

/// Why the provider refused a payment (`PaymentFailed.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    CardDeclined,
    InsufficientFunds,
}

impl FailureReason {
    /// The stored and serialized form.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::CardDeclined => "card_declined",
            FailureReason::InsufficientFunds => "insufficient_funds",
        }
    }
}

/// What the deciders need to know about an intent. Built only through
/// [`IntentState::new`], so `0 <= refunded <= captured <= amount` always holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntentState {
    status: IntentStatus,
    amount_minor: i64,
    captured_minor: i64,
    refunded_minor: i64,
}

impl IntentState {
    /// Checks the money invariants the database also enforces with CHECKs.
    pub fn new(
        status: IntentStatus,
        amount_minor: i64,
        captured_minor: i64,
        refunded_minor: i64,
    ) -> Result<Self, Inconsistent> {
        let ordered = 0 <= refunded_minor
            && refunded_minor <= captured_minor
            && captured_minor <= amount_minor;
        // Money is captured all at once, and only by a successful confirm.
        let capture_matches_status = match status {
            IntentStatus::Succeeded => captured_minor == amount_minor,
            _ => captured_minor == 0,
        };
        if ordered && capture_matches_status {
            Ok(IntentState {
                status,
                amount_minor,
                captured_minor,
                refunded_minor,
            })
        } else {
            Err(Inconsistent(format!(
                "intent {} with amount {amount_minor}, captured {captured_minor}, refunded {refunded_minor}",
                status.as_str()
            )))
        }
    }

    /// Money captured and not yet refunded.
    pub fn refundable_minor(&self) -> i64 {
        // Cannot underflow: `new` guarantees refunded <= captured, both >= 0.
        self.captured_minor - self.refunded_minor
    }
}

/// The result of confirming an intent with a payment method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// Authorized and captured in full: status SUCCEEDED, captured = amount.
    Captured { amount_minor: i64 },
    /// The provider refused: status FAILED with this reason, no money moved.
    Failed { reason: FailureReason },
}

/// Given an intent, when it is confirmed with `method`, then the provider's
/// outcome, or a refusal when the intent cannot be paid any more.
pub fn decide_confirm(
    state: &IntentState,
    method: PaymentMethod,
) -> Result<ConfirmOutcome, Refusal> {
    match state.status {
        IntentStatus::RequiresPaymentMethod => {}
        IntentStatus::Canceled => return Err(Refusal::IntentCanceled),
        IntentStatus::Succeeded => return Err(Refusal::IntentAlreadySucceeded),
        IntentStatus::Failed => return Err(Refusal::IntentFailed),
    }
    Ok(match method {
        PaymentMethod::Good => ConfirmOutcome::Captured {
            amount_minor: state.amount_minor,
        },
        PaymentMethod::Declined => ConfirmOutcome::Failed {
            reason: FailureReason::CardDeclined,
        },
        PaymentMethod::InsufficientFunds => ConfirmOutcome::Failed {
            reason: FailureReason::InsufficientFunds,
        },
    })
}

/// Whether an `OrderCancelled` still cancels the intent: only before payment.
/// A paid intent stays SUCCEEDED (orders asks for a refund instead); failed and
/// canceled intents are already final.
pub fn cancels(state: &IntentState) -> bool {
    state.status == IntentStatus::RequiresPaymentMethod
}

/// A refund that passed the rules: how much, and the intent's new refunded total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundDecision {
    pub amount_minor: i64,
    pub refunded_total_minor: i64,
}

/// Given an intent, when a merchant asks to refund `amount_minor`, then the
/// refund or why not. The amount is checked before the state so a malformed
/// request is reported as such whatever the intent's state.
pub fn decide_refund(state: &IntentState, amount_minor: i64) -> Result<RefundDecision, Refusal> {
    if !(1..=MAX_AMOUNT_MINOR).contains(&amount_minor) {
        return Err(Refusal::InvalidAmount(amount_minor));
    }
    if state.status != IntentStatus::Succeeded {
        return Err(Refusal::IntentNotCaptured);
    }
    let refundable = state.refundable_minor();
    if amount_minor > refundable {
        return Err(Refusal::RefundExceedsCaptured {
            requested: amount_minor,
            refundable,
        });
    }
    Ok(RefundDecision {
        amount_minor,
        // Cannot exceed `captured_minor`, just checked.
        refunded_total_minor: state.refunded_minor + amount_minor,
    })
}

/// Given an intent, when orders requests a refund of `requested_minor`
/// (`orders.RefundRequested`), then refund what is still refundable, capped
/// at the request; `None` when nothing applies any more (not captured, already
/// refunded in full, or a non-positive request), so a redelivered or late
/// request never refunds twice.
pub fn decide_requested_refund(
    state: &IntentState,
    requested_minor: i64,
) -> Option<RefundDecision> {
    if state.status != IntentStatus::Succeeded {
        return None;
    }
    let amount = requested_minor.min(state.refundable_minor());
    decide_refund(state, amount).ok()
}

/// The chart of accounts, seen from the merchant's books.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    /// Asset: money the payment provider owes the merchant (captured, not yet
    /// paid out). Grows with captures, shrinks with refunds.
    ProviderReceivable,
    /// Income: sales paid by buyers.
    MerchantRevenue,
    /// Contra-income: money given back to buyers (kept apart from revenue so
    /// gross sales stay visible).
    MerchantRefunds,
}

impl Account {
    /// The stored form (also the trial balance's `account`).
    pub fn as_str(self) -> &'static str {
        match self {
            Account::ProviderReceivable => "provider_receivable",
            Account::MerchantRevenue => "merchant_revenue",
            Account::MerchantRefunds => "merchant_refunds",
        }
    }
}

/// Which money movement a ledger transaction books.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerKind {
    Capture,
    Refund,
}

impl LedgerKind {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Capture => "CAPTURE",
            LedgerKind::Refund => "REFUND",
        }
    }
}

/// One ledger line: exactly one side is positive, the other zero (the
/// database CHECKs the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub account: Account,
    pub debit_minor: i64,
    pub credit_minor: i64,
}

/// A balanced ledger transaction: Σ debit = Σ credit. Only the constructors
/// below build one, so an unbalanced posting cannot reach the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    kind: LedgerKind,
    entries: Vec<Entry>,
}

impl Posting {
    pub fn kind(&self) -> LedgerKind {
        self.kind
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// A debit of `account` and a credit of `contra`, both `amount_minor`.
    /// Nothing for a zero amount: a free order moves no money, and a ledger
    /// line always carries a positive amount.
    fn transfer(
        kind: LedgerKind,
        debit: Account,
        credit: Account,
        amount_minor: i64,
    ) -> Option<Self> {
        (amount_minor > 0).then(|| Posting {
            kind,
            entries: vec![
                Entry {
                    account: debit,
                    debit_minor: amount_minor,
                    credit_minor: 0,
                },
                Entry {
                    account: credit,
                    debit_minor: 0,
                    credit_minor: amount_minor,
                },
            ],
        })
    }
}

/// Capture: the provider now owes the merchant the money (debit
/// `provider_receivable`) and the sale is earned (credit `merchant_revenue`).
pub fn capture_posting(amount_minor: i64) -> Option<Posting> {
    Posting::transfer(
        LedgerKind::Capture,
        Account::ProviderReceivable,
        Account::MerchantRevenue,
        amount_minor,
    )
}

/// Refund: the money given back is booked against sales (debit
/// `merchant_refunds`) and the provider owes the merchant that much less
/// (credit `provider_receivable`). Revenue itself is never rewritten.
pub fn refund_posting(amount_minor: i64) -> Option<Posting> {
    Posting::transfer(
        LedgerKind::Refund,
        Account::MerchantRefunds,
        Account::ProviderReceivable,
        amount_minor,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(status: IntentStatus, amount: i64, captured: i64, refunded: i64) -> IntentState {
        IntentState::new(status, amount, captured, refunded).expect("consistent intent")
    }

    fn open(amount: i64) -> IntentState {
        intent(IntentStatus::RequiresPaymentMethod, amount, 0, 0)
    }

    fn paid(amount: i64, refunded: i64) -> IntentState {
        intent(IntentStatus::Succeeded, amount, amount, refunded)
    }

    /// Σ debit = Σ credit (checked sums), and every line has exactly one
    /// positive side, as the database CHECKs.
    fn balanced(posting: &Posting) -> bool {
        let (debit, credit) = posting
            .entries()
            .iter()
            .try_fold((0i64, 0i64), |(debit, credit), entry| {
                Some((
                    debit.checked_add(entry.debit_minor)?,
                    credit.checked_add(entry.credit_minor)?,
                ))
            })
            .expect("no overflow");
        debit == credit
            && posting.entries().iter().all(|e| {
                (e.debit_minor > 0) != (e.credit_minor > 0)
                    && e.debit_minor >= 0
                    && e.credit_minor >= 0
            })
    }

    fn parse(stored: &str) -> Option<IntentStatus> {
        serde_json::from_value(serde_json::json!(stored)).ok()
    }

    #[test]
    fn status_round_trips_through_its_stored_form() {
        for status in IntentStatus::ALL {
            assert_eq!(parse(status.as_str()), Some(status));
        }
        assert_eq!(parse("CANCELLED"), None);
        assert_eq!(parse("succeeded"), None);
    }

    #[test]
    fn given_inconsistent_amounts_when_building_state_then_refused() {
        let cases = [
            (IntentStatus::Succeeded, 100, 100, 101),
            (IntentStatus::Succeeded, 100, 50, 0),
            (IntentStatus::Succeeded, 100, 101, 0),
            (IntentStatus::RequiresPaymentMethod, 100, 100, 0),
            (IntentStatus::Failed, 100, 0, -1),
            (IntentStatus::Canceled, 100, 10, 0),
        ];
        for (status, amount, captured, refunded) in cases {
            assert!(
                IntentState::new(status, amount, captured, refunded).is_err(),
                "{status:?} {amount} {captured} {refunded}"
            );
        }
        assert!(IntentState::new(IntentStatus::Succeeded, 0, 0, 0).is_ok());
    }

    #[test]
    fn payment_methods_parse_and_unknown_ones_list_the_valid_choices() {
        for method in PaymentMethod::ALL {
            assert_eq!(PaymentMethod::parse(method.as_str()), Ok(method));
        }
        let refusal = PaymentMethod::parse("pm_card_visa").unwrap_err();
        assert_eq!(refusal.code(), "unknown_payment_method");
        let message = refusal.to_string();
        for method in PaymentMethod::ALL {
            assert!(message.contains(method.as_str()), "{message}");
        }
        assert!(message.contains("pm_card_visa"));
    }

    #[test]
    fn refusals_say_what_was_wrong() {
        assert_eq!(
            PaymentMethod::parse("x").unwrap_err().to_string(),
            "unknown payment_method `x`; use one of: pm_card_ok, pm_card_declined, pm_card_insufficient_funds"
        );
        assert_eq!(
            Refusal::InvalidAmount(0).to_string(),
            "amount_minor must be between 1 and 1000000000000, got 0"
        );
        assert_eq!(
            Refusal::RefundExceedsCaptured {
                requested: 5,
                refundable: 3
            }
            .to_string(),
            "refund of 5 exceeds the 3 still refundable (captured minus refunded)"
        );
    }

    #[test]
    fn given_open_intent_when_confirmed_with_ok_card_then_captured_in_full() {
        assert_eq!(
            decide_confirm(&open(4_200), PaymentMethod::Good),
            Ok(ConfirmOutcome::Captured {
                amount_minor: 4_200
            })
        );
    }

    #[test]
    fn given_open_intent_when_confirmed_with_failing_cards_then_failed_with_reason() {
        assert_eq!(
            decide_confirm(&open(4_200), PaymentMethod::Declined),
            Ok(ConfirmOutcome::Failed {
                reason: FailureReason::CardDeclined
            })
        );
        assert_eq!(
            decide_confirm(&open(4_200), PaymentMethod::InsufficientFunds),
            Ok(ConfirmOutcome::Failed {
                reason: FailureReason::InsufficientFunds
            })
        );
        assert_eq!(FailureReason::CardDeclined.as_str(), "card_declined");
        assert_eq!(
            FailureReason::InsufficientFunds.as_str(),
            "insufficient_funds"
        );
    }

    #[test]
    fn given_final_intent_when_confirmed_then_refused_for_any_card() {
        let cases = [
            (paid(100, 0), "intent_already_succeeded"),
            (intent(IntentStatus::Failed, 100, 0, 0), "intent_failed"),
            (intent(IntentStatus::Canceled, 100, 0, 0), "intent_canceled"),
        ];
        for (state, code) in cases {
            for method in PaymentMethod::ALL {
                assert_eq!(
                    decide_confirm(&state, method).map_err(|r| r.code()),
                    Err(code)
                );
            }
        }
    }

    #[test]
    fn given_free_order_when_confirmed_then_captured_zero_and_nothing_posted() {
        assert_eq!(
            decide_confirm(&open(0), PaymentMethod::Good),
            Ok(ConfirmOutcome::Captured { amount_minor: 0 })
        );
        assert_eq!(capture_posting(0), None);
    }

    #[test]
    fn only_an_unpaid_intent_is_cancelled_by_the_order() {
        assert!(cancels(&open(100)));
        assert!(!cancels(&paid(100, 0)));
        assert!(!cancels(&intent(IntentStatus::Failed, 100, 0, 0)));
        assert!(!cancels(&intent(IntentStatus::Canceled, 100, 0, 0)));
    }

    #[test]
    fn given_paid_intent_when_refunding_part_then_total_grows() {
        assert_eq!(
            decide_refund(&paid(1_000, 300), 200),
            Ok(RefundDecision {
                amount_minor: 200,
                refunded_total_minor: 500
            })
        );
    }

    #[test]
    fn given_paid_intent_when_refunding_exactly_the_rest_then_fully_refunded() {
        assert_eq!(
            decide_refund(&paid(1_000, 300), 700),
            Ok(RefundDecision {
                amount_minor: 700,
                refunded_total_minor: 1_000
            })
        );
    }

    #[test]
    fn given_paid_intent_when_refunding_more_than_the_rest_then_refused() {
        assert_eq!(
            decide_refund(&paid(1_000, 300), 701),
            Err(Refusal::RefundExceedsCaptured {
                requested: 701,
                refundable: 700
            })
        );
        assert_eq!(
            decide_refund(&paid(1_000, 1_000), 1),
            Err(Refusal::RefundExceedsCaptured {
                requested: 1,
                refundable: 0
            })
        );
    }

    #[test]
    fn given_any_intent_when_refunding_a_non_positive_or_huge_amount_then_invalid() {
        for amount in [0, -1, i64::MIN, MAX_AMOUNT_MINOR + 1, i64::MAX] {
            assert_eq!(
                decide_refund(&paid(1_000, 0), amount),
                Err(Refusal::InvalidAmount(amount))
            );
            assert_eq!(
                decide_refund(&open(1_000), amount),
                Err(Refusal::InvalidAmount(amount))
            );
        }
    }

    #[test]
    fn given_uncaptured_intent_when_refunding_then_not_captured() {
        for state in [
            open(1_000),
            intent(IntentStatus::Failed, 1_000, 0, 0),
            intent(IntentStatus::Canceled, 1_000, 0, 0),
        ] {
            assert_eq!(decide_refund(&state, 10), Err(Refusal::IntentNotCaptured));
        }
    }

    #[test]
    fn given_paid_intent_when_orders_requests_a_refund_then_capped_at_the_rest() {
        assert_eq!(
            decide_requested_refund(&paid(1_000, 0), 1_000),
            Some(RefundDecision {
                amount_minor: 1_000,
                refunded_total_minor: 1_000
            })
        );
        assert_eq!(
            decide_requested_refund(&paid(1_000, 400), 1_000),
            Some(RefundDecision {
                amount_minor: 600,
                refunded_total_minor: 1_000
            })
        );
        assert_eq!(
            decide_requested_refund(&paid(1_000, 400), 100),
            Some(RefundDecision {
                amount_minor: 100,
                refunded_total_minor: 500
            })
        );
    }

    #[test]
    fn given_requested_refund_that_no_longer_applies_then_nothing() {
        assert_eq!(decide_requested_refund(&paid(1_000, 1_000), 1_000), None);
        assert_eq!(decide_requested_refund(&paid(1_000, 0), 0), None);
        assert_eq!(decide_requested_refund(&paid(1_000, 0), -5), None);
        assert_eq!(decide_requested_refund(&paid(0, 0), 10), None);
        assert_eq!(decide_requested_refund(&open(1_000), 1_000), None);
        assert_eq!(
            decide_requested_refund(&intent(IntentStatus::Canceled, 1_000, 0, 0), 1_000),
            None
        );
    }

    /// A capture debits `provider_receivable` and credits `merchant_revenue`;
    /// a refund debits `merchant_refunds` and credits `provider_receivable`.
    #[test]
    fn given_a_money_movement_when_posting_then_its_accounts_are_debited_and_credited() {
        let cases = [
            (
                capture_posting(4_200),
                LedgerKind::Capture,
                [Account::ProviderReceivable, Account::MerchantRevenue],
                4_200,
            ),
            (
                refund_posting(700),
                LedgerKind::Refund,
                [Account::MerchantRefunds, Account::ProviderReceivable],
                700,
            ),
        ];
        for (posting, kind, [debited, credited], amount) in cases {
            let posting = posting.expect("posting");
            assert_eq!(posting.kind(), kind);
            let debit = Entry {
                account: debited,
                debit_minor: amount,
                credit_minor: 0,
            };
            let credit = Entry {
                account: credited,
                debit_minor: 0,
                credit_minor: amount,
            };
            assert_eq!(posting.entries(), &[debit, credit]);
            assert!(balanced(&posting));
        }
    }

    #[test]
    fn postings_balance_for_any_positive_amount_and_never_carry_zero_lines() {
        for amount in [1, 99, 12_345, MAX_AMOUNT_MINOR, i64::MAX] {
            for posting in [capture_posting(amount), refund_posting(amount)] {
                assert!(balanced(&posting.expect("posting")), "{amount}");
            }
        }
        for amount in [0, -1, i64::MIN] {
            assert_eq!(capture_posting(amount), None);
            assert_eq!(refund_posting(amount), None);
        }
    }

    #[test]
    fn capture_then_full_refund_leaves_receivable_at_zero() {
        let mut receivable = 0i64;
        for posting in [
            capture_posting(1_000),
            refund_posting(400),
            refund_posting(600),
        ] {
            for entry in posting.expect("posting").entries() {
                if entry.account == Account::ProviderReceivable {
                    receivable += entry.debit_minor - entry.credit_minor;
                }
            }
        }
        assert_eq!(receivable, 0);
    }

    #[test]
    fn accounts_and_kinds_have_their_stored_names() {
        assert_eq!(Account::ProviderReceivable.as_str(), "provider_receivable");
        assert_eq!(Account::MerchantRevenue.as_str(), "merchant_revenue");
        assert_eq!(Account::MerchantRefunds.as_str(), "merchant_refunds");
        assert_eq!(LedgerKind::Capture.as_str(), "CAPTURE");
        assert_eq!(LedgerKind::Refund.as_str(), "REFUND");
    }
}
