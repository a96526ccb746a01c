-- The outbox's own tables, in the database of every service that publishes
-- through it (order-service). They are applied by messaging::outbox::MIGRATOR,
-- tracked in _outbox_migrations, after the service's own schema. This is the
-- squash of what order-service's migrations 20261121000001 to 20261223000001
-- created before the outbox had its own migrations: a database made by those
-- is refused at startup with what to do (order_service::store::check_layout).

-- The rows the relay publishes: written by messaging::outbox::enqueue in the
-- transaction of the state change they describe, deleted by the relay once
-- Kafka has acknowledged them.
CREATE TABLE outbox (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       UUID        NOT NULL UNIQUE,
    topic          TEXT        NOT NULL,
    record_key     TEXT        NOT NULL,
    event_type     TEXT        NOT NULL,
    schema_version INTEGER     NOT NULL,
    payload        TEXT        NOT NULL,
    traceparent    TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Events Kafka refuses for good (too large for the topic, refused by its
    -- policy) are parked by the relay with the error, instead of heading
    -- every batch forever; the later events of the same key are held behind
    -- them. An operator retries or discards a parked event
    -- (messaging::outbox::parked, orderflow-admin outbox).
    parked_at      TIMESTAMPTZ,
    park_reason    TEXT,
    -- The partitioner's hash of record_key (murmur2, made positive, as
    -- Kafka's Java client and the relay's producer compute it): the row's
    -- partition is key_hash % partitions. The relay keeps the rows of a
    -- partition that cannot take records out of its claim with it, so the
    -- other partitions keep flowing. NULL: the partition is unknown, and the
    -- row is claimed regardless.
    key_hash       INTEGER     CHECK (key_hash >= 0),
    CHECK ((parked_at IS NULL) = (park_reason IS NULL))
);

-- The relay's claim skips the keys of parked rows: a small partial index.
CREATE INDEX outbox_parked_keys ON outbox (record_key, id) WHERE parked_at IS NOT NULL;

-- Parked events an operator discarded, with why, who, as which database
-- role, and what it meant for the order, as the tool told the operator
-- before they confirmed it: nothing leaves the outbox without a trace.
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
    discard_reason TEXT        NOT NULL CHECK (discard_reason <> ''),
    discarded_by   TEXT        NOT NULL CHECK (discarded_by <> ''),
    discarded_as   TEXT        DEFAULT session_user,
    consequence    TEXT
);

-- Where each event went: written by the relay in the statement that deletes
-- the outbox row Kafka acknowledged (partition, offset, and the commit time
-- of that deletion), and read by the service (the order page's journey).
-- The key comes first, so one order's events are one index range.
CREATE TABLE published_events (
    record_key      TEXT        NOT NULL,
    event_id        UUID        NOT NULL,
    event_type      TEXT        NOT NULL,
    kafka_partition INTEGER     NOT NULL,
    kafka_offset    BIGINT      NOT NULL,
    published_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (record_key, event_id)
);
-- The service's retention purge deletes published-event records by age
-- (PUBLISHED_EVENTS_RETENTION_HOURS). Rows arrive in publication order, so a
-- BRIN index finds the old ones for almost nothing per insert.
CREATE INDEX published_events_published_at ON published_events USING brin (published_at);
