-- Idempotency keys are forgotten after IDEMPOTENCY_KEY_RETENTION_HOURS
-- (default 24): the purge deletes by age.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
