-- The order-service database: orders, their lines and idempotency keys.
-- The transactional outbox the relay publishes from has its own migrations
-- (messaging/migrations/outbox, applied after these by
-- messaging::outbox::MIGRATOR). Every row an order request writes, its
-- outbox row included, is written in one transaction.
--
-- This is the squash of migrations 20261121000001 to 20261223000001, which
-- also created the outbox's tables: a database made by those is refused at
-- startup with what to do (order_service::store::check_layout).

CREATE TABLE orders (
    id                UUID        PRIMARY KEY,  -- UUIDv7: "newest first" is "id descending"
    status            TEXT        NOT NULL CHECK (status IN ('placed', 'cancelled')),
    customer_name     TEXT        NOT NULL,
    customer_email    TEXT        NOT NULL,
    billing_street    TEXT        NOT NULL,
    billing_zip       TEXT        NOT NULL,
    billing_city      TEXT        NOT NULL,
    billing_country   TEXT        NOT NULL CHECK (billing_country ~ '^[A-Z]{2}$'),
    shipping_street   TEXT        NOT NULL,
    shipping_zip      TEXT        NOT NULL,
    shipping_city     TEXT        NOT NULL,
    shipping_country  TEXT        NOT NULL CHECK (shipping_country ~ '^[A-Z]{2}$'),
    currency          TEXT        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    total_cents       BIGINT      NOT NULL CHECK (total_cents >= 0),
    -- The database clock, shared by every service (TIMESTAMPTZ keeps microseconds).
    placed_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    cancelled_at      TIMESTAMPTZ,
    cancel_reason     TEXT,
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
    CHECK (cancel_reason IS NULL OR cancelled_at IS NOT NULL)
);

CREATE TABLE order_lines (
    order_id          UUID    NOT NULL REFERENCES orders (id),
    line_no           INTEGER NOT NULL CHECK (line_no >= 0),
    sku               TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    quantity          INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 10000),
    unit_price_cents  BIGINT  NOT NULL CHECK (unit_price_cents BETWEEN 0 AND 100000000),
    line_total_cents  BIGINT  NOT NULL CHECK (line_total_cents = quantity * unit_price_cents),
    PRIMARY KEY (order_id, line_no),
    UNIQUE (order_id, sku)
);

-- One row per Idempotency-Key ever used to place an order. The key row is
-- inserted first in the order's transaction (ON CONFLICT DO NOTHING), so a
-- concurrent request with the same key waits for the winner and then finds it.
-- The foreign key is checked at commit, after the order row exists.
CREATE TABLE idempotency_keys (
    key               TEXT        PRIMARY KEY,
    request_sha256    BYTEA       NOT NULL CHECK (length(request_sha256) = 32),
    order_id          UUID        NOT NULL REFERENCES orders (id) DEFERRABLE INITIALLY DEFERRED,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Idempotency keys are forgotten after IDEMPOTENCY_KEY_RETENTION_HOURS
-- (default 24): the purge deletes by age.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
