-- Financial facts are append-only: corrections are new rows (a refund, a
-- reversing entry), never edits. Same guards as the .postgres.sql variant.
CREATE TRIGGER payment_transactions_no_update BEFORE UPDATE ON payment_transactions
BEGIN SELECT RAISE(ABORT, 'payment_transactions is append-only'); END;
CREATE TRIGGER payment_transactions_no_delete BEFORE DELETE ON payment_transactions
BEGIN SELECT RAISE(ABORT, 'payment_transactions is append-only'); END;

CREATE TRIGGER refunds_no_update BEFORE UPDATE ON refunds
BEGIN SELECT RAISE(ABORT, 'refunds is append-only'); END;
CREATE TRIGGER refunds_no_delete BEFORE DELETE ON refunds
BEGIN SELECT RAISE(ABORT, 'refunds is append-only'); END;

CREATE TRIGGER ledger_transactions_no_update BEFORE UPDATE ON ledger_transactions
BEGIN SELECT RAISE(ABORT, 'ledger_transactions is append-only'); END;
CREATE TRIGGER ledger_transactions_no_delete BEFORE DELETE ON ledger_transactions
BEGIN SELECT RAISE(ABORT, 'ledger_transactions is append-only'); END;

CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END;

-- Intents are process state, but never deleted, and an update may only move
-- status out of REQUIRES_PAYMENT_METHOD, grow captured/refunded amounts and
-- bump version by one; identity, amount and currency are fixed at creation.
CREATE TRIGGER payment_intents_no_delete BEFORE DELETE ON payment_intents
BEGIN SELECT RAISE(ABORT, 'payment_intents are never deleted'); END;
CREATE TRIGGER payment_intents_guard_update BEFORE UPDATE ON payment_intents
WHEN NEW.id <> OLD.id
    OR NEW.order_id <> OLD.order_id
    OR NEW.buyer_id <> OLD.buyer_id
    OR NEW.amount_minor <> OLD.amount_minor
    OR NEW.currency <> OLD.currency
    OR NEW.created_at <> OLD.created_at
    OR NEW.captured_minor < OLD.captured_minor
    OR NEW.refunded_minor < OLD.refunded_minor
    OR NEW.version <> OLD.version + 1
    OR (OLD.status <> 'REQUIRES_PAYMENT_METHOD' AND NEW.status <> OLD.status)
BEGIN SELECT RAISE(ABORT, 'payment_intents update breaks its invariants'); END;
