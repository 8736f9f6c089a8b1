-- Retention and erasure (README, "Retention" and "Erasure").
-- A removed body keeps its row, emptied, with why it went: `retention:DAYS`
-- (the `[retention] bodies` in force then) or `erasure`. The timeline says
-- so instead of showing an empty message.
ALTER TABLE message_bodies ADD COLUMN removed TEXT;
-- How far the daily retention job got, per table: it walks message ids in
-- order from here, so a day's run never rereads a year already emptied.
CREATE TABLE retention_progress (
    what TEXT PRIMARY KEY NOT NULL,
    last_id BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- That an erasure took place: when, what kind of request, and the rows it
-- changed per table (JSON). Never the address or the client erased.
CREATE TABLE erasures (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    erased_at TIMESTAMP NOT NULL,
    kind TEXT NOT NULL,
    counts TEXT NOT NULL
);
