-- The delivery log is evidence: attempts are never rewritten, and endpoints
-- and deliveries are disabled or finished, never deleted.
CREATE TRIGGER webhook_attempts_no_update BEFORE UPDATE ON webhook_attempts
BEGIN SELECT RAISE(ABORT, 'webhook_attempts is append-only'); END;
CREATE TRIGGER webhook_attempts_no_delete BEFORE DELETE ON webhook_attempts
BEGIN SELECT RAISE(ABORT, 'webhook_attempts is append-only'); END;

CREATE TRIGGER webhook_deliveries_no_delete BEFORE DELETE ON webhook_deliveries
BEGIN SELECT RAISE(ABORT, 'webhook_deliveries are never deleted'); END;

CREATE TRIGGER webhook_endpoints_no_delete BEFORE DELETE ON webhook_endpoints
BEGIN SELECT RAISE(ABORT, 'webhook_endpoints are disabled, never deleted'); END;
