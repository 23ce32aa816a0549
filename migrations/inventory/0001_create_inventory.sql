-- Stock per SKU. `available` (on_hand - reserved - committed) is derived, never
-- stored, so it cannot drift from its parts; the CHECKs make promising more
-- than is on hand unrepresentable, whatever the code above them does.
CREATE TABLE stock_items (
    sku TEXT PRIMARY KEY,
    on_hand BIGINT NOT NULL,
    reserved BIGINT NOT NULL DEFAULT 0,
    committed BIGINT NOT NULL DEFAULT 0,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CHECK (reserved >= 0),
    CHECK (committed >= 0),
    CHECK (on_hand - reserved - committed >= 0)
);

-- One row per order line (lines of the same SKU are summed). A reservation
-- leaves RESERVED exactly once, for COMMITTED (paid) or RELEASED (called off
-- or expired).
CREATE TABLE stock_reservations (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    sku TEXT NOT NULL REFERENCES stock_items (sku),
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    status TEXT NOT NULL CHECK (status IN ('RESERVED', 'COMMITTED', 'RELEASED')),
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (order_id, sku)
);

-- The ledger of every change to a stock item; append-only (see 0002).
-- ADJUSTED carries the signed delta, the other kinds a count; movements caused
-- by an order name it, the others do not.
CREATE TABLE stock_movements (
    id TEXT PRIMARY KEY,
    sku TEXT NOT NULL REFERENCES stock_items (sku),
    kind TEXT NOT NULL CHECK (kind IN ('RECEIVED', 'ADJUSTED', 'RESERVED', 'RELEASED', 'COMMITTED')),
    quantity BIGINT NOT NULL,
    order_id TEXT,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    CHECK (
        (kind = 'RECEIVED' AND quantity >= 0)
        OR (kind = 'ADJUSTED' AND quantity <> 0)
        OR (kind IN ('RESERVED', 'RELEASED', 'COMMITTED') AND quantity > 0)
    ),
    CHECK ((order_id IS NULL) = (kind IN ('RECEIVED', 'ADJUSTED')))
);

CREATE INDEX stock_movements_by_sku ON stock_movements (sku, created_at);
CREATE INDEX stock_movements_by_order ON stock_movements (order_id);

-- Tunables; an absent key means the built-in default.
CREATE TABLE inventory_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
