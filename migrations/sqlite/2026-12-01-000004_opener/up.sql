-- Threading by subject (issue 9): a header-less reply joins a conversation
-- of its own sender (`opener`, the opening sender's address, lower-case) or
-- of its declared client, and only when that conversation had mail within
-- the window of the reply's own date (`last_message_at`, the latest message
-- instant; processing time, `updated_at`, says nothing about that when old
-- mail is imported).
ALTER TABLE conversations ADD COLUMN opener TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN last_message_at TIMESTAMP;
UPDATE conversations SET last_message_at = opened_at;
CREATE INDEX conversations_opener_subject ON conversations(opener, subject_key, last_message_at);
CREATE INDEX conversations_client_subject ON conversations(client_id, subject_key, last_message_at);
DROP INDEX conversations_subject;
