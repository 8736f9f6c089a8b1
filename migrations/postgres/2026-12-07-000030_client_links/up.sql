-- The client's own page (README, "The client's record"): links to it, each
-- kept only as the SHA-256 (hex) of its random token. `keepword client link`
-- deletes a client's rows and adds one, which revokes every older link; a
-- monthly report adds the link it carries.
CREATE TABLE client_links (
    token_hash TEXT NOT NULL PRIMARY KEY,
    client_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX client_links_client ON client_links (client_id);
