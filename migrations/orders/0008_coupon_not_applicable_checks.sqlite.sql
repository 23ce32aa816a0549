-- The allowed values of 0007's new columns: an outcome is one of two, and a
-- coupon rejection is recorded whole (code, message and outcome) or not at
-- all. SQLite cannot add a CHECK to an existing table without rebuilding it,
-- so triggers refuse other values.
CREATE TRIGGER orders_coupon_rejection_insert BEFORE INSERT ON orders
WHEN NOT (
    (NEW.coupon_rejection_code IS NULL AND NEW.coupon_rejection_rule_code IS NULL
        AND NEW.coupon_rejection_message IS NULL AND NEW.coupon_rejection_outcome IS NULL)
    OR (NEW.coupon_rejection_code IS NOT NULL AND NEW.coupon_rejection_message IS NOT NULL
        AND NEW.coupon_rejection_outcome IN ('order_rejected', 'proceeded_without'))
)
BEGIN
    SELECT RAISE(ABORT, 'orders.coupon_rejection_* must be all NULL, or a code, a message and an outcome of order_rejected or proceeded_without');
END;

CREATE TRIGGER orders_coupon_rejection_update BEFORE UPDATE OF coupon_rejection_code,
    coupon_rejection_rule_code, coupon_rejection_message, coupon_rejection_outcome ON orders
WHEN NOT (
    (NEW.coupon_rejection_code IS NULL AND NEW.coupon_rejection_rule_code IS NULL
        AND NEW.coupon_rejection_message IS NULL AND NEW.coupon_rejection_outcome IS NULL)
    OR (NEW.coupon_rejection_code IS NOT NULL AND NEW.coupon_rejection_message IS NOT NULL
        AND NEW.coupon_rejection_outcome IN ('order_rejected', 'proceeded_without'))
)
BEGIN
    SELECT RAISE(ABORT, 'orders.coupon_rejection_* must be all NULL, or a code, a message and an outcome of order_rejected or proceeded_without');
END;
