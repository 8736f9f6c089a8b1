-- What made the per-day summaries of the compliance report: the counting
-- rules and business-time code of the keepword that built them, and the
-- time-zone database it carried. A keepword whose rules differ marks every
-- day stale at start (src/tally.rs), since no write would: the rows did
-- not change, what they count to did.
CREATE TABLE tally_rules (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    rules TEXT NOT NULL
);
