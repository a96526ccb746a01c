-- The units to pick per SKU: a running figure that each OrderPlaced raises
-- by the quantities of the shipment it created (when that shipment is
-- pending) and each OrderCancelled lowers by the quantities of its order's
-- shipment. It is moved by the events, not recomputed from the rows, so
-- nothing in this schema stops an event applied twice from moving it twice:
-- only the inbox's dedup (processed_events) does. That is the point: the
-- chaos audit compares it with the pending shipments' lines, SKU by SKU,
-- and a redelivery applied twice shows up as a difference. No CHECK on the
-- sign either: a cancellation applied twice must show, not stall the inbox.
CREATE TABLE pick_list (
    sku   TEXT   PRIMARY KEY,
    units BIGINT NOT NULL
);

-- The OrderPlaced event that created the shipment: a later OrderPlaced of
-- the same order (another event id) creates nothing and so adds nothing to
-- pick; the same event delivered again would (see above). NULL for
-- shipments created before this column existed.
ALTER TABLE shipments ADD COLUMN created_by_event UUID;

-- The units of the shipments created so far.
INSERT INTO pick_list (sku, units)
SELECT l.sku, sum(l.quantity)::bigint
FROM shipments s JOIN shipment_lines l ON l.shipment_id = s.id
WHERE s.status = 'pending'
GROUP BY l.sku;
