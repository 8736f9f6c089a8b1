-- The team dashboard (issue 8).
-- The queue sorts open conversations by the due of the timer that falls due
-- next (breached ones by how late they are): stored by each refresh, so the
-- queue is one indexed range scan, not an evaluation per row. `paused_since`
-- is when the conversation started waiting on the client.
ALTER TABLE conversations ADD COLUMN next_due_at TIMESTAMP;
ALTER TABLE conversations ADD COLUMN next_timer TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN paused_since TIMESTAMP;
CREATE INDEX conversations_queue ON conversations(next_due_at, id) WHERE status <> 'solved';
CREATE INDEX conversations_solved ON conversations(solved_at, id) WHERE status = 'solved';
-- The queue's counts per health (with its filters) read this index alone.
CREATE INDEX conversations_open_counts ON conversations(health, client_id, request_type, channel, status) WHERE status <> 'solved';
-- Dashboard sessions live in the database so that any process behind a load
-- balancer knows them; the id is stored only as its SHA-256.
CREATE TABLE dashboard_sessions (
    id_hash TEXT PRIMARY KEY NOT NULL,
    csrf TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions(expires_at);
