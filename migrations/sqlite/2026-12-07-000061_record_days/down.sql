DROP INDEX tally_days_client;
DROP INDEX timers_broken;
DROP TRIGGER record_timers_due;
DROP TRIGGER record_conversations_insert;
DROP TABLE record_days;
