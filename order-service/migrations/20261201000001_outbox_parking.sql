-- Events Kafka refuses for good (too large for the topic, refused by its
-- policy) are parked by the relay with the error, instead of heading every
-- batch forever; the later events of the same key are held behind them.
-- An operator retries or discards a parked event (orderflow-admin outbox).
ALTER TABLE outbox
    ADD COLUMN parked_at   TIMESTAMPTZ,
    ADD COLUMN park_reason TEXT,
    ADD CHECK ((parked_at IS NULL) = (park_reason IS NULL));

-- The relay's claim skips the keys of parked rows: a small partial index.
CREATE INDEX outbox_parked_keys ON outbox (record_key, id) WHERE parked_at IS NOT NULL;

-- Parked events an operator discarded, with why: nothing leaves the outbox
-- without a trace.
CREATE TABLE outbox_discarded (
    event_id       UUID        PRIMARY KEY,
    topic          TEXT        NOT NULL,
    record_key     TEXT        NOT NULL,
    event_type     TEXT        NOT NULL,
    schema_version INTEGER     NOT NULL,
    payload        TEXT        NOT NULL,
    traceparent    TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    parked_at      TIMESTAMPTZ,
    park_reason    TEXT,
    discarded_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    discard_reason TEXT        NOT NULL CHECK (discard_reason <> '')
);
