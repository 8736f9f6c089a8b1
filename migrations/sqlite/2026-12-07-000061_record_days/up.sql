-- The client's record kept per day (README, "The client's record"): one
-- row per UTC day of the conversations' `opened_at` ('YYYY-MM-DD'), client,
-- request type and settle day: the promises kept that day (by their stop),
-- broken that day (by their due) and the first-response times (business
-- seconds, sorted, delta-encoded varints) of the replies given that day.
-- `requests` counts the conversations opened on `day`, on the row whose
-- `settled` is `day` itself (0 on the others). Rebuilt with `tally_days`,
-- by the same job from the same marks in `tally_stale`.
CREATE TABLE record_days (
    day DATE NOT NULL,
    client_id TEXT NOT NULL,
    request_type TEXT NOT NULL,
    settled DATE NOT NULL,
    requests INTEGER NOT NULL,
    kept INTEGER NOT NULL,
    broken INTEGER NOT NULL,
    times BLOB NOT NULL,
    PRIMARY KEY (client_id, day, request_type, settled)
);

-- The record also counts what the compliance tally does not read: a new
-- conversation (a request, with or without timers) and the due of a broken
-- promise (its settle day). Marks as `tally_days`' triggers make them.
CREATE TRIGGER record_conversations_insert AFTER INSERT ON conversations
BEGIN
    INSERT OR IGNORE INTO tally_stale (day) SELECT date(NEW.opened_at)
        WHERE NOT EXISTS (SELECT 1 FROM tally_stale WHERE day = date(NEW.opened_at));
END;

CREATE TRIGGER record_timers_due AFTER UPDATE OF due_at ON timers
    WHEN OLD.due_at IS NOT NEW.due_at AND NEW.status IN ('missed', 'breached')
BEGIN
    INSERT OR IGNORE INTO tally_stale (day)
        SELECT date(opened_at) FROM conversations WHERE id = NEW.conversation_id
           AND NOT EXISTS (SELECT 1 FROM tally_stale WHERE day = date(opened_at));
END;

-- The page's broken promises, newest due first, 50 at a time.
CREATE INDEX timers_broken ON timers (due_at DESC, conversation_id DESC, id DESC)
    WHERE status IN ('missed', 'breached');

-- One client's compliance summaries (its page's kinds and medians), not
-- every client's days.
CREATE INDEX tally_days_client ON tally_days (client_id, day);

-- Every day is rebuilt by the job (the summaries of `tally_days` built
-- before this migration have no record rows).
INSERT OR IGNORE INTO tally_stale (day)
    SELECT DISTINCT date(opened_at) FROM conversations;
