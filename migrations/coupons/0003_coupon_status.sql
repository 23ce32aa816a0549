-- A coupon's life after creation (plugins/coupons/src/lifecycle.rs): ACTIVE
-- (redeemable), DISABLED (not until enabled again), ARCHIVED (never again;
-- kept for its redemptions). Existing coupons are ACTIVE. The allowed values
-- are checked by 0004 (SQLite cannot add a CHECK to an existing table).
-- From this version on, `POST /coupons/{code}` also updates coupon_rules'
-- valid_from, valid_until and per_customer_limit (and coupons.usage_limit);
-- what a coupon grants stays as created.
ALTER TABLE coupons ADD COLUMN status TEXT NOT NULL DEFAULT 'ACTIVE';
CREATE INDEX coupons_by_status ON coupons (status, created_at, code);
