-- Reading a year of history (README, "A year of history"; the plans are in
-- BENCHMARKS.md, section i).
--
-- The queue's second segment, unsolved conversations with nothing due
-- (every timer paused) newest first: without an index of its own the planner
-- walks the primary key backwards through every solved conversation.
CREATE INDEX conversations_queue_undue ON conversations (id)
    WHERE status <> 'solved' AND next_due_at IS NULL;
-- A period's conversations with the columns a tally counts, read from the
-- index alone once the pages are all-visible; it serves every reader of
-- `opened_at` (the urgent share at each scrape too), so the plain index goes.
CREATE INDEX conversations_tally ON conversations (opened_at)
    INCLUDE (id, client_id, request_type, contract_version, subject);
DROP INDEX conversations_opened;
-- A period's timers as one range of conversation ids, in the order the
-- tally reads them: no sort, no heap (settled timers do not change).
CREATE INDEX timers_tally ON timers (conversation_id, kind, seq)
    INCLUDE (id, status, started_at, due_at, stopped_at);
