-- The client's record kept per day (README, "The client's record"): one
-- row per UTC day of the conversations' `opened_at`, client, request type
-- and settle day: the promises kept that day (by their stop), broken that
-- day (by their due) and the first-response times (business seconds,
-- sorted, delta-encoded varints) of the replies given that day. `requests`
-- counts the conversations opened on `day`, on the row whose `settled` is
-- `day` itself (0 on the others). Rebuilt with `tally_days`, by the same
-- job from the same marks in `tally_stale`.
CREATE TABLE record_days (
    day DATE NOT NULL,
    client_id TEXT NOT NULL,
    request_type TEXT NOT NULL,
    settled DATE NOT NULL,
    requests BIGINT NOT NULL,
    kept BIGINT NOT NULL,
    broken BIGINT NOT NULL,
    times BYTEA NOT NULL,
    PRIMARY KEY (client_id, day, request_type, settled)
);

-- The record also counts what the compliance tally does not read: a new
-- conversation (a request, with or without timers) and the due of a broken
-- promise (its settle day). Both mark the day with `tally_mark`.
CREATE FUNCTION record_conversations_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tally_mark(ARRAY(SELECT DISTINCT opened_at::date FROM new_conversations));
    RETURN NULL;
END
$$;

CREATE TRIGGER record_conversations_insert AFTER INSERT ON conversations
    REFERENCING NEW TABLE AS new_conversations
    FOR EACH STATEMENT EXECUTE FUNCTION record_conversations_inserted();

CREATE FUNCTION record_timers_due_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tally_mark(ARRAY(
        SELECT DISTINCT c.opened_at::date
          FROM conversations c
         WHERE c.id IN (
               SELECT n.conversation_id
                 FROM old_timers o JOIN new_timers n ON n.id = o.id
                WHERE o.due_at IS DISTINCT FROM n.due_at
                  AND n.status IN ('missed', 'breached'))));
    RETURN NULL;
END
$$;

CREATE TRIGGER record_timers_due AFTER UPDATE ON timers
    REFERENCING OLD TABLE AS old_timers NEW TABLE AS new_timers
    FOR EACH STATEMENT EXECUTE FUNCTION record_timers_due_moved();

-- The page's broken promises, newest due first, 50 at a time: walked in
-- this order and joined to the client's conversations by key.
CREATE INDEX timers_broken ON timers (due_at DESC, conversation_id DESC, id DESC)
    WHERE status IN ('missed', 'breached');

-- One client's compliance summaries (its page's kinds and medians), not
-- every client's days.
CREATE INDEX tally_days_client ON tally_days (client_id, day);

-- Every day is rebuilt by the job (the summaries of `tally_days` built
-- before this migration have no record rows).
INSERT INTO tally_stale (day)
    SELECT DISTINCT c.day FROM (SELECT opened_at::date AS day FROM conversations) c
     WHERE NOT EXISTS (SELECT 1 FROM tally_stale s WHERE s.day = c.day);
