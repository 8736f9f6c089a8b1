-- The outbox worker asks after every step which row falls due first, and
-- claims the due ones in that order. Through `outbox_pending (sent_at,
-- available_at)` both also walked the refused rows and the warnings held
-- for a digest (unsent, their `available_at` long past) and the backlog
-- itself: with 50,000 notifications failing against an SMTP server that
-- is down, 28 and 20 ms a step, a step per event ingested (BENCHMARKS.md,
-- i.7). This index holds only what the worker may send: 0.04 and 0.25 ms.
-- Not on SQLite: its planner keeps to `outbox_pending`'s equality on
-- `sent_at` whatever the statistics say (3 ms at 50,000 there).
CREATE INDEX outbox_due ON outbox (available_at, id)
    WHERE sent_at IS NULL AND refused_at IS NULL AND digest_key IS NULL;
