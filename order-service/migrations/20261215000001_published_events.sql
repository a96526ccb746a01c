-- Where each event went: written by messaging::relay in the statement that
-- deletes the outbox row Kafka acknowledged (partition, offset, and the
-- commit time of that deletion), and read by the order page's journey. The
-- key comes first, so one order's events are one index range.
CREATE TABLE published_events (
    record_key      TEXT        NOT NULL,
    event_id        UUID        NOT NULL,
    event_type      TEXT        NOT NULL,
    kafka_partition INTEGER     NOT NULL,
    kafka_offset    BIGINT      NOT NULL,
    published_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (record_key, event_id)
);
