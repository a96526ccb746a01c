-- The inbox's own tables, in every consuming service's database. They are
-- applied by messaging::inbox::MIGRATOR, tracked in _inbox_migrations, next
-- to the service's own schema (and `IF NOT EXISTS`, so a database whose
-- service migrations created them earlier keeps them).

-- The dedup table: one row per event whose effect committed, written in the
-- same transaction as the effect. The primary key, not a check, makes a
-- redelivery a no-op even under concurrent delivery.
CREATE TABLE IF NOT EXISTS processed_events (
    consumer     TEXT        NOT NULL,
    event_id     UUID        NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX IF NOT EXISTS processed_events_processed_at ON processed_events (processed_at);

-- Cancellations seen, whether or not the order's effect exists yet: when an
-- order's OrderCancelled arrives before its OrderPlaced, the effect is
-- created already cancelled. Purged with the dedup records.
CREATE TABLE IF NOT EXISTS cancellations (
    order_id    UUID        PRIMARY KEY,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS cancellations_recorded_at ON cancellations (recorded_at);
