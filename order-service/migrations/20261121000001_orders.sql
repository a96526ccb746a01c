-- The order-service database: orders, their lines, idempotency keys, and the
-- transactional outbox the relay publishes from. Every row an order request
-- writes is written in one transaction.

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

-- Read by messaging::relay; written by messaging::outbox::enqueue.
CREATE TABLE outbox (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       UUID        NOT NULL UNIQUE,
    topic          TEXT        NOT NULL,
    record_key     TEXT        NOT NULL,
    event_type     TEXT        NOT NULL,
    schema_version INTEGER     NOT NULL,
    payload        TEXT        NOT NULL,
    traceparent    TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
