//! The checkout bounded context: a buyer's checkout session and where its
//! order saga stands. Checkout owns process state, not business truth: the
//! order, the stock, the money and the shipment are other contexts' records;
//! checkout follows their events and can be wiped without losing any of them
//! (events about sessions or orders it no longer knows are then ignored).
//!
//! Routes (mounted at `/checkout`): `POST /sessions`, `GET /sessions/{id}`,
//! `POST /sessions/{id}/submit`. Emits `CheckoutSubmitted` (orders places the
//! order) and `CheckoutSessionExpiryDue` (a delayed timer to itself).
mod domain;
mod store;

use domain::{Decision, Fact, Incoming, NotOpen, OpenSession, Session, Step, StoredFacts, Subject};
use mercato_sdk::prelude::*;
use mercato_sdk::time::Instant;
use serde_json::{Value, json};
use store::SessionRow;

/// How long facts about an order no session has claimed are kept: a day.
const KEEP_UNCLAIMED_FACTS_MS: i64 = 86_400_000;

struct Checkout;

impl Plugin for Checkout {
    fn manifest() -> Manifest {
        let mut m = Manifest::new("checkout", env!("CARGO_PKG_VERSION"))
            .migration(
                "0001_checkout.sql",
                include_str!("../../../migrations/checkout/0001_checkout.sql"),
            )
            .migration(
                "0002_client_secrets.sql",
                include_str!("../../../migrations/checkout/0002_client_secrets.sql"),
            )
            .migration(
                "0003_coupon_rejection.sql",
                include_str!("../../../migrations/checkout/0003_coupon_rejection.sql"),
            )
            .openapi(include_str!("../openapi.json"));
        for pattern in [
            "checkout.CheckoutSessionExpiryDue",
            "orders.OrderPlaced",
            "orders.CheckoutRejected",
            "orders.OrderConfirmed",
            "orders.OrderPaid",
            "orders.OrderRejected",
            "orders.OrderCancelled",
            "inventory.StockReserved",
            "payments.PaymentIntentCreated",
            "shipping.ShipmentCreated",
        ] {
            m = m.subscribe(pattern);
        }
        m
    }

    fn handle_request(req: Request) -> Response {
        Router::new()
            .post("/sessions", open_session)
            .get("/sessions/{id}", get_session)
            .post("/sessions/{id}/submit", submit_session)
            .dispatch(req)
    }

    fn handle_event(event: Event) -> Result<(), Error> {
        if (event.source.as_str(), event.event_type.as_str())
            == ("payments", "PaymentIntentCreated")
        {
            keep_payment_secret(&event.payload)?;
        }
        let read =
            domain::read_event(&event.source, &event.event_type, &event.payload).map_err(|e| {
                Error::Invalid(format!(
                    "{}.{} payload: {e}",
                    event.source, event.event_type
                ))
            })?;
        let Some(Incoming { subject, fact }) = read else {
            return Ok(());
        };
        // A step's time is when the event's transaction committed; the
        // expiry timer's is when it fired (it is emitted when the session opens).
        let at = match fact {
            Fact::ExpiryDue => clock::now(),
            _ => event.occurred_at.clone(),
        };
        match subject {
            Subject::Session(id) => on_session_fact(&id, fact, &at),
            Subject::Order(order_id) => on_order_fact(&order_id, fact, &at),
        }
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("{what}: {e}"))
}

fn load(id: &str) -> Result<SessionRow, HttpError> {
    store::find_session(id)?.ok_or_else(|| {
        HttpError::not_found("unknown_session", &format!("no checkout session {id}"))
    })
}

// ---------------------------------------------------------------- HTTP

fn open_session(req: &Request) -> HttpResult {
    let body: OpenSession = req.json()?;
    let new = body.validate()?;
    let id = new_id();
    let now = clock::instant();
    let expires_at = domain::expires_at(now, new.ttl_ms);
    store::insert_session(&id, &new, &now.to_string(), &expires_at.to_string())?;
    let secret = mercato_sdk::role::new_client_secret(&id);
    store::insert_client_secret(&id, &secret)?;
    events::emit_after(
        "CheckoutSessionExpiryDue",
        &id,
        &json!({ "session_id": id }),
        new.ttl_ms,
    )?;
    let mut answer = view(&load(&id)?)?;
    answer["client_secret"] = secret.into();
    Ok(Response::json(201, &answer))
}

/// The merchant may use any session; a storefront (publishable key) only one
/// whose client secret it holds.
fn authorized(req: &Request) -> Result<SessionRow, HttpError> {
    let id = req.param("id");
    req.authorize_client_secret(store::client_secret(id)?.as_deref(), "checkout session")?;
    load(id)
}

fn get_session(req: &Request) -> HttpResult {
    Ok(Response::json(200, &view(&authorized(req)?)?))
}

/// The body, if any, is ignored: everything was given when the session opened.
fn submit_session(req: &Request) -> HttpResult {
    let row = authorized(req)?;
    let before = row.state()?;
    let expires_at = Instant::parse(&row.expires_at)
        .ok_or_else(|| internal("stored expires_at", &row.expires_at))?;
    let decision = domain::submit(&before, expires_at, clock::instant())
        .map_err(|refused| HttpError::conflict(NotOpen::CODE, &refused.message))?;
    persist(&row, &before, &decision)?;
    events::emit(
        "CheckoutSubmitted",
        &row.id,
        &json!({
            "session_id": row.id,
            "buyer_id": row.buyer_id,
            "currency": row.currency,
            "items": stored_json(&row.items_json)?,
            "coupon_code": row.coupon_code,
            "shipping_address": stored_json(&row.shipping_address_json)?,
        }),
    )?;
    Ok(Response::json(200, &view(&load(&row.id)?)?))
}

