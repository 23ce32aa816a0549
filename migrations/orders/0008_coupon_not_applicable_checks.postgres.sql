-- The allowed values of 0007's new columns: an outcome is one of two, and a
-- coupon rejection is recorded whole (code, message and outcome) or not at all.
ALTER TABLE orders ADD CONSTRAINT orders_coupon_rejection_check CHECK (
    (coupon_rejection_code IS NULL AND coupon_rejection_rule_code IS NULL
        AND coupon_rejection_message IS NULL AND coupon_rejection_outcome IS NULL)
    OR (coupon_rejection_code IS NOT NULL AND coupon_rejection_message IS NOT NULL
        AND coupon_rejection_outcome IN ('order_rejected', 'proceeded_without'))
);
