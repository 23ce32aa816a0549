-- The coupon aggregate. `used` is the recorded number of ACTIVE redemptions,
-- moved only by conditional updates next to the redemption rows (the seed:
-- usage is recorded, not recalculated). The CHECK makes over-redemption
-- impossible even if a handler were wrong.
CREATE TABLE coupons (
    code TEXT PRIMARY KEY,
    used BIGINT NOT NULL DEFAULT 0,
    usage_limit BIGINT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CHECK (used >= 0),
    CHECK (usage_limit IS NULL OR usage_limit >= 1),
    CHECK (usage_limit IS NULL OR used <= usage_limit)
);

-- What a coupon grants and when; immutable once created. Times are RFC 3339
-- UTC with milliseconds, compared in the plugin (never by SQL collation).
CREATE TABLE coupon_rules (
    code TEXT PRIMARY KEY REFERENCES coupons (code),
    kind TEXT NOT NULL CHECK (kind IN ('PERCENT', 'FIXED')),
    percent BIGINT NULL,
    amount_minor BIGINT NULL,
    currency TEXT NOT NULL,
    min_subtotal_minor BIGINT NOT NULL DEFAULT 0,
    valid_from TEXT NULL,
    valid_until TEXT NULL,
    per_customer_limit BIGINT NULL,
    CHECK (
        (kind = 'PERCENT' AND percent BETWEEN 1 AND 100 AND amount_minor IS NULL)
        OR (kind = 'FIXED' AND amount_minor > 0 AND percent IS NULL)
    ),
    CHECK (min_subtotal_minor >= 0),
    CHECK (per_customer_limit IS NULL OR per_customer_limit >= 1)
);

-- One row per order that redeemed a coupon (order_id is unique: an order
-- redeems at most once). Compensation flips ACTIVE to REVERTED; rows are never
-- deleted, so the history of usage stays recorded.
CREATE TABLE coupon_redemptions (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL REFERENCES coupons (code),
    order_id TEXT NOT NULL UNIQUE,
    buyer_id TEXT NOT NULL,
    discount_minor BIGINT NOT NULL CHECK (discount_minor >= 0),
    currency TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ACTIVE', 'REVERTED')),
    created_at TEXT NOT NULL,
    reverted_at TEXT NULL,
    CHECK (
        (status = 'ACTIVE' AND reverted_at IS NULL)
        OR (status = 'REVERTED' AND reverted_at IS NOT NULL)
    )
);

-- The per-customer limit counts a buyer's ACTIVE redemptions of a code.
CREATE INDEX coupon_redemptions_by_buyer ON coupon_redemptions (code, buyer_id, status);
