-- Shipping: where an order ships to, which checkout session placed it, and how
-- far its shipments have got. Expand only: every new column is nullable or has
-- a default, so rows written before this migration stay valid.

-- The address as the buyer gave it (validated JSON), a snapshot like the
-- prices: shipping gets it in OrderPaid and it never changes afterwards.
-- NULL only for orders placed before addresses were required.
ALTER TABLE orders ADD COLUMN shipping_address_json TEXT;

-- The checkout session an order was placed for; NULL for POST /orders. Unique,
-- so a session gets one order however often its submission is delivered
-- (NULLs never collide, on SQLite as on PostgreSQL).
ALTER TABLE orders ADD COLUMN checkout_session_id TEXT;
CREATE UNIQUE INDEX orders_checkout_session ON orders (checkout_session_id);

-- Derived from the order's shipments (order_shipments) and kept on the order,
-- updated with its version checked like every other column of orders.
-- Its allowed values are checked by 0004 (a CHECK on ADD COLUMN makes SQLite
-- run a PRAGMA, which the migration sandbox refuses).
ALTER TABLE orders ADD COLUMN fulfillment_status TEXT NOT NULL DEFAULT 'UNFULFILLED';

-- order_shipments (0001) held only the reference to shipping's record; the
-- shipping events now also tell each shipment's status, carrier and tracking
-- number. A row is updated in place, its status only moving forward.
ALTER TABLE order_shipments ADD COLUMN status TEXT NOT NULL DEFAULT 'PENDING';
ALTER TABLE order_shipments ADD COLUMN carrier TEXT;
ALTER TABLE order_shipments ADD COLUMN tracking_number TEXT;
-- When the shipment last changed (shipping's time); NULL only on rows from
-- before this migration, which show created_at instead.
ALTER TABLE order_shipments ADD COLUMN updated_at TEXT;
-- One row per shipment: each shipping event finds the row it updates.
CREATE UNIQUE INDEX order_shipments_shipment ON order_shipments (shipment_id);
CREATE INDEX order_shipments_order ON order_shipments (order_id, created_at);
