-- GET /payments/intents lists newest first by (created_at, id) and pages with
-- a (created_at, id) cursor: this index serves both without sorting the table.
CREATE INDEX payment_intents_by_created ON payment_intents (created_at, id);
