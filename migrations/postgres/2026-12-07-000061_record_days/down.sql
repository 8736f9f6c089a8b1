DROP INDEX tally_days_client;
DROP INDEX timers_broken;
DROP TRIGGER record_timers_due ON timers;
DROP FUNCTION record_timers_due_moved();
DROP TRIGGER record_conversations_insert ON conversations;
DROP FUNCTION record_conversations_inserted();
DROP TABLE record_days;
