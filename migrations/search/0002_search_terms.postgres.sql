-- The portable full-text index: the lower-cased words of each product's name,
-- description and attribute values. A query word matches a term it is a
-- prefix of, found by the range `term >= $w AND term < $next` ($next: $w with
-- its last character's code point plus one). The range needs terms ordered
-- by code point whatever the database's locale: COLLATE "C" compares UTF-8
-- bytes, which is that order, as SQLite's default BINARY collation does.
-- `weight` ranks the field: name 3, attribute 2, description 1.
CREATE TABLE product_search_terms (
    product_id TEXT NOT NULL REFERENCES product_search_view (product_id),
    term TEXT COLLATE "C" NOT NULL,
    field TEXT NOT NULL CHECK (field IN ('name', 'description', 'attribute')),
    weight BIGINT NOT NULL,
    PRIMARY KEY (product_id, field, term)
);
CREATE INDEX product_search_terms_term ON product_search_terms (term, product_id);
