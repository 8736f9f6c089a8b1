DROP INDEX timers_tally;
CREATE INDEX conversations_opened ON conversations (opened_at);
DROP INDEX conversations_tally;
DROP INDEX conversations_queue_undue;
