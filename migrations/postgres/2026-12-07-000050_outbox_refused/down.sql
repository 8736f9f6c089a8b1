ALTER TABLE outbox DROP COLUMN refused_at;
