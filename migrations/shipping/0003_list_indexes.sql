-- GET /shipping/shipments lists newest first by (created_at, id) and pages
-- with a (created_at, id) cursor: this index serves both without sorting the
-- table.
CREATE INDEX shipments_by_created ON shipments (created_at, id);
