-- One entry per placed order: order_id is UNIQUE, so a second OrderPlaced
-- of the same order (another event id) cannot make a second one. `status`
-- is what the consumer kit's cancellation sets to 'cancelled'.
CREATE TABLE {{name}}_entries (
    id            UUID        PRIMARY KEY,
    order_id      UUID        NOT NULL UNIQUE,
    status        TEXT        NOT NULL CHECK (status IN ('open', 'cancelled')),
    customer_name TEXT        NOT NULL,
    currency      TEXT        NOT NULL,
    total_cents   BIGINT      NOT NULL CHECK (total_cents >= 0),
    units         INTEGER     NOT NULL CHECK (units > 0),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