fn stored_json(text: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(|e| internal("stored session JSON", e))
}

/// The buyer's single place to poll: the session, every step in saga order
/// (`at` null until reached) and the failures.
fn view(row: &SessionRow) -> Result<Value, Error> {
    let reached = store::steps(&row.id)?;
    let steps: Vec<Value> = Step::ALL
        .iter()
        .map(|step| {
            let at = reached.iter().find(|r| r.step == *step).map(|r| &r.at);
            json!({ "step": step.as_str(), "at": at })
        })
        .collect();
    let failures: Vec<Value> = store::failures(&row.id)?
        .iter()
        .map(|f| json!({ "reason": f.reason.as_str(), "detail": f.detail, "at": f.at }))
        .collect();
    Ok(json!({
        "id": row.id,
        "status": row.status.as_str(),
        "buyer_id": row.buyer_id,
        "currency": row.currency,
        "items": stored_json(&row.items_json)?,
        "coupon_code": row.coupon_code,
        "shipping_address": stored_json(&row.shipping_address_json)?,
        "order_id": row.order_id,
        "payment_intent_id": row.payment_intent_id,
        "payment_client_secret": match &row.order_id {
            Some(order_id) => store::payment_secret(order_id)?,
            None => None,
        },
        "shipment_id": row.shipment_id,
        "total_minor": row.total_minor,
        "coupon_rejection": row.coupon_rejection()?,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "updated_at": row.updated_at,
        "steps": steps,
        "failures": failures,
    }))
}

// ---------------------------------------------------------------- events

/// Keeps the payment intent's client secret for the session's holder, who
/// confirms the payment with it (`POST /payments/intents/{id}/confirm`).
fn keep_payment_secret(payload: &str) -> Result<(), Error> {
    #[derive(serde::Deserialize)]
    struct Created {
        order_id: String,
        client_secret: Option<String>,
    }
    let created: Created = serde_json::from_str(payload)
        .map_err(|e| Error::Invalid(format!("payments.PaymentIntentCreated payload: {e}")))?;
    match created.client_secret {
        Some(secret) => store::keep_payment_secret(&created.order_id, &secret),
        None => Ok(()),
    }
}

/// A fact naming its session (expiry, `OrderPlaced`, `CheckoutRejected`).
/// An unknown session (wiped, or never ours) is no error.
fn on_session_fact(id: &str, fact: Fact, at: &str) -> Result<(), Error> {
    let Some(row) = store::find_session(id)? else {
        log::info(&format!(
            "ignoring {fact:?} for unknown checkout session {id}"
        ));
        return Ok(());
    };
    let before = row.state()?;
    let placed = match &fact {
        Fact::OrderPlaced { order_id } => Some(order_id.clone()),
        _ => None,
    };
    let mut decision = domain::decide(&before, fact, at);
    // The session now knows its order: apply what arrived about the order
    // before this event did. Taking the facts row first serialises with a
    // handler storing a fact for this order right now (see `on_order_fact`).
    if let Some(order_id) = placed.filter(|o| decision.session.order_id.as_ref() == Some(o)) {
        store::upsert_facts(&order_id, &StoredFacts::default(), &clock::now())?;
        decision = apply_kept_facts(decision, &order_id)?;
    }
    persist(&row, &before, &decision)
}

/// A fact naming an order. Facts from other sources than orders may arrive
/// before `orders.OrderPlaced` told checkout the order's session, so they are
/// kept under the order first and applied once the session is known. Orders'
/// own events follow its `OrderPlaced`, so an order without a session then
/// was never a checkout's (or was wiped): nothing to do.
fn on_order_fact(order_id: &str, fact: Fact, at: &str) -> Result<(), Error> {
    let Some(kept) = StoredFacts::of(&fact, at) else {
        let Some(row) = store::session_for_order(order_id)? else {
            return Ok(());
        };
        let before = row.state()?;
        let decision = domain::decide(&before, fact, at);
        return persist(&row, &before, &decision);
    };
    let now = clock::instant();
    store::upsert_facts(order_id, &kept, &now.to_string())?;
    let horizon = Instant::from_millis(now.millis().saturating_sub(KEEP_UNCLAIMED_FACTS_MS));
    store::prune_facts(&horizon.to_string(), order_id)?;
    let Some(row) = store::session_for_order(order_id)? else {
        return Ok(());
    };
    let before = row.state()?;
    let decision = apply_kept_facts(Decision::new(before.clone()), order_id)?;
    persist(&row, &before, &decision)
}

/// Applies (and removes) the facts kept for `order_id`, oldest first.
fn apply_kept_facts(decision: Decision, order_id: &str) -> Result<Decision, Error> {
    Ok(store::take_facts(order_id)?
        .into_facts()
        .into_iter()
        .fold(decision, |d, (fact, at)| d.apply(fact, &at)))
}

/// Writes a decision: the session (version-checked, so a concurrent decision
/// on the same session makes this call fail and retry), then its new steps
/// and failures. Nothing is written when nothing changed.
fn persist(row: &SessionRow, before: &Session, decision: &Decision) -> Result<(), Error> {
    if !decision.changes(before) {
        return Ok(());
    }
    let now = clock::now();
    store::update_session(row, &decision.session, &now)?;
    for reached in &decision.steps {
        store::insert_step(&row.id, reached.step, &reached.at, &now)?;
    }
    for failure in &decision.failures {
        store::insert_failure(&row.id, failure, &now)?;
    }
    Ok(())
}

mercato_sdk::export_plugin!(Checkout);
