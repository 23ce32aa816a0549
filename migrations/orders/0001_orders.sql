-- Orders: the system of record. Prices are snapshots, status history is
-- append-only, and an order row is only ever updated with its version checked.
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    buyer_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('PENDING', 'AWAITING_PAYMENT', 'PAID', 'PARTIALLY_REFUNDED', 'REFUNDED', 'REJECTED', 'CANCELLED')),
    -- Where each side of the saga stands; the status follows from them.
    stock_status TEXT NOT NULL CHECK (stock_status IN ('PENDING', 'RESERVED', 'REJECTED', 'EXPIRED', 'COMMIT_FAILED')),
    coupon_status TEXT NOT NULL CHECK (coupon_status IN ('NONE', 'PENDING', 'APPLIED', 'REJECTED')),
    coupon_code TEXT,
    subtotal_minor BIGINT NOT NULL CHECK (subtotal_minor >= 0),
    discount_minor BIGINT NOT NULL CHECK (discount_minor >= 0 AND discount_minor <= subtotal_minor),
    total_minor BIGINT NOT NULL CHECK (total_minor = subtotal_minor - discount_minor),
    payment_intent_id TEXT,
    captured_minor BIGINT NOT NULL DEFAULT 0 CHECK (captured_minor >= 0),
    refunded_minor BIGINT NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0 AND refunded_minor <= captured_minor),
    version BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX orders_buyer ON orders (buyer_id, created_at);

CREATE TABLE order_items (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (id),
    line_no BIGINT NOT NULL,
    sku TEXT NOT NULL,
    product_id TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    -- The price the buyer was offered; the catalog may change, the order must not.
    unit_price_minor BIGINT NOT NULL CHECK (unit_price_minor >= 0),
    line_total_minor BIGINT NOT NULL CHECK (line_total_minor = quantity * unit_price_minor),
    product_snapshot_json TEXT NOT NULL,
    UNIQUE (order_id, line_no)
);

CREATE TABLE order_status_history (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (id),
    seq BIGINT NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (order_id, seq)
);

-- References to other contexts' records, stored as values (no foreign keys).
CREATE TABLE order_payments (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (id),
    intent_id TEXT NOT NULL,
    event TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE order_shipments (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (id),
    shipment_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE order_refunds (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (id),
    refund_id TEXT NOT NULL UNIQUE,
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    created_at TEXT NOT NULL
);

-- Local projection of the catalog, fed by products events: the buyer never sets a price.
CREATE TABLE catalog_prices (
    sku TEXT PRIMARY KEY,
    product_id TEXT NOT NULL,
    name TEXT NOT NULL,
    price_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    version BIGINT NOT NULL,
    attributes_json TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
