DROP INDEX conversations_opened;
DROP INDEX outbox_conversation;
DROP INDEX outbox_digest;
ALTER TABLE outbox DROP COLUMN contact;
ALTER TABLE outbox DROP COLUMN step;
ALTER TABLE outbox DROP COLUMN conversation_id;
ALTER TABLE outbox DROP COLUMN digest_key;
ALTER TABLE outbox DROP COLUMN not_before;
