-- One invoice per order: order_id is UNIQUE, so a second OrderPlaced for the
-- same order (another event id) cannot issue a second invoice.
CREATE TABLE invoices (
    id               UUID        PRIMARY KEY,
    order_id         UUID        NOT NULL UNIQUE,
    status           TEXT        NOT NULL CHECK (status IN ('open', 'cancelled')),
    customer_name    TEXT        NOT NULL,
    customer_email   TEXT        NOT NULL,
    billing_street   TEXT        NOT NULL,
    billing_zip      TEXT        NOT NULL,
    billing_city     TEXT        NOT NULL,
    billing_country  TEXT        NOT NULL,
    currency         TEXT        NOT NULL,
    total_cents      BIGINT      NOT NULL CHECK (total_cents >= 0),
    issued_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE invoice_lines (
    invoice_id       UUID    NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    line_no          INTEGER NOT NULL,
    sku              TEXT    NOT NULL CHECK (sku <> ''),
    name             TEXT    NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT  NOT NULL CHECK (unit_price_cents >= 0),
    line_total_cents BIGINT  NOT NULL CHECK (line_total_cents >= 0),
    PRIMARY KEY (invoice_id, line_no)
);

-- What the API reads: an invoice with its lines in order, in one row.
CREATE VIEW invoices_with_lines AS
SELECT i.*,
       (SELECT COALESCE(json_agg(json_build_object(
                   'sku', l.sku, 'name', l.name, 'quantity', l.quantity,
                   'unit_price_cents', l.unit_price_cents,
                   'line_total_cents', l.line_total_cents) ORDER BY l.line_no), '[]')
        FROM invoice_lines l WHERE l.invoice_id = i.id) AS lines
FROM invoices i;
