-- A discard is an operator's decision that changes what the consumers ever
-- see of an order (orderflow-admin outbox discard): keep who made it, as
-- which database role, and what it meant for the order, as the tool told
-- the operator before they confirmed it. Rows discarded before this
-- migration say '(not recorded)' and have no role or consequence.
ALTER TABLE outbox_discarded
    ADD COLUMN discarded_by TEXT NOT NULL DEFAULT '(not recorded)' CHECK (discarded_by <> ''),
    ADD COLUMN discarded_as TEXT,
    ADD COLUMN consequence  TEXT;

ALTER TABLE outbox_discarded
    ALTER COLUMN discarded_by DROP DEFAULT,
    ALTER COLUMN discarded_as SET DEFAULT session_user;
