-- The search read model: three views built only from other contexts' events
-- (WRITE -> events -> READ). Fully denormalized, rebuildable by replay, no
-- business logic: rows copy and sum what the events say. Integers stand for
-- booleans (0/1) and times are RFC 3339 UTC text in the host clock's format,
-- so they compare as text on both backends.

-- ---- product_search_view: the catalog as buyers search it ----------------

-- One row per published product (products.ProductPublished), its price kept
-- at the newest version seen (ProductPriceChanged), its stock copied from the
-- latest inventory.StockLevelChanged of its SKU. on_hand / available are NULL
-- until inventory has told (in_stock is then 0).
CREATE TABLE product_search_view (
    product_id TEXT PRIMARY KEY,
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    attributes TEXT NOT NULL,
    seller_id TEXT NOT NULL,
    price_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    price_version BIGINT NOT NULL,
    on_hand BIGINT,
    available BIGINT,
    in_stock BIGINT NOT NULL DEFAULT 0 CHECK (in_stock IN (0, 1)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX product_search_view_sku ON product_search_view (sku);
CREATE INDEX product_search_view_newest ON product_search_view (created_at, product_id);
CREATE INDEX product_search_view_price ON product_search_view (price_minor, product_id);
CREATE INDEX product_search_view_seller ON product_search_view (seller_id);

-- Stock per SKU as inventory last told it, kept apart from the products: a
-- StockLevelChanged may arrive before the ProductPublished of its SKU (events
-- from different sources have no order between them). `sequence` is the
-- event's position in inventory's outbox: only a newer one replaces a row.
CREATE TABLE search_stock_levels (
    sku TEXT PRIMARY KEY,
    on_hand BIGINT NOT NULL,
    available BIGINT NOT NULL,
    reserved BIGINT NOT NULL,
    committed BIGINT NOT NULL,
    sequence BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Attribute values as facets and filters (attr.<name>=<value>): one row per
-- scalar value, or per element of an array of scalars, as text.
CREATE TABLE product_search_attributes (
    product_id TEXT NOT NULL REFERENCES product_search_view (product_id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (product_id, name, value)
);
CREATE INDEX product_search_attributes_value ON product_search_attributes (name, value);

-- (product_search_terms, the word index, is 0002: its collation differs.)

-- ---- order_list_view: one row per order -----------------------------------

-- Written by orders' events: OrderPlaced inserts it (PENDING), OrderConfirmed
-- (AWAITING_PAYMENT, with the final amounts), OrderPaid, OrderRejected and
-- OrderCancelled move its status. `orders_sequence` is the position of the
-- last orders event applied: an older one never overwrites a newer one.
-- fulfillment_status follows the order's shipments (order_list_shipments).
CREATE TABLE order_list_view (
    order_id TEXT PRIMARY KEY,
    buyer_id TEXT NOT NULL,
    status TEXT NOT NULL,
    fulfillment_status TEXT NOT NULL DEFAULT 'UNFULFILLED'
        CHECK (fulfillment_status IN ('UNFULFILLED', 'SHIPPED', 'DELIVERED')),
    currency TEXT NOT NULL,
    subtotal_minor BIGINT NOT NULL,
    discount_minor BIGINT NOT NULL,
    total_minor BIGINT NOT NULL,
    item_count BIGINT NOT NULL,
    coupon_code TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    orders_sequence BIGINT NOT NULL
);
CREATE INDEX order_list_view_newest ON order_list_view (created_at, order_id);
CREATE INDEX order_list_view_buyer ON order_list_view (buyer_id, created_at, order_id);
CREATE INDEX order_list_view_status ON order_list_view (status, created_at, order_id);

-- Each shipment's status as shipping's events tell it (a shipping event may
-- arrive before the OrderPlaced of its order). `sequence`: as above, in
-- shipping's outbox.
CREATE TABLE order_list_shipments (
    shipment_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    status TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX order_list_shipments_order ON order_list_shipments (order_id);

-- ---- seller_dashboard_view: sales per seller ------------------------------

-- What an order holds, per SKU (lines of one SKU summed), from OrderPlaced:
-- the weights that split a payment between sellers.
CREATE TABLE seller_order_lines (
    order_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    line_total_minor BIGINT NOT NULL CHECK (line_total_minor >= 0),
    currency TEXT NOT NULL,
    PRIMARY KEY (order_id, sku)
);
CREATE INDEX seller_order_lines_sku ON seller_order_lines (sku);

-- Every captured or refunded amount, as payments' events say (money comes
-- only from here, never from order totals). `allocated_at` stays NULL until
-- the order's lines and every line's seller are known; the payment is then
-- split between the sellers once (seller_allocations) and summed into the
-- tables below.
CREATE TABLE seller_payments (
    payment_key TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('CAPTURE', 'REFUND')),
    order_id TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor >= 0),
    currency TEXT,
    day TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    allocated_at TEXT
);
CREATE INDEX seller_payments_order ON seller_payments (order_id, allocated_at);

-- Each payment's parts, per seller and SKU: they sum exactly to the payment.
CREATE TABLE seller_allocations (
    payment_key TEXT NOT NULL REFERENCES seller_payments (payment_key),
    seller_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor >= 0),
    units BIGINT NOT NULL CHECK (units >= 0),
    PRIMARY KEY (payment_key, seller_id, sku)
);

-- Per seller and currency, all time: captured (gross), refunded, their
-- difference, the orders captured and the units they held.
CREATE TABLE seller_dashboard_view (
    seller_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    gross_minor BIGINT NOT NULL,
    refunds_minor BIGINT NOT NULL,
    net_minor BIGINT NOT NULL,
    orders BIGINT NOT NULL,
    units BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (seller_id, currency)
);

-- The same per UTC day of the capture or refund.
CREATE TABLE seller_daily_sales (
    seller_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    day TEXT NOT NULL,
    gross_minor BIGINT NOT NULL,
    refunds_minor BIGINT NOT NULL,
    net_minor BIGINT NOT NULL,
    orders BIGINT NOT NULL,
    units BIGINT NOT NULL,
    PRIMARY KEY (seller_id, currency, day)
);

-- Units and captured amount per product (SKU) and day.
CREATE TABLE seller_product_daily_sales (
    seller_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    day TEXT NOT NULL,
    sku TEXT NOT NULL,
    units BIGINT NOT NULL,
    gross_minor BIGINT NOT NULL,
    PRIMARY KEY (seller_id, currency, day, sku)
);

-- One row whose lock serialises the handlers that join facts from two
-- sources: splitting payments between sellers (an order's lines, a product's
-- seller, a payment) and a product's stock (a product, its SKU's levels).
-- Each takes it before reading, so on PostgreSQL two of them running at once
-- cannot each miss the other's uncommitted half.
CREATE TABLE seller_allocation_lock (
    id BIGINT PRIMARY KEY,
    taken BIGINT NOT NULL
);
INSERT INTO seller_allocation_lock (id, taken) VALUES (1, 0);
