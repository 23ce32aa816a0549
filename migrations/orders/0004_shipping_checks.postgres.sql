-- The allowed values of 0003's new columns.
ALTER TABLE orders ADD CONSTRAINT orders_fulfillment_status_check
    CHECK (fulfillment_status IN ('UNFULFILLED', 'SHIPPED', 'DELIVERED'));
ALTER TABLE order_shipments ADD CONSTRAINT order_shipments_status_check
    CHECK (status IN ('PENDING', 'LABEL_CREATED', 'IN_TRANSIT', 'DELIVERED', 'CANCELLED'));
