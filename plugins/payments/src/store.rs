//! SQL for the payments tables, inside the current call's transaction.
//!
//! `payment_intents` is the only table ever updated, always with a version
//! check; every other table only receives INSERTs (the 0002 migration's
//! triggers refuse anything else).
use crate::domain::{Inconsistent, IntentState, IntentStatus, Posting};
use mercato_sdk::db::Row;
use mercato_sdk::list::Listing;
use mercato_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

const INTENT_COLUMNS: &str = "id, order_id, buyer_id, amount_minor, currency, status, \
     failure_reason, captured_minor, refunded_minor, version, created_at";

/// A payment intent as stored (a `payment_intents` row).
#[derive(Debug, Clone, Deserialize)]
pub struct Intent {
    pub id: String,
    pub order_id: String,
    pub buyer_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub status: IntentStatus,
    pub failure_reason: Option<String>,
    pub captured_minor: i64,
    pub refunded_minor: i64,
    pub version: i64,
    pub created_at: String,
}

impl Intent {
    /// The deciders' view; a row breaking the money invariants is a 500, not
    /// something to act on.
    pub fn state(&self) -> Result<IntentState, Error> {
        IntentState::new(
            self.status,
            self.amount_minor,
            self.captured_minor,
            self.refunded_minor,
        )
        .map_err(|Inconsistent(what)| {
            Error::Internal(format!(
                "payment intent {} is inconsistent: {what}",
                self.id
            ))
        })
    }

    /// A row of [`intent_listing`] (its columns as JSON) read back.
    pub fn from_json(row: Value) -> Result<Intent, Error> {
        let id = row["id"].as_str().unwrap_or_default().to_owned();
        serde_json::from_value(row)
            .map_err(|e| Error::Internal(format!("payment intent {id} is unreadable: {e}")))
    }

    /// The API representation.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "order_id": self.order_id,
            "buyer_id": self.buyer_id,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "status": self.status.as_str(),
            "failure_reason": self.failure_reason,
            "captured_minor": self.captured_minor,
            "refunded_minor": self.refunded_minor,
            "created_at": self.created_at,
        })
    }
}

/// Every intent as a list, newest first by `(created_at, id)`; the handler
/// adds its filters.
pub fn intent_listing() -> Listing {
    Listing::new("payment_intents", INTENT_COLUMNS)
}

/// The intent with `id`.
pub fn find_intent(id: &str) -> Result<Option<Intent>, Error> {
    intent_where("id", id)
}

/// The order's intent (`order_id` is unique).
pub fn intent_for_order(order_id: &str) -> Result<Option<Intent>, Error> {
    intent_where("order_id", order_id)
}

/// The intent whose `column` (a unique one) is `value`.
fn intent_where(column: &str, value: &str) -> Result<Option<Intent>, Error> {
    let rows = db::query(
        &format!("SELECT {INTENT_COLUMNS} FROM payment_intents WHERE {column} = $1"),
        &[value.into()],
    )?;
    rows.parse_first()
}

/// A new intent for a confirmed order.
pub struct NewIntent<'a> {
    pub id: &'a str,
    pub order_id: &'a str,
    pub buyer_id: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
}

/// Inserts the intent unless the order already has one; false when it did
/// (a redelivered `OrderConfirmed`), so the caller emits nothing.
pub fn insert_intent(new: &NewIntent<'_>, now: &str) -> Result<bool, Error> {
    let changed = db::execute(
        "INSERT INTO payment_intents (id, order_id, buyer_id, amount_minor, currency, status, \
         failure_reason, captured_minor, refunded_minor, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, 0, 0, 1, $7, $7) \
         ON CONFLICT (order_id) DO NOTHING",
        &[
            new.id.into(),
            new.order_id.into(),
            new.buyer_id.into(),
            new.amount_minor.into(),
            new.currency.into(),
            IntentStatus::RequiresPaymentMethod.as_str().into(),
            now.into(),
        ],
    )?;
    Ok(changed == 1)
}

