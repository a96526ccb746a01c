-- The partitioner's hash of each row's key (murmur2, made positive, as
-- Kafka's Java client and the relay's producer compute it): the row's
-- partition is key_hash % partitions. The relay keeps the rows of a
-- partition that cannot take records out of its claim with it, so the other
-- partitions keep flowing (messaging::relay, "One partition stuck").
-- Rows written before this column existed have NULL: their partition is
-- unknown, and they are claimed as before.
ALTER TABLE outbox ADD COLUMN key_hash INTEGER CHECK (key_hash >= 0);
