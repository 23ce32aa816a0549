//! Every SQL statement of the checkout context, inside the current call's
//! transaction.
//!
//! `checkout_sessions` is updated only with a version check, and every change
//! a decider makes (a step too) bumps the version, so two handlers deciding on
//! the same session at once cannot both win: the loser is retried.
use crate::domain::{
    CouponRejection, Failure, FailureReason, NewSession, Session, Status, Step, StoredFacts,
};
use mercato_sdk::prelude::*;
use serde::Deserialize;

const SESSION_COLUMNS: &str = "id, status, buyer_id, currency, items_json, coupon_code, \
     shipping_address_json, order_id, payment_intent_id, shipment_id, total_minor, version, \
     created_at, expires_at, updated_at, coupon_rejection_json";

/// A `checkout_sessions` row.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionRow {
    pub id: String,
    pub status: Status,
    pub buyer_id: String,
    pub currency: String,
    pub items_json: String,
    pub coupon_code: Option<String>,
    pub shipping_address_json: String,
    pub order_id: Option<String>,
    pub payment_intent_id: Option<String>,
    pub shipment_id: Option<String>,
    pub total_minor: Option<i64>,
    pub version: i64,
    pub created_at: String,
    pub expires_at: String,
    pub updated_at: String,
    /// [`CouponRejection`] as JSON, when the order's coupon did not apply.
    pub coupon_rejection_json: Option<String>,
}

impl SessionRow {
    /// The decider's view, with the steps already recorded.
    pub fn state(&self) -> Result<Session, Error> {
        Ok(Session {
            status: self.status,
            order_id: self.order_id.clone(),
            payment_intent_id: self.payment_intent_id.clone(),
            shipment_id: self.shipment_id.clone(),
            total_minor: self.total_minor,
            reached: steps(&self.id)?.into_iter().map(|s| s.step).collect(),
            coupon_rejection: self.coupon_rejection()?,
        })
    }

    /// Why the order's coupon did not apply, when it did not.
    pub fn coupon_rejection(&self) -> Result<Option<CouponRejection>, Error> {
        self.coupon_rejection_json
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| Error::Internal(format!("stored coupon_rejection_json: {e}")))
    }
}

/// The session with `id`.
pub fn find_session(id: &str) -> Result<Option<SessionRow>, Error> {
    db::query(
        &format!("SELECT {SESSION_COLUMNS} FROM checkout_sessions WHERE id = $1"),
        &[id.into()],
    )?
    .parse_first()
}

/// The session that placed order `order_id` (`order_id` is unique).
pub fn session_for_order(order_id: &str) -> Result<Option<SessionRow>, Error> {
    db::query(
        &format!("SELECT {SESSION_COLUMNS} FROM checkout_sessions WHERE order_id = $1"),
        &[order_id.into()],
    )?
    .parse_first()
}

/// Stores a new OPEN session at version 1.
pub fn insert_session(
    id: &str,
    new: &NewSession,
    created_at: &str,
    expires_at: &str,
) -> Result<(), Error> {
    let json = |value: serde_json::Result<String>| {
        value.map_err(|e| Error::Internal(format!("cannot serialize the session: {e}")))
    };
    db::execute(
        "INSERT INTO checkout_sessions (id, status, buyer_id, currency, items_json, coupon_code, \
         shipping_address_json, order_id, payment_intent_id, shipment_id, total_minor, version, \
         created_at, expires_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, NULL, NULL, 1, $8, $9, $8)",
        &[
            id.into(),
            Status::Open.as_str().into(),
            new.buyer_id.as_str().into(),
            new.currency.as_str().into(),
            json(serde_json::to_string(&new.items))?.into(),
            new.coupon_code.as_deref().into(),
            json(serde_json::to_string(&new.shipping_address))?.into(),
            created_at.into(),
            expires_at.into(),
        ],
    )?;
    Ok(())
}

/// Writes the decided state if the session is still at the version it was
/// read at; a concurrent writer got there first otherwise, and the error
/// rolls the call back (HTTP 409 `conflict`; an event handler is retried).
pub fn update_session(row: &SessionRow, state: &Session, now: &str) -> Result<(), Error> {
    let coupon_rejection = state
        .coupon_rejection
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| Error::Internal(format!("cannot serialize the coupon rejection: {e}")))?;
    let changed = db::execute(
        "UPDATE checkout_sessions SET status = $1, order_id = $2, payment_intent_id = $3, \
         shipment_id = $4, total_minor = $5, coupon_rejection_json = $9, version = version + 1, \
         updated_at = $6 WHERE id = $7 AND version = $8",
        &[
            state.status.as_str().into(),
            state.order_id.as_deref().into(),
            state.payment_intent_id.as_deref().into(),
            state.shipment_id.as_deref().into(),
            state.total_minor.into(),
            now.into(),
            row.id.as_str().into(),
            row.version.into(),
            coupon_rejection.into(),
        ],
    )?;
    if changed == 1 {
        Ok(())
    } else {
        Err(Error::Conflict(format!(
            "checkout session {} changed concurrently; retry",
            row.id
        )))
    }
}

/// A recorded step.
#[derive(Debug, Clone, Deserialize)]
pub struct StepRow {
    pub step: Step,
    pub at: String,
}

/// The steps a session reached.
pub fn steps(session_id: &str) -> Result<Vec<StepRow>, Error> {
    db::query(
        "SELECT step, at FROM checkout_steps WHERE session_id = $1",
        &[session_id.into()],
    )?
    .parse_all()
}

