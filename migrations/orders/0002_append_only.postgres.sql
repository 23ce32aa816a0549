-- Orders never lie: history rows and price snapshots are never rewritten.
CREATE FUNCTION orders_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER order_status_history_no_change BEFORE UPDATE OR DELETE ON order_status_history
FOR EACH ROW EXECUTE FUNCTION orders_append_only();

CREATE TRIGGER order_items_no_change BEFORE UPDATE OR DELETE ON order_items
FOR EACH ROW EXECUTE FUNCTION orders_append_only();
