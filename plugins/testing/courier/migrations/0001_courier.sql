CREATE TABLE sent (
    key TEXT PRIMARY KEY,
    url TEXT NOT NULL
);
-- One row per attempt report: the key makes a second delivery of the same
-- report fail, so a test counting rows proves each report took effect once.
CREATE TABLE reports (
    key TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    status BIGINT,
    error TEXT,
    duration_ms BIGINT NOT NULL,
    response_body TEXT NOT NULL,
    PRIMARY KEY (key, attempt)
);
