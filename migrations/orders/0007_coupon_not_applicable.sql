-- An order whose coupon does not apply: coupons' reason, the rule's code and
-- the message for the buyer stay on the order, with what the order did about
-- it (REJECTED, or on at full price). Expand only: the new columns are NULL
-- on every order whose coupon applied or that has none. Their allowed values
-- are checked by 0008 (a CHECK on ADD COLUMN makes SQLite run a PRAGMA, which
-- the migration sandbox refuses).
ALTER TABLE orders ADD COLUMN coupon_rejection_code TEXT;
ALTER TABLE orders ADD COLUMN coupon_rejection_rule_code TEXT;
ALTER TABLE orders ADD COLUMN coupon_rejection_message TEXT;
ALTER TABLE orders ADD COLUMN coupon_rejection_outcome TEXT;

-- The merchant's settings (PUT /orders/settings), one row per setting ever set.
CREATE TABLE order_settings (
    key TEXT PRIMARY KEY CHECK (key IN ('on_coupon_not_applicable')),
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CHECK (key <> 'on_coupon_not_applicable' OR value IN ('reject', 'proceed_without'))
);
