-- The delivery log is evidence: attempts are never rewritten, and endpoints
-- and deliveries are disabled or finished, never deleted. Same guards as the
-- .sqlite.sql variant.
CREATE FUNCTION notifications_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;

CREATE FUNCTION notifications_never_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME;
END;
$$;

CREATE TRIGGER webhook_attempts_append_only BEFORE UPDATE OR DELETE ON webhook_attempts
    FOR EACH ROW EXECUTE FUNCTION notifications_append_only();
CREATE TRIGGER webhook_deliveries_no_delete BEFORE DELETE ON webhook_deliveries
    FOR EACH ROW EXECUTE FUNCTION notifications_never_deleted();
CREATE TRIGGER webhook_endpoints_no_delete BEFORE DELETE ON webhook_endpoints
    FOR EACH ROW EXECUTE FUNCTION notifications_never_deleted();
