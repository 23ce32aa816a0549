-- mercato:contract
-- Coupons of kind RULE: the discount comes from a coupon-rule component named
-- by `rule`, with the coupon's JSON `config`. SQLite cannot alter a CHECK, so
-- coupon_rules is rebuilt with every row and column kept (plus two new
-- columns); that is why this file carries the contract marker although it
-- removes nothing a running version reads.
CREATE TABLE coupon_rules_next (
    code TEXT PRIMARY KEY REFERENCES coupons (code),
    kind TEXT NOT NULL CHECK (kind IN ('PERCENT', 'FIXED', 'RULE')),
    percent BIGINT NULL,
    amount_minor BIGINT NULL,
    currency TEXT NOT NULL,
    min_subtotal_minor BIGINT NOT NULL DEFAULT 0,
    valid_from TEXT NULL,
    valid_until TEXT NULL,
    per_customer_limit BIGINT NULL,
    rule TEXT NULL,
    config TEXT NULL,
    CHECK (
        (kind = 'PERCENT' AND percent BETWEEN 1 AND 100 AND amount_minor IS NULL AND rule IS NULL AND config IS NULL)
        OR (kind = 'FIXED' AND amount_minor > 0 AND percent IS NULL AND rule IS NULL AND config IS NULL)
        OR (kind = 'RULE' AND rule IS NOT NULL AND config IS NOT NULL AND percent IS NULL AND amount_minor IS NULL)
    ),
    CHECK (min_subtotal_minor >= 0),
    CHECK (per_customer_limit IS NULL OR per_customer_limit >= 1)
);
INSERT INTO coupon_rules_next (code, kind, percent, amount_minor, currency, min_subtotal_minor,
    valid_from, valid_until, per_customer_limit)
SELECT code, kind, percent, amount_minor, currency, min_subtotal_minor,
    valid_from, valid_until, per_customer_limit
FROM coupon_rules;
DROP TABLE coupon_rules;
ALTER TABLE coupon_rules_next RENAME TO coupon_rules;

-- Which rule version priced a redemption, and the reason it gave the buyer.
ALTER TABLE coupon_redemptions ADD COLUMN rule TEXT NULL;
ALTER TABLE coupon_redemptions ADD COLUMN rule_version TEXT NULL;
ALTER TABLE coupon_redemptions ADD COLUMN reason TEXT NULL;