/// Records a step; the primary key (session, step) keeps it once even if the
/// decider were wrong.
pub fn insert_step(session_id: &str, step: Step, at: &str, now: &str) -> Result<(), Error> {
    db::execute(
        "INSERT INTO checkout_steps (session_id, step, at, recorded_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (session_id, step) DO NOTHING",
        &[
            session_id.into(),
            step.as_str().into(),
            at.into(),
            now.into(),
        ],
    )?;
    Ok(())
}

/// A recorded failure.
#[derive(Debug, Clone, Deserialize)]
pub struct FailureRow {
    pub reason: FailureReason,
    pub detail: String,
    pub at: String,
}

/// A session's failures, oldest first.
pub fn failures(session_id: &str) -> Result<Vec<FailureRow>, Error> {
    db::query(
        "SELECT reason, detail, at FROM checkout_failures WHERE session_id = $1 \
         ORDER BY at, recorded_at, id",
        &[session_id.into()],
    )?
    .parse_all()
}

/// Records a failure.
pub fn insert_failure(session_id: &str, failure: &Failure, now: &str) -> Result<(), Error> {
    db::execute(
        "INSERT INTO checkout_failures (id, session_id, reason, detail, at, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            new_id().into(),
            session_id.into(),
            failure.reason.as_str().into(),
            failure.detail.as_str().into(),
            failure.at.as_str().into(),
            now.into(),
        ],
    )?;
    Ok(())
}

/// Adds `facts` to the order's row, creating it if needed; a fact already
/// stored keeps its first value. With no facts this only takes the row: on
/// PostgreSQL the upsert locks it until commit, which is how a fact and the
/// link of its order (each written first to this row) serialise.
pub fn upsert_facts(order_id: &str, facts: &StoredFacts, now: &str) -> Result<(), Error> {
    db::execute(
        "INSERT INTO checkout_order_facts (order_id, stock_reserved_at, payment_intent_id, \
         payment_intent_at, shipment_id, shipment_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (order_id) DO UPDATE SET \
         stock_reserved_at = COALESCE(checkout_order_facts.stock_reserved_at, excluded.stock_reserved_at), \
         payment_intent_id = COALESCE(checkout_order_facts.payment_intent_id, excluded.payment_intent_id), \
         payment_intent_at = COALESCE(checkout_order_facts.payment_intent_at, excluded.payment_intent_at), \
         shipment_id = COALESCE(checkout_order_facts.shipment_id, excluded.shipment_id), \
         shipment_at = COALESCE(checkout_order_facts.shipment_at, excluded.shipment_at)",
        &[
            order_id.into(),
            facts.stock_reserved_at.as_deref().into(),
            facts.payment_intent_id.as_deref().into(),
            facts.payment_intent_at.as_deref().into(),
            facts.shipment_id.as_deref().into(),
            facts.shipment_at.as_deref().into(),
            now.into(),
        ],
    )?;
    Ok(())
}

/// Removes and returns the facts kept for `order_id` (empty when none).
pub fn take_facts(order_id: &str) -> Result<StoredFacts, Error> {
    let facts = db::query(
        "SELECT stock_reserved_at, payment_intent_id, payment_intent_at, shipment_id, \
         shipment_at FROM checkout_order_facts WHERE order_id = $1",
        &[order_id.into()],
    )?
    .parse_first()?
    .unwrap_or_default();
    db::execute(
        "DELETE FROM checkout_order_facts WHERE order_id = $1",
        &[order_id.into()],
    )?;
    Ok(facts)
}

/// Deletes kept facts created before `before`: orders no session claims
/// (placed with `POST /orders`, or whose session was wiped) leave facts that
/// nothing will ever apply. The row of `keep` (the order whose fact is being
/// stored) stays, however old, so its new fact is not lost with it.
pub fn prune_facts(before: &str, keep: &str) -> Result<(), Error> {
    db::execute(
        "DELETE FROM checkout_order_facts WHERE created_at < $1 AND order_id <> $2",
        &[before.into(), keep.into()],
    )?;
    Ok(())
}

/// Keeps the client secret `POST /sessions` answered for session `id`.
pub fn insert_client_secret(id: &str, secret: &str) -> Result<(), Error> {
    db::execute(
        "INSERT INTO checkout_client_secrets (session_id, client_secret) VALUES ($1, $2)",
        &[id.into(), secret.into()],
    )?;
    Ok(())
}

/// The client secret of session `id`, if it has one.
pub fn client_secret(id: &str) -> Result<Option<String>, Error> {
    let rows = db::query(
        "SELECT client_secret FROM checkout_client_secrets WHERE session_id = $1",
        &[id.into()],
    )?;
    rows.first()
        .map(|r| Ok(r.text("client_secret")?.to_owned()))
        .transpose()
}

/// Keeps the client secret of the payment intent for `order_id`; a
/// redelivered event changes nothing.
pub fn keep_payment_secret(order_id: &str, secret: &str) -> Result<(), Error> {
    db::execute(
        "INSERT INTO checkout_payment_secrets (order_id, client_secret) VALUES ($1, $2) \
         ON CONFLICT (order_id) DO NOTHING",
        &[order_id.into(), secret.into()],
    )?;
    Ok(())
}

/// The client secret of the payment intent for `order_id`, once known.
pub fn payment_secret(order_id: &str) -> Result<Option<String>, Error> {
    let rows = db::query(
        "SELECT client_secret FROM checkout_payment_secrets WHERE order_id = $1",
        &[order_id.into()],
    )?;
    rows.first()
        .map(|r| Ok(r.text("client_secret")?.to_owned()))
        .transpose()
}
