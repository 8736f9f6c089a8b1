DROP INDEX messages_recipients;
DROP INDEX conversations_subject;
ALTER TABLE conversations DROP COLUMN subject_key;
