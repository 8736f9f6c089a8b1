-- Issue 9: bodies and raw bytes live apart from the rows the SLA engine
-- reads. A 300 KB attachment in `messages.raw` put every later column of
-- the row behind an overflow chain, and every refresh of its conversation
-- walked it.
CREATE TABLE message_bodies (
    message_id BIGINT PRIMARY KEY NOT NULL REFERENCES messages(id),
    body TEXT NOT NULL,
    raw BLOB
);
INSERT INTO message_bodies (message_id, body, raw)
    SELECT id, body, raw FROM messages WHERE body <> '' OR raw IS NOT NULL;
ALTER TABLE messages DROP COLUMN body;
ALTER TABLE messages DROP COLUMN raw;
-- What a refresh reads, in the order it reads it, from the index alone
-- (the rowid, `id`, is part of every SQLite index entry).
DROP INDEX messages_conversation;
CREATE INDEX messages_events ON messages(conversation_id, sent_at, direction, status, awaiting_client);
