DROP INDEX messages_events;
CREATE INDEX messages_conversation ON messages(conversation_id);
ALTER TABLE messages ADD COLUMN body TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN raw BYTEA;
UPDATE messages m SET body = b.body, raw = b.raw FROM message_bodies b WHERE b.message_id = m.id;
DROP TABLE message_bodies;
