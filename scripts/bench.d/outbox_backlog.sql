-- The outbox worker's reads with a backlog (BENCHMARKS.md, i.7), with and
-- without `outbox_due`, in one run. On a new database:
--   createdb -h 127.0.0.1 -U postgres kw_outbox
--   keepword migrate --database-url postgres://postgres@127.0.0.1:5432/kw_outbox
--   psql -h 127.0.0.1 -U postgres kw_outbox -f scripts/bench.d/outbox_backlog.sql
-- The shape: a year of delivered notifications (2 M), an SMTP server down
-- for a while (50,000 failing, due again over the next five minutes), 2,000
-- refused for good, 5,000 warnings held for tomorrow's digests. "Now" is
-- fixed at 2026-12-07 12:00 so every run reads the same rows.
\set ON_ERROR_STOP on
INSERT INTO outbox (kind, target, payload, dedupe_key, created_at, available_at, attempts, sent_at)
SELECT 'email', 'a@example.com', '{}', 'sent-' || g, t, t, 1, t
  FROM generate_series(1, 2000000) g, LATERAL (SELECT timestamp '2025-12-07 12:00' + g * interval '15 s' AS t) x;
INSERT INTO outbox (kind, target, payload, dedupe_key, created_at, available_at, attempts, last_error)
SELECT 'email', 'a@example.com', '{}', 'failing-' || g, timestamp '2026-12-07 11:00',
       timestamp '2026-12-07 12:00' + (g % 300 - 5) * interval '1 s', 8, 'connection refused'
  FROM generate_series(1, 50000) g;
INSERT INTO outbox (kind, target, payload, dedupe_key, created_at, available_at, attempts, refused_at, last_error)
SELECT 'webhook', 'https://example.com/hook', '{}', 'refused-' || g, timestamp '2026-12-06 12:00',
       timestamp '2026-12-06 12:00', 1, timestamp '2026-12-06 12:00', '410 Gone'
  FROM generate_series(1, 2000) g;
INSERT INTO outbox (kind, target, payload, dedupe_key, created_at, available_at, attempts, not_before, digest_key)
SELECT 'email', 'a@example.com', '{}', 'held-' || g, timestamp '2026-12-07 10:00',
       timestamp '2026-12-07 11:00', 0, timestamp '2026-12-08 09:00', 'digest:' || (g % 50)
  FROM generate_series(1, 5000) g;
VACUUM ANALYZE outbox;

-- What the worker sends after every step (src/store/outbox.rs).
PREPARE claim AS SELECT id FROM outbox
 WHERE sent_at IS NULL AND refused_at IS NULL AND digest_key IS NULL
   AND available_at <= timestamp '2026-12-07 12:00'
 ORDER BY available_at, id LIMIT 50 FOR UPDATE SKIP LOCKED;
PREPARE next_due AS SELECT min(available_at) FROM outbox
 WHERE sent_at IS NULL AND refused_at IS NULL AND digest_key IS NULL;
PREPARE backlog_count AS SELECT count(*) FROM outbox
 WHERE sent_at IS NULL AND refused_at IS NULL
   AND (not_before IS NULL OR not_before <= timestamp '2026-12-07 12:00');

\echo '--- without outbox_due'
DROP INDEX outbox_due;
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE claim;
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE next_due;
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE backlog_count;
\echo '--- with outbox_due'
CREATE INDEX outbox_due ON outbox (available_at, id)
    WHERE sent_at IS NULL AND refused_at IS NULL AND digest_key IS NULL;
ANALYZE outbox;
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE claim;
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE next_due;
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE backlog_count;
