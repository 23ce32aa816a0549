-- The statuses a coupon can have (see 0003). SQLite cannot add a CHECK to an
-- existing table, so triggers refuse any other value.
CREATE TRIGGER coupons_status_known_insert BEFORE INSERT ON coupons
WHEN NEW.status NOT IN ('ACTIVE', 'DISABLED', 'ARCHIVED')
BEGIN
    SELECT RAISE(ABORT, 'coupons.status must be ACTIVE, DISABLED or ARCHIVED');
END;
CREATE TRIGGER coupons_status_known_update BEFORE UPDATE OF status ON coupons
WHEN NEW.status NOT IN ('ACTIVE', 'DISABLED', 'ARCHIVED')
BEGIN
    SELECT RAISE(ABORT, 'coupons.status must be ACTIVE, DISABLED or ARCHIVED');
END;
