-- The inbox purges remembered cancellations after the same retention as the
-- dedup records (PROCESSED_RETENTION_HOURS): an OrderPlaced that has not come
-- within that window will not come.
CREATE INDEX cancellations_recorded_at ON cancellations (recorded_at);
