DROP TABLE dashboard_sessions;
DROP INDEX conversations_open_counts;
DROP INDEX conversations_solved;
DROP INDEX conversations_queue;
ALTER TABLE conversations DROP COLUMN paused_since;
ALTER TABLE conversations DROP COLUMN next_timer;
ALTER TABLE conversations DROP COLUMN next_due_at;
