-- The rules of 0003's columns, as the catalog validates them: a seller id is
-- 1-64 of [a-z0-9_-], a description at most 2000 characters. SQLite cannot add
-- a CHECK to an existing table without rebuilding it, so triggers refuse
-- other values (length() counts characters, as char_length() does).
CREATE TRIGGER products_seller_description_insert BEFORE INSERT ON products
WHEN length(NEW.seller_id) NOT BETWEEN 1 AND 64
    OR NEW.seller_id GLOB '*[^a-z0-9_-]*'
    OR length(NEW.description) > 2000
BEGIN
    SELECT RAISE(ABORT, 'products.seller_id must be 1-64 of [a-z0-9_-] and description at most 2000 characters');
END;

CREATE TRIGGER products_seller_description_update BEFORE UPDATE OF seller_id, description ON products
WHEN length(NEW.seller_id) NOT BETWEEN 1 AND 64
    OR NEW.seller_id GLOB '*[^a-z0-9_-]*'
    OR length(NEW.description) > 2000
BEGIN
    SELECT RAISE(ABORT, 'products.seller_id must be 1-64 of [a-z0-9_-] and description at most 2000 characters');
END;
