-- A ticket event may change the status with or without a message
-- (direction 'none'), and an outbound may ask the client a question.
ALTER TABLE messages ADD COLUMN status TEXT;
ALTER TABLE messages ADD COLUMN awaiting_client BOOLEAN NOT NULL DEFAULT FALSE;
-- Derived SLA state kept with the conversation: the scheduler sleeps until the
-- earliest next_check_at instead of scanning every open conversation.
ALTER TABLE conversations ADD COLUMN health TEXT NOT NULL DEFAULT 'on_track';
ALTER TABLE conversations ADD COLUMN next_check_at TIMESTAMP;
CREATE INDEX conversations_next_check ON conversations(next_check_at);
CREATE INDEX conversations_open_health ON conversations(status, health);
