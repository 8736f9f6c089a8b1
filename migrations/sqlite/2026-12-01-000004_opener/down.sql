CREATE INDEX conversations_subject ON conversations(client_id, subject_key, updated_at);
DROP INDEX conversations_client_subject;
DROP INDEX conversations_opener_subject;
ALTER TABLE conversations DROP COLUMN last_message_at;
ALTER TABLE conversations DROP COLUMN opener;
