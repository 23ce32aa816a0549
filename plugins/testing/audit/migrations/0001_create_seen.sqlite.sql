-- Deliberately not unique on event_id: a duplicated effect must show up as two rows.
CREATE TABLE seen (
    n INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    source TEXT NOT NULL,
    event_type TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    payload TEXT NOT NULL
);
