-- Reading a year of history (README, "A year of history"; BENCHMARKS.md,
-- section i). The queue's second segment, unsolved conversations with
-- nothing due (every timer paused) newest first, gets an index of its own,
-- as on PostgreSQL. SQLite has no INCLUDE: its tally reads through the
-- indexes it has, and meets its targets at 300,000 conversations.
CREATE INDEX conversations_queue_undue ON conversations (id)
    WHERE status <> 'solved' AND next_due_at IS NULL;
