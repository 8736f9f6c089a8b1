-- The open conversations are counted by index-only scans (the `/metrics`
-- gauges at every scrape, the queue's counts), which visit the table for
-- every row on a page the visibility map does not mark all-visible. Those
-- are exactly the rows the engine updates all day, and by default autovacuum
-- passes a table only after a fifth of it changed: 400,000 updates at two
-- million conversations, meanwhile every count visits tens of thousands of
-- heap pages (BENCHMARKS.md, i.4 and i.6). One percent keeps the map close
-- to current; a pass over a mostly all-visible table reads only what changed.
ALTER TABLE conversations SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02
);
