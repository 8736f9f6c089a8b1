DROP INDEX messages_events;
CREATE INDEX messages_conversation ON messages(conversation_id);
ALTER TABLE messages ADD COLUMN body TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN raw BLOB;
UPDATE messages SET
    body = COALESCE((SELECT b.body FROM message_bodies b WHERE b.message_id = messages.id), ''),
    raw = (SELECT b.raw FROM message_bodies b WHERE b.message_id = messages.id);
DROP TABLE message_bodies;
