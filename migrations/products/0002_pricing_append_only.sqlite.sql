-- Price history is evidence of what buyers were offered: never rewritten.
CREATE TRIGGER product_pricing_no_update BEFORE UPDATE ON product_pricing
BEGIN
    SELECT RAISE(ABORT, 'product_pricing is append-only');
END;

CREATE TRIGGER product_pricing_no_delete BEFORE DELETE ON product_pricing
BEGIN
    SELECT RAISE(ABORT, 'product_pricing is append-only');
END;
