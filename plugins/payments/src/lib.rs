//! The payments bounded context: one payment intent per confirmed order, a
//! deterministic test provider, refunds, and a double-entry ledger.
//!
//! Money facts (payment transactions, refunds, ledger entries) are append-only;
//! only the intent's process state is updated, with version checks. Amounts
//! always come from this context's own records, never from another context's
//! numbers at face value: an `orders.RefundRequested` is capped at what this
//! ledger says is still refundable.
//!
//! Routes (mounted at `/payments`): `GET /intents[?order_id=&status=]`, `GET /intents/{id}`,
//! `POST /intents/{id}/confirm`, `POST /intents/{id}/refunds`,
//! `GET /ledger/trial-balance`. Events: see `docs/architecture/saga.md`.
mod domain;
mod store;

use domain::{
    ConfirmOutcome, IntentStatus, MAX_AMOUNT_MINOR, PaymentMethod, RefundDecision, Refusal,
    capture_posting, refund_posting,
};
use mercato_sdk::list::{self, ListQuery};
use mercato_sdk::prelude::*;
use mercato_sdk::validate::is_currency;
use serde::Deserialize;
use serde_json::json;
use store::{Intent, IntentChange, NewIntent, TransactionKind};

/// Reason recorded for a refund asked over HTTP without one.
const DEFAULT_REFUND_REASON: &str = "merchant_request";
/// Longest refund reason accepted over HTTP.
const MAX_REASON_CHARS: usize = 500;

struct Payments;

impl Plugin for Payments {
    fn manifest() -> Manifest {
        Manifest::new("payments", env!("CARGO_PKG_VERSION"))
            .subscribe("orders.OrderConfirmed")
            .subscribe("orders.OrderCancelled")
            .subscribe("orders.RefundRequested")
            .migration(
                "0001_create_payments.sql",
                include_str!("../../../migrations/payments/0001_create_payments.sql"),
            )
            .migration(
                "0002_guard_financial_facts.sqlite.sql",
                include_str!("../../../migrations/payments/0002_guard_financial_facts.sqlite.sql"),
            )
            .migration(
                "0002_guard_financial_facts.postgres.sql",
                include_str!(
                    "../../../migrations/payments/0002_guard_financial_facts.postgres.sql"
                ),
            )
            .migration(
                "0003_list_indexes.sql",
                include_str!("../../../migrations/payments/0003_list_indexes.sql"),
            )
            .migration(
                "0004_client_secrets.sql",
                include_str!("../../../migrations/payments/0004_client_secrets.sql"),
            )
            .openapi(include_str!("../openapi.json"))
    }

    fn handle_request(req: Request) -> Response {
        Router::new()
            .get("/intents", list_intents)
            .get("/intents/{id}", get_intent)
            .post("/intents/{id}/confirm", confirm_intent)
            .post("/intents/{id}/refunds", refund_intent)
            .get("/ledger/trial-balance", trial_balance)
            .dispatch(req)
    }

    fn handle_event(event: Event) -> Result<(), Error> {
        match (event.source.as_str(), event.event_type.as_str()) {
            ("orders", "OrderConfirmed") => on_order_confirmed(&event),
            ("orders", "OrderCancelled") => on_order_cancelled(&event),
            ("orders", "RefundRequested") => on_refund_requested(&event),
            // Not subscribed; acknowledging keeps the subscription moving.
            (source, kind) => {
                log::warn(&format!("ignoring unexpected event {source}.{kind}"));
                Ok(())
            }
        }
    }
}

/// A refused command as an HTTP error: bad input 400/422, wrong state 409
/// (a refund above what is still refundable is the intent's state refusing
/// a well-formed amount).
fn refused(refusal: Refusal) -> HttpError {
    let status = match refusal {
        Refusal::UnknownPaymentMethod(_) => 400,
        Refusal::IntentCanceled
        | Refusal::IntentAlreadySucceeded
        | Refusal::IntentFailed
        | Refusal::IntentNotCaptured
        | Refusal::RefundExceedsCaptured { .. } => 409,
        Refusal::InvalidAmount(_) => 422,
    };
    HttpError::new(status, refusal.code(), &refusal.to_string())
}

fn load_intent(id: &str) -> Result<Intent, HttpError> {
    store::find_intent(id)?
        .ok_or_else(|| HttpError::not_found("unknown_intent", &format!("no payment intent {id}")))
}

// ---------------------------------------------------------------- HTTP

