-- A notification the receiver refused for good (SMTP 5xx, HTTP 4xx other
-- than 408/429, a payload that cannot be built) is parked, not retried: it
-- keeps its row, its reason in last_error, and waits here for an operator to
-- send it again (which clears refused_at).
ALTER TABLE outbox ADD COLUMN refused_at TIMESTAMP;
