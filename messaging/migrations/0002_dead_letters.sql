-- The dead letters this consumer wrote, as an index of its dead-letter topic
-- for the read API (an order's journey shows them): one row per source
-- record, written once the dead-letter topic acknowledged it. The topic stays
-- the record (orderflow-admin dlq reads and replays it); rows are purged with
-- the dedup records.
CREATE TABLE IF NOT EXISTS dead_letters (
    consumer         TEXT        NOT NULL,
    source_topic     TEXT        NOT NULL,
    source_partition INTEGER     NOT NULL,
    source_offset    BIGINT      NOT NULL,
    record_key       TEXT,
    event_type       TEXT,
    reason           TEXT        NOT NULL,
    dead_lettered_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, source_topic, source_partition, source_offset)
);
CREATE INDEX IF NOT EXISTS dead_letters_record_key ON dead_letters (record_key, dead_lettered_at);
CREATE INDEX IF NOT EXISTS dead_letters_dead_lettered_at ON dead_letters (dead_lettered_at);
