-- The client's status page (SPEC 12): one random token per conversation,
-- kept only as its SHA-256 (hex), so a copy of the database opens no page.
CREATE TABLE status_links (
    token_hash TEXT NOT NULL PRIMARY KEY,
    conversation_id BIGINT NOT NULL UNIQUE REFERENCES conversations(id),
    created_at TIMESTAMP NOT NULL
);
