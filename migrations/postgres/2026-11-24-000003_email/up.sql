-- Email threading by normalised subject: same client, recent activity.
ALTER TABLE conversations ADD COLUMN subject_key TEXT NOT NULL DEFAULT '';
CREATE INDEX conversations_subject ON conversations(client_id, subject_key, updated_at);
-- Acknowledgements are limited per sender and hour.
CREATE INDEX messages_recipients ON messages(direction, recipients, sent_at);
