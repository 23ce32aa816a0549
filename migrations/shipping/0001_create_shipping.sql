-- The shipping context: one shipment per paid order, learned from
-- orders.OrderPaid (never from the orders tables), its history of carrier and
-- host events, and the carriers a shipment can go with. Ids are UUID text,
-- times RFC 3339 UTC text. Append-only and update guards are dialect-specific
-- triggers in 0002.

-- The carriers. `kind` decides how a shipment gets its label: `test` labels at
-- once and deterministically, `manual` waits for the carrier's updates.
-- New shipments go with the one default carrier.
CREATE TABLE carrier_integrations (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('test', 'manual')),
    is_default BIGINT NOT NULL CHECK (is_default IN (0, 1)),
    created_at TEXT NOT NULL
);
-- At most one default: a second `is_default = 1` row is a unique violation.
CREATE UNIQUE INDEX carrier_integrations_one_default ON carrier_integrations (is_default)
    WHERE is_default = 1;

-- The built-in carrier, so a shop ships before anyone configures one.
INSERT INTO carrier_integrations (code, name, kind, is_default, created_at)
VALUES ('test', 'Test carrier', 'test', 1, '2026-12-01T00:00:00.000Z');

-- One shipment per order (order_id UNIQUE: a redelivered OrderPaid creates
-- nothing). Items and address are snapshots taken from the event; the order
-- may change, the parcel's contents and destination must not. Only status,
-- tracking_number, label_id, version and updated_at ever change, each update
-- bumping version (checked by the plugin, enforced by the 0002 guard).
CREATE TABLE shipments (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL UNIQUE,
    buyer_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('PENDING', 'LABEL_CREATED', 'IN_TRANSIT', 'DELIVERED',
        'CANCELLED', 'RETURNED', 'LOST')),
    carrier TEXT NOT NULL REFERENCES carrier_integrations (code),
    tracking_number TEXT,
    label_id TEXT,
    items_json TEXT NOT NULL,
    shipping_address_json TEXT NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    -- A tracking number comes with (or after) the label, never while PENDING.
    CHECK (status <> 'PENDING' OR tracking_number IS NULL),
    CHECK (label_id IS NULL OR tracking_number IS NOT NULL)
);

-- Everything that happened to a shipment, in `seq` order: host-made rows
-- (creation, label, cancellation; no carrier_event_id, always applied) and
-- every carrier update, applied or not (`note` says why not). Append-only.
CREATE TABLE shipment_events (
    id TEXT PRIMARY KEY,
    shipment_id TEXT NOT NULL REFERENCES shipments (id),
    seq BIGINT NOT NULL CHECK (seq >= 1),
    carrier_event_id TEXT,
    status TEXT NOT NULL CHECK (status IN ('PENDING', 'LABEL_CREATED', 'IN_TRANSIT', 'DELIVERED',
        'CANCELLED', 'RETURNED', 'LOST')),
    occurred_at TEXT NOT NULL,
    location TEXT,
    applied BIGINT NOT NULL CHECK (applied IN (0, 1)),
    note TEXT,
    recorded_at TEXT NOT NULL,
    CHECK (carrier_event_id IS NOT NULL OR applied = 1),
    UNIQUE (shipment_id, seq),
    -- A carrier event is recorded once; NULLs (host rows) do not collide.
    UNIQUE (shipment_id, carrier_event_id)
);
