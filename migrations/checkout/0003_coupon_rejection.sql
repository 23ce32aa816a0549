-- Why the order's coupon did not apply, as orders told it in OrderConfirmed
-- (the order went on without it) or OrderRejected: {code, rule_code, message,
-- outcome} as JSON, shown on the session. NULL while the coupon applied or
-- there is none. Process state like the rest of checkout.
ALTER TABLE checkout_sessions ADD COLUMN coupon_rejection_json TEXT;
