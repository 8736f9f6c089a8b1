-- A client's open requests, the one due soonest first (the client's page
-- and the team's view of it; README, "A year of history"): read as a range
-- of this index and stopped after a page, where the queue's index of every
-- open conversation had to be filtered by client and the client's open
-- conversations sorted whole.
CREATE INDEX conversations_client_open ON conversations (client_id, next_due_at, id)
    WHERE status <> 'solved';
