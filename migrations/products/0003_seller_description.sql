-- Sellers and descriptions. Expand only: every product published before this
-- migration belongs to seller `default` and has no description, so rows
-- written earlier stay valid and the running version keeps working.
-- The columns' rules are checked by 0004 (a CHECK on ADD COLUMN makes SQLite
-- run a PRAGMA, which the migration sandbox refuses).
ALTER TABLE products ADD COLUMN seller_id TEXT NOT NULL DEFAULT 'default';
-- NULL when the seller gave none.
ALTER TABLE products ADD COLUMN description TEXT;
CREATE INDEX products_seller ON products (seller_id);