/// The intent's mutable fields after a transition.
pub struct IntentChange<'a> {
    pub status: IntentStatus,
    pub failure_reason: Option<&'a str>,
    pub captured_minor: i64,
    pub refunded_minor: i64,
}

/// Applies `change` if the intent is still at the version it was read at.
/// A concurrent writer got there first otherwise: the error rolls the whole
/// call back (HTTP 409 `conflict`; an event handler is retried).
pub fn update_intent(intent: &Intent, change: &IntentChange<'_>, now: &str) -> Result<(), Error> {
    let changed = db::execute(
        "UPDATE payment_intents SET status = $1, failure_reason = $2, captured_minor = $3, \
         refunded_minor = $4, version = version + 1, updated_at = $5 \
         WHERE id = $6 AND version = $7",
        &[
            change.status.as_str().into(),
            change.failure_reason.into(),
            change.captured_minor.into(),
            change.refunded_minor.into(),
            now.into(),
            intent.id.as_str().into(),
            intent.version.into(),
        ],
    )?;
    if changed == 1 {
        Ok(())
    } else {
        Err(Error::Conflict(format!(
            "payment intent {} changed concurrently; retry",
            intent.id
        )))
    }
}

/// `payment_transactions.kind`.
#[derive(Debug, Clone, Copy)]
pub enum TransactionKind {
    Authorization,
    Capture,
    Failure,
    Refund,
}

impl TransactionKind {
    fn as_str(self) -> &'static str {
        match self {
            TransactionKind::Authorization => "AUTHORIZATION",
            TransactionKind::Capture => "CAPTURE",
            TransactionKind::Failure => "FAILURE",
            TransactionKind::Refund => "REFUND",
        }
    }
}

/// Appends a payment transaction in the intent's currency; returns its id.
pub fn insert_transaction(
    intent: &Intent,
    kind: TransactionKind,
    amount_minor: i64,
    payment_method: Option<&str>,
    detail: Option<&str>,
    now: &str,
) -> Result<String, Error> {
    let id = new_id();
    db::execute(
        "INSERT INTO payment_transactions (id, intent_id, kind, amount_minor, currency, \
         payment_method, detail, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            id.as_str().into(),
            intent.id.as_str().into(),
            kind.as_str().into(),
            amount_minor.into(),
            intent.currency.as_str().into(),
            payment_method.into(),
            detail.into(),
            now.into(),
        ],
    )?;
    Ok(id)
}

/// Appends a refund tied to its REFUND payment transaction; returns its id.
pub fn insert_refund(
    intent: &Intent,
    payment_transaction_id: &str,
    amount_minor: i64,
    reason: &str,
    now: &str,
) -> Result<String, Error> {
    let id = new_id();
    db::execute(
        "INSERT INTO refunds (id, intent_id, payment_transaction_id, amount_minor, currency, \
         reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            id.as_str().into(),
            intent.id.as_str().into(),
            payment_transaction_id.into(),
            amount_minor.into(),
            intent.currency.as_str().into(),
            reason.into(),
            now.into(),
        ],
    )?;
    Ok(id)
}

/// Books `posting` as one ledger transaction for the payment transaction that
/// moved the money (unique: booking it twice fails the call).
pub fn insert_posting(
    intent: &Intent,
    payment_transaction_id: &str,
    posting: &Posting,
    now: &str,
) -> Result<(), Error> {
    let ledger_transaction_id = new_id();
    db::execute(
        "INSERT INTO ledger_transactions (id, kind, intent_id, payment_transaction_id, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
        &[
            ledger_transaction_id.as_str().into(),
            posting.kind().as_str().into(),
            intent.id.as_str().into(),
            payment_transaction_id.into(),
            now.into(),
        ],
    )?;
    for entry in posting.entries() {
        db::execute(
            "INSERT INTO ledger_entries (id, ledger_transaction_id, account, currency, \
             debit_minor, credit_minor, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                new_id().into(),
                ledger_transaction_id.as_str().into(),
                entry.account.as_str().into(),
                intent.currency.as_str().into(),
                entry.debit_minor.into(),
                entry.credit_minor.into(),
                now.into(),
            ],
        )?;
    }
    Ok(())
}

