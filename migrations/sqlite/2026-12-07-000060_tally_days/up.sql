-- The compliance report kept per day (README, "A year of history"): one
-- row per UTC day of the conversations' `opened_at` ('YYYY-MM-DD'),
-- request type, client and timer kind, with the counts and the day's reply
-- times (business seconds, sorted, delta-encoded varints).
CREATE TABLE tally_days (
    day DATE NOT NULL,
    request_type TEXT NOT NULL,
    client_id TEXT NOT NULL,
    timer TEXT NOT NULL,
    conversations INTEGER NOT NULL,
    met INTEGER NOT NULL,
    missed INTEGER NOT NULL,
    breached INTEGER NOT NULL,
    times BLOB NOT NULL,
    PRIMARY KEY (day, request_type, client_id, timer)
);

-- Days whose summary is missing or out of date: the report counts them
-- from the rows, and the rebuild job (src/tally.rs) takes them one by one.
-- SQLite has one writer, and the rebuild is a write transaction: no write
-- can fall between its reading a day and its clearing the mark.
CREATE TABLE tally_stale (
    day DATE PRIMARY KEY
);

-- Each mark is `INSERT OR IGNORE … WHERE NOT EXISTS`: inside a trigger the
-- outer statement's conflict handling overrides the trigger's own (the
-- timers' upsert made `OR IGNORE` alone fail on a day already marked).
CREATE TRIGGER tally_timers_insert AFTER INSERT ON timers
BEGIN
    INSERT OR IGNORE INTO tally_stale (day)
        SELECT date(opened_at) FROM conversations WHERE id = NEW.conversation_id
           AND NOT EXISTS (SELECT 1 FROM tally_stale WHERE day = date(opened_at));
END;

CREATE TRIGGER tally_timers_update AFTER UPDATE ON timers
    WHEN OLD.conversation_id IS NOT NEW.conversation_id OR OLD.kind IS NOT NEW.kind
      OR OLD.seq IS NOT NEW.seq OR OLD.status IS NOT NEW.status
      OR OLD.started_at IS NOT NEW.started_at OR OLD.stopped_at IS NOT NEW.stopped_at
BEGIN
    INSERT OR IGNORE INTO tally_stale (day)
        SELECT DISTINCT date(opened_at) FROM conversations
         WHERE id IN (OLD.conversation_id, NEW.conversation_id)
           AND NOT EXISTS (SELECT 1 FROM tally_stale WHERE day = date(opened_at));
END;

CREATE TRIGGER tally_timers_delete AFTER DELETE ON timers
BEGIN
    INSERT OR IGNORE INTO tally_stale (day)
        SELECT date(opened_at) FROM conversations WHERE id = OLD.conversation_id
           AND NOT EXISTS (SELECT 1 FROM tally_stale WHERE day = date(opened_at));
END;

CREATE TRIGGER tally_conversations_update
    AFTER UPDATE OF request_type, client_id, contract_version, opened_at ON conversations
    WHEN OLD.request_type IS NOT NEW.request_type OR OLD.client_id IS NOT NEW.client_id
      OR OLD.contract_version IS NOT NEW.contract_version
      OR OLD.opened_at IS NOT NEW.opened_at
BEGIN
    INSERT OR IGNORE INTO tally_stale (day) SELECT date(OLD.opened_at)
        WHERE NOT EXISTS (SELECT 1 FROM tally_stale WHERE day = date(OLD.opened_at));
    INSERT OR IGNORE INTO tally_stale (day) SELECT date(NEW.opened_at)
        WHERE NOT EXISTS (SELECT 1 FROM tally_stale WHERE day = date(NEW.opened_at));
END;

CREATE TRIGGER tally_conversations_delete AFTER DELETE ON conversations
BEGIN
    INSERT OR IGNORE INTO tally_stale (day) SELECT date(OLD.opened_at)
        WHERE NOT EXISTS (SELECT 1 FROM tally_stale WHERE day = date(OLD.opened_at));
END;

-- An upgraded database: every day with conversations is rebuilt by the
-- job, not here.
INSERT OR IGNORE INTO tally_stale (day)
    SELECT DISTINCT date(opened_at) FROM conversations;
