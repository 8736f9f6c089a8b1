-- The compliance report kept per day (README, "A year of history"): one
-- row per UTC day of the conversations' `opened_at`, request type, client
-- and timer kind, with the counts and the day's reply times (business
-- seconds, sorted, delta-encoded varints). A year's report reads these
-- instead of millions of timers.
CREATE TABLE tally_days (
    day DATE NOT NULL,
    request_type TEXT NOT NULL,
    client_id TEXT NOT NULL,
    timer TEXT NOT NULL,
    conversations BIGINT NOT NULL,
    met BIGINT NOT NULL,
    missed BIGINT NOT NULL,
    breached BIGINT NOT NULL,
    times BYTEA NOT NULL,
    PRIMARY KEY (day, request_type, client_id, timer)
);

-- Days whose summary is missing or out of date: the report counts them
-- from the rows, and the rebuild job (src/tally.rs) takes them one by one.
-- No unique key: two writers marking the same new day must not wait for
-- each other (an insert waits for an uncommitted one of the same key, and
-- writers marking two days in opposite orders deadlocked). A day may be
-- marked twice; the rebuild deletes all its marks.
CREATE TABLE tally_stale (
    day DATE NOT NULL
);
CREATE INDEX tally_stale_day ON tally_stale (day);

-- The lock that orders writers and the rebuild of a day: a transaction-
-- level advisory lock on (27511, days since 1970-01-01). A writer holds it
-- shared from its mark to its commit, so writers never wait for each other;
-- the rebuild takes it exclusive before it deletes the day's marks, which
-- waits for every writer that marked the day and has not committed (the
-- rebuild then reads their writes), and a writer marking meanwhile waits
-- for the rebuild's commit (the day is then marked again). PostgreSQL
-- queues a shared request behind a waiting exclusive one, so a stream of
-- writers cannot starve the rebuild.
CREATE FUNCTION tally_mark(days DATE[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    d DATE;
BEGIN
    IF days IS NULL OR cardinality(days) = 0 THEN
        RETURN;
    END IF;
    FOR d IN SELECT DISTINCT x FROM unnest(days) AS x WHERE x IS NOT NULL ORDER BY x LOOP
        PERFORM pg_advisory_xact_lock_shared(27511, d - DATE '1970-01-01');
    END LOOP;
    INSERT INTO tally_stale (day)
        SELECT DISTINCT x FROM unnest(days) AS x
         WHERE x IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tally_stale s WHERE s.day = x);
END
$$;

-- Marks the opened days of the conversations `ids`.
CREATE FUNCTION tally_mark_conversations(ids BIGINT[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tally_mark(ARRAY(
        SELECT DISTINCT opened_at::date FROM conversations WHERE id = ANY (ids)));
END
$$;

-- Timers: once per statement (a batch's upsert, a bulk load), the
-- conversations whose timers changed what a tally reads: inserted, deleted,
-- or updated in a column the tally reads (not `due_at`).
CREATE FUNCTION tally_timers_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM tally_mark_conversations(ARRAY(SELECT DISTINCT conversation_id FROM new_timers));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM tally_mark_conversations(ARRAY(SELECT DISTINCT conversation_id FROM old_timers));
    ELSE
        PERFORM tally_mark_conversations(ARRAY(
            SELECT DISTINCT unnest(ARRAY[o.conversation_id, n.conversation_id])
              FROM old_timers o JOIN new_timers n ON n.id = o.id
             WHERE (o.conversation_id, o.kind, o.seq, o.status, o.started_at, o.stopped_at)
                   IS DISTINCT FROM
                   (n.conversation_id, n.kind, n.seq, n.status, n.started_at, n.stopped_at)));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tally_timers_insert AFTER INSERT ON timers
    REFERENCING NEW TABLE AS new_timers
    FOR EACH STATEMENT EXECUTE FUNCTION tally_timers_changed();
CREATE TRIGGER tally_timers_update AFTER UPDATE ON timers
    REFERENCING OLD TABLE AS old_timers NEW TABLE AS new_timers
    FOR EACH STATEMENT EXECUTE FUNCTION tally_timers_changed();
CREATE TRIGGER tally_timers_delete AFTER DELETE ON timers
    REFERENCING OLD TABLE AS old_timers
    FOR EACH STATEMENT EXECUTE FUNCTION tally_timers_changed();

-- Conversations: a change of what the tally groups or counts by (rare: a
-- row each), or a deletion; the old day and the new.
CREATE FUNCTION tally_conversation_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM tally_mark(ARRAY[OLD.opened_at::date]);
    ELSE
        PERFORM tally_mark(ARRAY[OLD.opened_at::date, NEW.opened_at::date]);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tally_conversations_update
    AFTER UPDATE OF request_type, client_id, contract_version, opened_at ON conversations
    FOR EACH ROW
    WHEN ((OLD.request_type, OLD.client_id, OLD.contract_version, OLD.opened_at)
          IS DISTINCT FROM
          (NEW.request_type, NEW.client_id, NEW.contract_version, NEW.opened_at))
    EXECUTE FUNCTION tally_conversation_changed();
CREATE TRIGGER tally_conversations_delete AFTER DELETE ON conversations
    FOR EACH ROW EXECUTE FUNCTION tally_conversation_changed();

-- An upgraded database: every day with conversations is rebuilt by the
-- job, not here (a migration holds its locks until it ends).
INSERT INTO tally_stale (day)
    SELECT DISTINCT opened_at::date FROM conversations;
