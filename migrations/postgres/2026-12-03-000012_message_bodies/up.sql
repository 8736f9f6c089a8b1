-- Issue 9: bodies and raw bytes live apart from the rows the SLA engine
-- reads (see the SQLite migration).
CREATE TABLE message_bodies (
    message_id BIGINT PRIMARY KEY REFERENCES messages(id),
    body TEXT NOT NULL,
    raw BYTEA
);
INSERT INTO message_bodies (message_id, body, raw)
    SELECT id, body, raw FROM messages WHERE body <> '' OR raw IS NOT NULL;
ALTER TABLE messages DROP COLUMN body;
ALTER TABLE messages DROP COLUMN raw;
DROP INDEX messages_conversation;
CREATE INDEX messages_events ON messages(conversation_id, sent_at, id)
    INCLUDE (direction, status, awaiting_client);
