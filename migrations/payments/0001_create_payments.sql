-- The payments context: process state (payment_intents) plus append-only
-- financial facts (payment_transactions, refunds, ledger_*). Money is integer
-- minor units with an ISO 4217 code; ids are UUID text; times RFC 3339 text.
-- Append-only and update guards are dialect-specific triggers in 0002.

-- One intent per order. The only mutable table: status moves once out of
-- REQUIRES_PAYMENT_METHOD and refunded_minor grows, each update bumping version.
CREATE TABLE payment_intents (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL UNIQUE,
    buyer_id TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor >= 0),
    currency TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    status TEXT NOT NULL
        CHECK (status IN ('REQUIRES_PAYMENT_METHOD', 'SUCCEEDED', 'FAILED', 'CANCELED')),
    failure_reason TEXT NULL,
    captured_minor BIGINT NOT NULL DEFAULT 0,
    refunded_minor BIGINT NOT NULL DEFAULT 0,
    version BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CHECK (captured_minor >= 0 AND captured_minor <= amount_minor),
    CHECK (refunded_minor >= 0 AND refunded_minor <= captured_minor),
    -- Money is captured in full, and only by a successful confirm.
    CHECK ((status = 'SUCCEEDED' AND captured_minor = amount_minor)
        OR (status <> 'SUCCEEDED' AND captured_minor = 0)),
    -- A failure always says why; nothing else carries a reason.
    CHECK ((status = 'FAILED' AND failure_reason IS NOT NULL)
        OR (status <> 'FAILED' AND failure_reason IS NULL))
);

-- Every attempt and money movement with the provider, as it happened.
-- AUTHORIZATION/CAPTURE/FAILURE carry the intent's amount (0 for a free
-- order); a REFUND always moves money. FAILURE's detail is the reason.
CREATE TABLE payment_transactions (
    id TEXT PRIMARY KEY,
    intent_id TEXT NOT NULL REFERENCES payment_intents (id),
    kind TEXT NOT NULL CHECK (kind IN ('AUTHORIZATION', 'CAPTURE', 'FAILURE', 'REFUND')),
    amount_minor BIGINT NOT NULL CHECK (amount_minor >= 0),
    currency TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    payment_method TEXT NULL,
    detail TEXT NULL,
    created_at TEXT NOT NULL,
    CHECK (kind <> 'REFUND' OR amount_minor > 0)
);
CREATE INDEX payment_transactions_intent ON payment_transactions (intent_id);

-- One row per refund, tied to its REFUND payment transaction.
CREATE TABLE refunds (
    id TEXT PRIMARY KEY,
    intent_id TEXT NOT NULL REFERENCES payment_intents (id),
    payment_transaction_id TEXT NOT NULL UNIQUE REFERENCES payment_transactions (id),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    currency TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX refunds_intent ON refunds (intent_id);

-- Double-entry ledger. One ledger transaction per money-moving payment
-- transaction (UNIQUE: a movement is never booked twice); its entries balance.
--   CAPTURE: debit provider_receivable, credit merchant_revenue
--   REFUND:  debit merchant_refunds,    credit provider_receivable
CREATE TABLE ledger_transactions (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('CAPTURE', 'REFUND')),
    intent_id TEXT NOT NULL REFERENCES payment_intents (id),
    payment_transaction_id TEXT NOT NULL UNIQUE REFERENCES payment_transactions (id),
    created_at TEXT NOT NULL
);
CREATE INDEX ledger_transactions_intent ON ledger_transactions (intent_id);

CREATE TABLE ledger_entries (
    id TEXT PRIMARY KEY,
    ledger_transaction_id TEXT NOT NULL REFERENCES ledger_transactions (id),
    account TEXT NOT NULL
        CHECK (account IN ('provider_receivable', 'merchant_revenue', 'merchant_refunds')),
    currency TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    debit_minor BIGINT NOT NULL,
    credit_minor BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    CHECK ((debit_minor > 0 AND credit_minor = 0) OR (debit_minor = 0 AND credit_minor > 0))
);
CREATE INDEX ledger_entries_transaction ON ledger_entries (ledger_transaction_id);
