-- The retention purge deletes published-event records by age
-- (PUBLISHED_EVENTS_RETENTION_HOURS). Rows arrive in publication order, so a
-- BRIN index finds the old ones for almost nothing per insert.
CREATE INDEX published_events_published_at ON published_events USING brin (published_at);
