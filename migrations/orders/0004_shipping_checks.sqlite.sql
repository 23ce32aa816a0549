-- The allowed values of 0003's new columns. SQLite cannot add a CHECK to an
-- existing table without rebuilding it, so triggers refuse other values.
CREATE TRIGGER orders_fulfillment_status_insert BEFORE INSERT ON orders
WHEN NEW.fulfillment_status NOT IN ('UNFULFILLED', 'SHIPPED', 'DELIVERED')
BEGIN
    SELECT RAISE(ABORT, 'orders.fulfillment_status must be UNFULFILLED, SHIPPED or DELIVERED');
END;

CREATE TRIGGER orders_fulfillment_status_update BEFORE UPDATE OF fulfillment_status ON orders
WHEN NEW.fulfillment_status NOT IN ('UNFULFILLED', 'SHIPPED', 'DELIVERED')
BEGIN
    SELECT RAISE(ABORT, 'orders.fulfillment_status must be UNFULFILLED, SHIPPED or DELIVERED');
END;

CREATE TRIGGER order_shipments_status_insert BEFORE INSERT ON order_shipments
WHEN NEW.status NOT IN ('PENDING', 'LABEL_CREATED', 'IN_TRANSIT', 'DELIVERED', 'CANCELLED')
BEGIN
    SELECT RAISE(ABORT, 'order_shipments.status is not a shipment status');
END;

CREATE TRIGGER order_shipments_status_update BEFORE UPDATE OF status ON order_shipments
WHEN NEW.status NOT IN ('PENDING', 'LABEL_CREATED', 'IN_TRANSIT', 'DELIVERED', 'CANCELLED')
BEGIN
    SELECT RAISE(ABORT, 'order_shipments.status is not a shipment status');
END;
