-- The business time each settled reply took (README, "A year of history"):
-- written by the refresh that marks a first or next response met or missed,
-- under the calendar of the conversation's contract version, so that the
-- compliance report and the client's page count percentiles in SQL instead
-- of reading every timer of the period into the process. NULL: not a reply,
-- not settled, or (timers stored before this column) not measured yet.
ALTER TABLE timers ADD COLUMN business_seconds BIGINT;
-- The timers stored before this column need the calendars, which SQL has
-- not: a batched job measures them (`Deadlines::measure_settled_batch`), up
-- to the newest timer of now. Until it is through, the reports tally rows.
INSERT INTO retention_progress (what, last_id, updated_at)
    SELECT 'business_seconds_until', COALESCE(MAX(id), 0), CURRENT_TIMESTAMP FROM timers;
