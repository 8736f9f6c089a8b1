DROP INDEX conversations_open_health;
DROP INDEX conversations_next_check;
ALTER TABLE conversations DROP COLUMN next_check_at;
ALTER TABLE conversations DROP COLUMN health;
ALTER TABLE messages DROP COLUMN awaiting_client;
ALTER TABLE messages DROP COLUMN status;
