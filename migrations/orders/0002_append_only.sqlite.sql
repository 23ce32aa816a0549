-- Orders never lie: history rows and price snapshots are never rewritten.
CREATE TRIGGER order_status_history_no_update BEFORE UPDATE ON order_status_history
BEGIN
    SELECT RAISE(ABORT, 'order_status_history is append-only');
END;

CREATE TRIGGER order_status_history_no_delete BEFORE DELETE ON order_status_history
BEGIN
    SELECT RAISE(ABORT, 'order_status_history is append-only');
END;

CREATE TRIGGER order_items_no_update BEFORE UPDATE ON order_items
BEGIN
    SELECT RAISE(ABORT, 'order_items are price snapshots and never change');
END;

CREATE TRIGGER order_items_no_delete BEFORE DELETE ON order_items
BEGIN
    SELECT RAISE(ABORT, 'order_items are price snapshots and never change');
END;
