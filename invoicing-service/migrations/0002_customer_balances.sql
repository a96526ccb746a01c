-- Each customer's open balance, per currency: a running figure that each
-- OrderPlaced raises by the total of the invoice it issued (when that
-- invoice is open) and each OrderCancelled lowers by the total of its
-- order's invoice. It is moved by the events, not recomputed from the rows,
-- so nothing in this schema stops an event applied twice from moving it
-- twice: only the inbox's dedup (processed_events) does. That is the point:
-- the chaos audit compares it with the open invoices, customer by customer,
-- and a redelivery applied twice shows up as a difference. No CHECK on the
-- sign either: a cancellation applied twice must show, not stall the inbox.
CREATE TABLE customer_balances (
    customer_email TEXT   NOT NULL,
    currency       TEXT   NOT NULL,
    open_cents     BIGINT NOT NULL,
    PRIMARY KEY (customer_email, currency)
);

-- The OrderPlaced event that issued the invoice: a later OrderPlaced of the
-- same order (another event id) issues nothing and so raises no balance;
-- the same event delivered again would (see above). NULL for invoices
-- issued before this column existed.
ALTER TABLE invoices ADD COLUMN issued_by_event UUID;

-- The balances of the invoices issued so far.
INSERT INTO customer_balances (customer_email, currency, open_cents)
SELECT customer_email, currency, sum(total_cents)::bigint
FROM invoices WHERE status = 'open'
GROUP BY customer_email, currency;
