-- Price history is evidence of what buyers were offered: never rewritten.
CREATE FUNCTION product_pricing_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'product_pricing is append-only' USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER product_pricing_no_change BEFORE UPDATE OR DELETE ON product_pricing
FOR EACH ROW EXECUTE FUNCTION product_pricing_append_only();
