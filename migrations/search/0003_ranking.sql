-- Ranking and paging run in the database, so a search reads one page and
-- its facet counts, never every match.
--
-- name_key: the name's words, lower-cased and space-separated (the plugin's
-- `text::name_key`); a query whose words joined the same way equal it names
-- the product exactly and ranks first. Rows indexed before this migration
-- have none and rank by their name's words (one tier lower for an exact
-- match) until the view is rebuilt (`mercato rebuild search`).
ALTER TABLE product_search_view ADD COLUMN name_key TEXT;

-- The word index also covers the field, so a query word's range scan finds
-- where each product has it without visiting the table.
CREATE INDEX product_search_terms_match ON product_search_terms (term, product_id, field);
DROP INDEX product_search_terms_term;
