-- GET /notifications without a recipient (the merchant's view) lists newest
-- first by (created_at, id) and pages with a (created_at, id) cursor: this
-- index serves both without sorting the table. With a recipient,
-- notifications_by_recipient (0001) narrows the rows first.
CREATE INDEX notifications_by_created ON notifications (created_at, id);
