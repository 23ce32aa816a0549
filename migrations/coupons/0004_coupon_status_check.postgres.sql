-- The statuses a coupon can have (see 0003).
ALTER TABLE coupons ADD CONSTRAINT coupons_status_known
    CHECK (status IN ('ACTIVE', 'DISABLED', 'ARCHIVED'));