/// `GET /intents[?order_id=…&status=…]`: payment intents newest first by
/// `(created_at, id)`; an order has at most one.
fn list_intents(req: &Request) -> HttpResult {
    let query = ListQuery::parse(req, &["order_id", "status"])?;
    let mut listing = store::intent_listing();
    if let Some(order_id) = query.filter("order_id") {
        listing = listing.condition("order_id = $?", order_id.into());
    }
    if let Some(status) = query.filter("status") {
        listing = listing.condition("status = $?", status_filter(status)?.as_str().into());
    }
    let (rows, has_more) = query.fetch(listing)?;
    let intents = rows
        .into_iter()
        .map(|row| Intent::from_json(row).map(|intent| intent.to_json()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(list::page(intents, has_more))
}

/// The `status` filter: a stored status, or a 400 naming them (a misspelt
/// status would otherwise list nothing, silently).
fn status_filter(raw: &str) -> Result<IntentStatus, HttpError> {
    IntentStatus::ALL
        .into_iter()
        .find(|s| s.as_str() == raw)
        .ok_or_else(|| {
            let all: Vec<&str> = IntentStatus::ALL.iter().map(|s| s.as_str()).collect();
            HttpError::bad_request(
                "invalid_status",
                &format!("status must be one of {}, got `{raw}`", all.join(", ")),
            )
        })
}

/// The merchant may use any intent; a storefront (publishable key) only one
/// whose client secret it holds (from its checkout session).
fn authorize(req: &Request) -> Result<(), HttpError> {
    let secret = store::client_secret(req.param("id"))?;
    req.authorize_client_secret(secret.as_deref(), "payment intent")
}

fn get_intent(req: &Request) -> HttpResult {
    authorize(req)?;
    Ok(Response::json(
        200,
        &load_intent(req.param("id"))?.to_json(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    payment_method: String,
}

/// A capture answers 200 with the intent. A decline answers 402, as card
/// APIs do, and is committed all the same: the failed attempt stays recorded
/// (FAILURE transaction, intent FAILED, `PaymentFailed`), and the error
/// carries the intent so the client sees it without asking again.
fn confirm_intent(req: &Request) -> HttpResult {
    authorize(req)?;
    let body: ConfirmBody = req.json()?;
    let method = PaymentMethod::parse(&body.payment_method).map_err(refused)?;
    let intent = load_intent(req.param("id"))?;
    let outcome = domain::decide_confirm(&intent.state()?, method).map_err(refused)?;
    let declined = match &outcome {
        ConfirmOutcome::Failed { reason } => Some(reason.as_str()),
        ConfirmOutcome::Captured { .. } => None,
    };
    record_confirmation(&intent, method, outcome)?;
    let intent = load_intent(&intent.id)?.to_json();
    Ok(match declined {
        None => Response::json(200, &intent),
        Some(reason) => Response::json(
            402,
            &json!({ "error": {
                "code": "card_declined",
                "decline_code": reason,
                "message": format!("the card was declined ({reason}); the attempt is recorded on the payment intent"),
                "payment_intent": intent,
            }}),
        )
        .committed(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundBody {
    amount_minor: i64,
    #[serde(default)]
    reason: Option<String>,
}

fn refund_intent(req: &Request) -> HttpResult {
    let body: RefundBody = req.json()?;
    let reason = match body.reason.as_deref().map(str::trim) {
        None => DEFAULT_REFUND_REASON,
        Some(r) if !r.is_empty() && r.chars().count() <= MAX_REASON_CHARS => r,
        Some(_) => {
            return Err(HttpError::unprocessable(
                "invalid_reason",
                &format!("reason must be 1-{MAX_REASON_CHARS} characters when given"),
            ));
        }
    };
    let intent = load_intent(req.param("id"))?;
    let decision = domain::decide_refund(&intent.state()?, body.amount_minor).map_err(refused)?;
    let refund_id = record_refund(&intent, decision, reason)?;
    Ok(Response::json(
        201,
        &json!({
            "id": refund_id,
            "intent_id": intent.id,
            "amount_minor": decision.amount_minor,
            "currency": intent.currency,
            "refunded_total_minor": decision.refunded_total_minor,
        }),
    ))
}

fn trial_balance(_req: &Request) -> HttpResult {
    Ok(Response::json(200, &store::trial_balance()?))
}

// ---------------------------------------------------------------- bookkeeping

/// Records the provider's answer. A capture appends AUTHORIZATION and CAPTURE
/// transactions and books the capture posting; a failure appends a FAILURE
/// transaction. The intent update comes first so a concurrent confirm loses
/// before anything is appended.
fn record_confirmation(
    intent: &Intent,
    method: PaymentMethod,
    outcome: ConfirmOutcome,
) -> Result<(), Error> {
    let now = clock::now();
    let method = Some(method.as_str());
    match outcome {
        ConfirmOutcome::Captured { amount_minor } => {
            let change = IntentChange {
                status: IntentStatus::Succeeded,
                failure_reason: None,
                captured_minor: amount_minor,
                refunded_minor: intent.refunded_minor,
            };
            store::update_intent(intent, &change, &now)?;
            store::insert_transaction(
                intent,
                TransactionKind::Authorization,
                amount_minor,
                method,
                None,
                &now,
            )?;
            let capture_id = store::insert_transaction(
                intent,
                TransactionKind::Capture,
                amount_minor,
                method,
                None,
                &now,
            )?;
            // A free order captures nothing, so there is nothing to book.
            if let Some(posting) = capture_posting(amount_minor) {
                store::insert_posting(intent, &capture_id, &posting, &now)?;
            }
            events::emit(
                "PaymentCaptured",
                &intent.id,
                &json!({
                    "intent_id": intent.id,
                    "order_id": intent.order_id,
                    "amount_minor": amount_minor,
                    "currency": intent.currency,
                }),
            )
        }
        ConfirmOutcome::Failed { reason } => {
            let change = IntentChange {
                status: IntentStatus::Failed,
                failure_reason: Some(reason.as_str()),
                captured_minor: intent.captured_minor,
                refunded_minor: intent.refunded_minor,
            };
            store::update_intent(intent, &change, &now)?;
            store::insert_transaction(
                intent,
                TransactionKind::Failure,
                intent.amount_minor,
                method,
                Some(reason.as_str()),
                &now,
            )?;
            events::emit(
                "PaymentFailed",
                &intent.id,
                &json!({
                    "intent_id": intent.id,
                    "order_id": intent.order_id,
                    "reason": reason.as_str(),
                }),
            )
        }
    }
}

/// Records a decided refund: the intent's new refunded total, a REFUND
/// transaction, the refund row and its ledger posting, then `PaymentRefunded`.
/// Returns the refund's id. Shared by the HTTP route and `RefundRequested`.
fn record_refund(intent: &Intent, decision: RefundDecision, reason: &str) -> Result<String, Error> {
    let now = clock::now();
    let posting = refund_posting(decision.amount_minor).ok_or_else(|| {
        Error::Internal(format!(
            "refund of {} cannot be booked",
            decision.amount_minor
        ))
    })?;
    let change = IntentChange {
        status: intent.status,
        failure_reason: intent.failure_reason.as_deref(),
        captured_minor: intent.captured_minor,
        refunded_minor: decision.refunded_total_minor,
    };
    store::update_intent(intent, &change, &now)?;
    let transaction_id = store::insert_transaction(
        intent,
        TransactionKind::Refund,
        decision.amount_minor,
        None,
        None,
        &now,
    )?;
    let refund_id =
        store::insert_refund(intent, &transaction_id, decision.amount_minor, reason, &now)?;
    store::insert_posting(intent, &transaction_id, &posting, &now)?;
    events::emit(
        "PaymentRefunded",
        &intent.id,
        &json!({
            "intent_id": intent.id,
            "order_id": intent.order_id,
            "refund_id": refund_id,
            "amount_minor": decision.amount_minor,
            "refunded_total_minor": decision.refunded_total_minor,
            "captured_minor": intent.captured_minor,
        }),
    )?;
    Ok(refund_id)
}

// ---------------------------------------------------------------- events

/// `orders.OrderConfirmed`: only the fields payments needs; the rest is ignored.
#[derive(Deserialize)]
struct OrderConfirmed {
    order_id: String,
    buyer_id: String,
    currency: String,
    total_minor: i64,
}

/// Opens the order's intent for its final total. A malformed payload is an
/// error (retried, then dead-lettered where an operator sees it) rather than
/// an intent for a wrong amount.
fn on_order_confirmed(event: &Event) -> Result<(), Error> {
    let order: OrderConfirmed = events::payload(event)?;
    if order.order_id.is_empty() || order.buyer_id.is_empty() {
        return Err(Error::Invalid(
            "OrderConfirmed needs order_id and buyer_id".to_owned(),
        ));
    }
    if !is_currency(&order.currency) {
        return Err(Error::Invalid(format!(
            "OrderConfirmed {}: currency `{}` is not an ISO 4217 code",
            order.order_id, order.currency
        )));
    }
    if !(0..=MAX_AMOUNT_MINOR).contains(&order.total_minor) {
        return Err(Error::Invalid(format!(
            "OrderConfirmed {}: total_minor {} is out of range",
            order.order_id, order.total_minor
        )));
    }
    let id = new_id();
    let new = NewIntent {
        id: &id,
        order_id: &order.order_id,
        buyer_id: &order.buyer_id,
        amount_minor: order.total_minor,
        currency: &order.currency,
    };
    if !store::insert_intent(&new, &clock::now())? {
        log::info(&format!(
            "order {} already has a payment intent",
            order.order_id
        ));
        return Ok(());
    }
    let secret = mercato_sdk::role::new_client_secret(&id);
    store::insert_client_secret(&id, &secret)?;
    events::emit(
        "PaymentIntentCreated",
        &id,
        &json!({
            "intent_id": id,
            "order_id": order.order_id,
            "amount_minor": order.total_minor,
            "currency": order.currency,
            "client_secret": secret,
        }),
    )
}

#[derive(Deserialize)]
struct OrderCancelled {
    order_id: String,
}

/// Cancels the order's unpaid intent so a later confirm is refused. An order
/// cancelled before confirmation has no intent; a paid one is refunded on
/// `RefundRequested` instead; both are no-ops here.
fn on_order_cancelled(event: &Event) -> Result<(), Error> {
    let order: OrderCancelled = events::payload(event)?;
    let Some(intent) = store::intent_for_order(&order.order_id)? else {
        return Ok(());
    };
    if !domain::cancels(&intent.state()?) {
        return Ok(());
    }
    let change = IntentChange {
        status: IntentStatus::Canceled,
        failure_reason: None,
        captured_minor: intent.captured_minor,
        refunded_minor: intent.refunded_minor,
    };
    store::update_intent(&intent, &change, &clock::now())
}

#[derive(Deserialize)]
struct RefundRequested {
    order_id: String,
    intent_id: String,
    amount_minor: i64,
    #[serde(default)]
    reason: Option<String>,
}

/// Refunds what orders asks for, capped at what this ledger says is still
/// refundable; nothing when the intent has nothing left (e.g. a redelivery
/// after a full refund). An unknown intent or one of another order is a
/// broken contract, reported as an error instead of refunding anything.
fn on_refund_requested(event: &Event) -> Result<(), Error> {
    let request: RefundRequested = events::payload(event)?;
    let intent = store::find_intent(&request.intent_id)?.ok_or_else(|| {
        Error::Invalid(format!(
            "RefundRequested for order {}: no payment intent {}",
            request.order_id, request.intent_id
        ))
    })?;
    if intent.order_id != request.order_id {
        return Err(Error::Invalid(format!(
            "RefundRequested: intent {} belongs to order {}, not {}",
            intent.id, intent.order_id, request.order_id
        )));
    }
    let Some(decision) = domain::decide_requested_refund(&intent.state()?, request.amount_minor)
    else {
        log::info(&format!(
            "RefundRequested for intent {}: nothing left to refund",
            intent.id
        ));
        return Ok(());
    };
    // Tolerant reader: the reason is for the books, not worth dead-lettering a refund over.
    let reason = match request.reason.as_deref().map(str::trim) {
        None | Some("") => "refund_requested",
        Some(reason) => reason,
    };
    record_refund(&intent, decision, reason).map(drop)
}

mercato_sdk::export_plugin!(Payments);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_filter_takes_the_stored_spellings_only() {
        for status in IntentStatus::ALL {
            assert_eq!(status_filter(status.as_str()), Ok(status));
        }
        for raw in ["", "succeeded", "CANCELLED", "PAID"] {
            let e = status_filter(raw).unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (400, "invalid_status"));
            assert!(
                e.message
                    .contains("REQUIRES_PAYMENT_METHOD, SUCCEEDED, FAILED, CANCELED"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn a_listed_intent_reads_like_a_single_one() {
        let row = serde_json::json!({
            "id": "i", "order_id": "o", "buyer_id": "b", "amount_minor": 2500,
            "currency": "EUR", "status": "SUCCEEDED", "failure_reason": null,
            "captured_minor": 2500, "refunded_minor": 0, "version": 2,
            "created_at": "2026-12-01T00:00:00.000Z"
        });
        let shown = Intent::from_json(row).unwrap().to_json();
        assert_eq!(shown["status"], "SUCCEEDED");
        assert_eq!(shown["captured_minor"], 2500);
        assert!(shown.get("version").is_none(), "{shown}");
        assert!(Intent::from_json(serde_json::json!({"id": "i"})).is_err());
    }
}
