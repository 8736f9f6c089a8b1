-- The open conversations and the urgent share are counted by index-only
-- scans (the `/metrics` gauges at every scrape, the queue's counts), which
-- visit the table for every row on a page the visibility map does not mark
-- all-visible. Those are exactly the rows the engine updates all day, and
-- two defaults kept their pages off the map (BENCHMARKS.md, i.8):
-- - autovacuum passes a table after a fifth of it changed: 400,000 updates
--   at two million conversations. One percent passes within a minute of a
--   burst (a service start re-evaluating 55,000 open conversations), and a
--   pass over a mostly all-visible table reads only what changed.
-- - a vacuum that finds dead row pointers on fewer than 2% of the pages
--   skips the indexes, and a page whose pointers it leaves cannot be marked
--   all-visible: the open conversations fill about 1.5% of the pages, so
--   every pass left them as they were (39,000 heap visits per count after a
--   plain VACUUM; none with index clean-up). `vacuum_index_cleanup = on`
--   makes every pass clean the indexes.
ALTER TABLE conversations SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02,
    vacuum_index_cleanup = on
);
