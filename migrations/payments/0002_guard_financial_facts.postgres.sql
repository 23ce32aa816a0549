-- Financial facts are append-only: corrections are new rows (a refund, a
-- reversing entry), never edits. Same guards as the .sqlite.sql variant.
CREATE FUNCTION payments_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;

CREATE TRIGGER payment_transactions_append_only BEFORE UPDATE OR DELETE ON payment_transactions
    FOR EACH ROW EXECUTE FUNCTION payments_append_only();
CREATE TRIGGER refunds_append_only BEFORE UPDATE OR DELETE ON refunds
    FOR EACH ROW EXECUTE FUNCTION payments_append_only();
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION payments_append_only();
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION payments_append_only();

-- Intents are process state, but never deleted, and an update may only move
-- status out of REQUIRES_PAYMENT_METHOD, grow captured/refunded amounts and
-- bump version by one; identity, amount and currency are fixed at creation.
CREATE FUNCTION payments_guard_intent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'payment_intents are never deleted';
    END IF;
    IF NEW.id <> OLD.id
        OR NEW.order_id <> OLD.order_id
        OR NEW.buyer_id <> OLD.buyer_id
        OR NEW.amount_minor <> OLD.amount_minor
        OR NEW.currency <> OLD.currency
        OR NEW.created_at <> OLD.created_at
        OR NEW.captured_minor < OLD.captured_minor
        OR NEW.refunded_minor < OLD.refunded_minor
        OR NEW.version <> OLD.version + 1
        OR (OLD.status <> 'REQUIRES_PAYMENT_METHOD' AND NEW.status <> OLD.status)
    THEN
        RAISE EXCEPTION 'payment_intents update breaks its invariants';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER payment_intents_guard BEFORE UPDATE OR DELETE ON payment_intents
    FOR EACH ROW EXECUTE FUNCTION payments_guard_intent();