/// Sums of the whole ledger, computed by the database. `SUM(bigint)` is
/// `numeric` on PostgreSQL and reaches us as integral text, which `Row::int`
/// parses.
pub fn trial_balance() -> Result<Value, Error> {
    let sums = |row: Row<'_>| -> Result<(i64, i64), Error> {
        Ok((row.int("debit_minor")?, row.int("credit_minor")?))
    };

    let accounts = db::query(
        "SELECT account, currency, SUM(debit_minor) AS debit_minor, \
         SUM(credit_minor) AS credit_minor FROM ledger_entries \
         GROUP BY account, currency ORDER BY account, currency",
        &[],
    )?
    .iter()
    .map(|row| {
        let (debit, credit) = sums(row)?;
        Ok(json!({
            "account": row.text("account")?,
            "currency": row.text("currency")?,
            "debit_minor": debit,
            "credit_minor": credit,
        }))
    })
    .collect::<Result<Vec<_>, Error>>()?;

    // Minor units of different currencies cannot be added meaningfully, so
    // balance is judged per currency; the grand totals are kept for the
    // single-currency shop and as a quick check.
    let mut every_currency_balances = true;
    let currencies = db::query(
        "SELECT currency, SUM(debit_minor) AS debit_minor, SUM(credit_minor) AS credit_minor \
         FROM ledger_entries GROUP BY currency ORDER BY currency",
        &[],
    )?
    .iter()
    .map(|row| {
        let (debit, credit) = sums(row)?;
        every_currency_balances &= debit == credit;
        Ok(json!({
            "currency": row.text("currency")?,
            "debit_minor": debit,
            "credit_minor": credit,
            "balanced": debit == credit,
        }))
    })
    .collect::<Result<Vec<_>, Error>>()?;

    let totals = db::query(
        "SELECT COALESCE(SUM(debit_minor), 0) AS debit_minor, \
         COALESCE(SUM(credit_minor), 0) AS credit_minor FROM ledger_entries",
        &[],
    )?;
    let (total_debit, total_credit) = totals.first().map(sums).transpose()?.unwrap_or((0, 0));

    // A ledger transaction balances when its entries share one currency and
    // their debits equal their credits.
    let unbalanced = db::query(
        "SELECT COUNT(*) AS n FROM (SELECT ledger_transaction_id FROM ledger_entries \
         GROUP BY ledger_transaction_id \
         HAVING SUM(debit_minor) <> SUM(credit_minor) OR COUNT(DISTINCT currency) > 1) AS u",
        &[],
    )?
    .first()
    .map(|row| row.int("n"))
    .transpose()?
    .unwrap_or(0);

    Ok(json!({
        "accounts": accounts,
        "currencies": currencies,
        "total_debit_minor": total_debit,
        "total_credit_minor": total_credit,
        "balanced": total_debit == total_credit && every_currency_balances && unbalanced == 0,
        "unbalanced_transactions": unbalanced,
    }))
}

/// Keeps the client secret of intent `id`.
pub fn insert_client_secret(id: &str, secret: &str) -> Result<(), Error> {
    db::execute(
        "INSERT INTO payment_intent_client_secrets (intent_id, client_secret) VALUES ($1, $2)",
        &[id.into(), secret.into()],
    )?;
    Ok(())
}

/// The client secret of intent `id`, if it has one.
pub fn client_secret(id: &str) -> Result<Option<String>, Error> {
    let rows = db::query(
        "SELECT client_secret FROM payment_intent_client_secrets WHERE intent_id = $1",
        &[id.into()],
    )?;
    rows.first()
        .map(|r| Ok(r.text("client_secret")?.to_owned()))
        .transpose()
}
