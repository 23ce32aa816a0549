-- mercato:contract
-- Coupons of kind RULE: the discount comes from a coupon-rule component named
-- by `rule`, with the coupon's JSON `config`. Only CHECK constraints are
-- replaced (by wider ones) and columns added; that is why this file carries
-- the contract marker although it removes nothing a running version reads.
ALTER TABLE coupon_rules ADD COLUMN rule TEXT NULL;
ALTER TABLE coupon_rules ADD COLUMN config TEXT NULL;
ALTER TABLE coupon_rules DROP CONSTRAINT coupon_rules_kind_check;
ALTER TABLE coupon_rules DROP CONSTRAINT coupon_rules_check;
ALTER TABLE coupon_rules ADD CONSTRAINT coupon_rules_kind_check
    CHECK (kind IN ('PERCENT', 'FIXED', 'RULE'));
ALTER TABLE coupon_rules ADD CONSTRAINT coupon_rules_check CHECK (
    (kind = 'PERCENT' AND percent BETWEEN 1 AND 100 AND amount_minor IS NULL AND rule IS NULL AND config IS NULL)
    OR (kind = 'FIXED' AND amount_minor > 0 AND percent IS NULL AND rule IS NULL AND config IS NULL)
    OR (kind = 'RULE' AND rule IS NOT NULL AND config IS NOT NULL AND percent IS NULL AND amount_minor IS NULL)
);

-- Which rule version priced a redemption, and the reason it gave the buyer.
ALTER TABLE coupon_redemptions ADD COLUMN rule TEXT NULL;
ALTER TABLE coupon_redemptions ADD COLUMN rule_version TEXT NULL;
ALTER TABLE coupon_redemptions ADD COLUMN reason TEXT NULL;
