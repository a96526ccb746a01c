-- One shipment per order: order_id is UNIQUE, so a second OrderPlaced for the
-- same order (another event id) cannot ship it twice. Shipping keeps what it
-- needs to pack and deliver: no prices, no e-mail, no billing address.
CREATE TABLE shipments (
    id                UUID        PRIMARY KEY,
    order_id          UUID        NOT NULL UNIQUE,
    status            TEXT        NOT NULL CHECK (status IN ('pending', 'cancelled')),
    recipient_name    TEXT        NOT NULL,
    shipping_street   TEXT        NOT NULL,
    shipping_zip      TEXT        NOT NULL,
    shipping_city     TEXT        NOT NULL,
    shipping_country  TEXT        NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE shipment_lines (
    shipment_id UUID    NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
    line_no     INTEGER NOT NULL,
    sku         TEXT    NOT NULL CHECK (sku <> ''),
    name        TEXT    NOT NULL,
    quantity    INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (shipment_id, line_no)
);

-- What the API reads: a shipment with its lines in order, in one row.
CREATE VIEW shipments_with_lines AS
SELECT s.*,
       (SELECT COALESCE(json_agg(json_build_object(
                   'sku', l.sku, 'name', l.name, 'quantity', l.quantity) ORDER BY l.line_no), '[]')
        FROM shipment_lines l WHERE l.shipment_id = s.id) AS lines
FROM shipments s;
