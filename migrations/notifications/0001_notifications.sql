-- Notifications: a read-side context. It records what it told whom, never
-- decides anything for another context; other contexts' ids are plain values.

-- Whose order is it: filled from any event carrying both order_id and
-- buyer_id. Events that carry only order_id (payments.*) look the buyer up
-- here; the buyer of an order never changes, so the first row stays.
CREATE TABLE order_recipients (
    order_id TEXT PRIMARY KEY,
    buyer_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- One template per subscribed event type; seeded by 0003, edited over HTTP.
CREATE TABLE notification_templates (
    event_type TEXT PRIMARY KEY,
    subject TEXT NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    body TEXT NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
    updated_at TEXT NOT NULL
);

-- In-app messages, one per event and channel. A message whose recipient is
-- not known yet waits as PENDING_RECIPIENT (recipient NULL) and is sent when
-- an event names the order's buyer.
CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    recipient TEXT,
    order_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    channel TEXT NOT NULL CHECK (channel IN ('inbox')),
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('PENDING_RECIPIENT', 'SENT')),
    attempts BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    UNIQUE (event_id, channel),
    CHECK (
        (status = 'SENT' AND recipient IS NOT NULL AND sent_at IS NOT NULL AND attempts = 1)
        OR (status = 'PENDING_RECIPIENT' AND recipient IS NULL AND sent_at IS NULL AND attempts = 0)
    )
);
CREATE INDEX notifications_by_recipient ON notifications (recipient, created_at);
CREATE INDEX notifications_waiting_by_order ON notifications (order_id) WHERE recipient IS NULL;

-- Webhook endpoints are disabled, never deleted, so their deliveries keep
-- their history. event_types is a JSON list of subscribed types or ["*"].
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    event_types TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at TEXT NOT NULL,
    disabled_at TEXT
);

-- One delivery per endpoint and event; its id is the outbound request's key,
-- so every retry the host makes carries it.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id),
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts BIGINT NOT NULL CHECK (attempts >= 0),
    last_status BIGINT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, created_at);

-- Every attempt as reported by the host (or the host's refusal to queue the
-- request, as attempt 1). Append-only (0002).
CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id),
    attempt BIGINT NOT NULL CHECK (attempt >= 1),
    outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'retrying', 'dead', 'denied', 'invalid')),
    status BIGINT,
    error TEXT,
    duration_ms BIGINT NOT NULL CHECK (duration_ms >= 0),
    at TEXT NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
