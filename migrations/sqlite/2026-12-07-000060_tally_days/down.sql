DROP TRIGGER tally_conversations_delete;
DROP TRIGGER tally_conversations_update;
DROP TRIGGER tally_timers_delete;
DROP TRIGGER tally_timers_update;
DROP TRIGGER tally_timers_insert;
DROP TABLE tally_stale;
DROP TABLE tally_days;
