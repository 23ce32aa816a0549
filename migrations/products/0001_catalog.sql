-- The catalog: read-heavy and versioned. A product's price is never overwritten:
-- each change appends a product_pricing row with the next version.
CREATE TABLE products (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    attributes_json TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE product_variants (
    id TEXT PRIMARY KEY,
    product_id TEXT NOT NULL REFERENCES products (id),
    sku TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE product_pricing (
    id TEXT PRIMARY KEY,
    product_id TEXT NOT NULL REFERENCES products (id),
    version BIGINT NOT NULL,
    price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
    currency TEXT NOT NULL,
    effective_at TEXT NOT NULL,
    UNIQUE (product_id, version)
);

CREATE TABLE product_publications (
    id TEXT PRIMARY KEY,
    product_id TEXT NOT NULL REFERENCES products (id),
    version BIGINT NOT NULL,
    published_at TEXT NOT NULL
);

CREATE INDEX product_variants_product ON product_variants (product_id);
