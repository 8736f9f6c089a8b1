-- Issue 9: `conversations_client_subject (client_id, subject_key,
-- last_message_at)` serves every lookup by client that this index served;
-- one index fewer to update on each new conversation.
DROP INDEX conversations_client;
