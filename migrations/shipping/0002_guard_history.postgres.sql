-- Shipment history is append-only, and a shipment never moves backwards.
-- Same guards as the .sqlite.sql variant.
CREATE FUNCTION shipping_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;

CREATE TRIGGER shipment_events_append_only BEFORE UPDATE OR DELETE ON shipment_events
    FOR EACH ROW EXECUTE FUNCTION shipping_append_only();

-- Shipments are never deleted. An update keeps identity and snapshots, bumps
-- version by one and moves status strictly forward (rank PENDING 0 <
-- LABEL_CREATED 1 < IN_TRANSIT 2 < DELIVERED | RETURNED | LOST 3), or to
-- CANCELLED from PENDING or LABEL_CREATED; a terminal shipment never changes;
-- a tracking number or label, once set, stays.
CREATE FUNCTION shipping_guard_shipment() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'shipments are never deleted';
    END IF;
    IF NEW.id <> OLD.id
        OR NEW.order_id <> OLD.order_id
        OR NEW.buyer_id <> OLD.buyer_id
        OR NEW.carrier <> OLD.carrier
        OR NEW.items_json <> OLD.items_json
        OR NEW.shipping_address_json <> OLD.shipping_address_json
        OR NEW.created_at <> OLD.created_at
        OR NEW.version <> OLD.version + 1
        OR OLD.status IN ('DELIVERED', 'RETURNED', 'LOST', 'CANCELLED')
        OR (NEW.status = 'CANCELLED' AND OLD.status NOT IN ('PENDING', 'LABEL_CREATED'))
        OR (NEW.status <> 'CANCELLED'
            AND (CASE NEW.status WHEN 'PENDING' THEN 0 WHEN 'LABEL_CREATED' THEN 1
                    WHEN 'IN_TRANSIT' THEN 2 ELSE 3 END)
             <= (CASE OLD.status WHEN 'PENDING' THEN 0 WHEN 'LABEL_CREATED' THEN 1
                    WHEN 'IN_TRANSIT' THEN 2 ELSE 3 END))
        OR (OLD.tracking_number IS NOT NULL
            AND NEW.tracking_number IS DISTINCT FROM OLD.tracking_number)
        OR (OLD.label_id IS NOT NULL AND NEW.label_id IS DISTINCT FROM OLD.label_id)
    THEN
        RAISE EXCEPTION 'shipments update breaks its invariants';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER shipments_guard BEFORE UPDATE OR DELETE ON shipments
    FOR EACH ROW EXECUTE FUNCTION shipping_guard_shipment();
