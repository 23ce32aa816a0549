-- The rules of 0003's columns, as the catalog validates them: a seller id is
-- 1-64 of [a-z0-9_-], a description at most 2000 characters.
ALTER TABLE products ADD CONSTRAINT products_seller_id_check
    CHECK (seller_id ~ '^[a-z0-9_-]{1,64}$');
ALTER TABLE products ADD CONSTRAINT products_description_check
    CHECK (description IS NULL OR char_length(description) <= 2000);
