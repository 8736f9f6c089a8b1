DROP TABLE erasures;
DROP TABLE retention_progress;
ALTER TABLE message_bodies DROP COLUMN removed;
