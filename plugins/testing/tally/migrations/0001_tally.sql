CREATE TABLE seen_notes (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    sequence BIGINT NOT NULL
);
