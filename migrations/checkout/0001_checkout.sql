-- The checkout context: process state, not business truth. Orders, payments,
-- inventory and shipping hold the facts; these tables only say where a
-- buyer's checkout stands, so the whole database can be wiped (and the
-- migrations re-run) without losing anything another context needs.
-- Other contexts' ids (order_id, payment_intent_id, shipment_id) are plain
-- values; times are RFC 3339 UTC text; money is integer minor units.

-- One row per checkout session. Updated only with a version check.
CREATE TABLE checkout_sessions (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL
        CHECK (status IN ('OPEN', 'SUBMITTED', 'COMPLETED', 'FAILED', 'EXPIRED')),
    buyer_id TEXT NOT NULL,
    currency TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    -- [{sku, quantity}] as submitted; prices are orders' business.
    items_json TEXT NOT NULL,
    coupon_code TEXT NULL,
    shipping_address_json TEXT NOT NULL,
    -- Learned from orders.OrderPlaced; an order belongs to at most one session.
    order_id TEXT NULL UNIQUE,
    payment_intent_id TEXT NULL,
    shipment_id TEXT NULL,
    -- The order's final total from orders.OrderConfirmed, shown to the buyer.
    total_minor BIGINT NULL CHECK (total_minor IS NULL OR total_minor >= 0),
    version BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Saga progress: each step at most once per session, at the time of the
-- event that proved it.
CREATE TABLE checkout_steps (
    session_id TEXT NOT NULL REFERENCES checkout_sessions (id),
    step TEXT NOT NULL CHECK (step IN ('SUBMITTED', 'ORDER_PLACED', 'STOCK_RESERVED',
        'AWAITING_PAYMENT', 'PAID', 'COMPLETED')),
    at TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (session_id, step)
);

-- Why a session ended without completing.
CREATE TABLE checkout_failures (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES checkout_sessions (id),
    reason TEXT NOT NULL CHECK (reason IN ('invalid', 'stock', 'coupon', 'payment_declined',
        'expired', 'cancelled')),
    detail TEXT NOT NULL,
    at TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX checkout_failures_by_session ON checkout_failures (session_id, at);

-- Facts about an order that arrived before orders.OrderPlaced told checkout
-- which session the order belongs to (events from different sources have no
-- order between them). One row per order: every handler touching an order
-- writes this row first, so on PostgreSQL a fact and the link of its order
-- serialise on the row lock instead of missing each other. The row is deleted
-- once its facts are applied; facts of orders no session claims are pruned
-- after a day (by created_at).
CREATE TABLE checkout_order_facts (
    order_id TEXT PRIMARY KEY,
    stock_reserved_at TEXT NULL,
    payment_intent_id TEXT NULL,
    payment_intent_at TEXT NULL,
    shipment_id TEXT NULL,
    shipment_at TEXT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX checkout_order_facts_by_age ON checkout_order_facts (created_at);
