-- Urgency and focus (SPEC 14): a notification may be held until the
-- contact's working hours open (not_before), or collected into the contact's
-- digest (digest_key groups the warnings of one digest time). The
-- conversation, step and contact a row belongs to feed the timeline.
ALTER TABLE outbox ADD COLUMN not_before TIMESTAMP;
ALTER TABLE outbox ADD COLUMN digest_key TEXT;
ALTER TABLE outbox ADD COLUMN conversation_id BIGINT;
ALTER TABLE outbox ADD COLUMN step TEXT;
ALTER TABLE outbox ADD COLUMN contact TEXT;
CREATE INDEX outbox_digest ON outbox(digest_key, sent_at);
CREATE INDEX outbox_conversation ON outbox(conversation_id);
-- The urgent share reads the trailing 30 days of conversations at every
-- scrape: an index keeps that independent of years of history.
CREATE INDEX conversations_opened ON conversations(opened_at);
