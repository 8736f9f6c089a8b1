-- Issue 9: mail, acknowledgements and long References headers are stored
-- compressed with lz4 instead of PostgreSQL's default pglz. Profiled while
-- ingesting a realistic mailbox (12 KB mails, one in twenty with a 20-300 KB
-- attachment), pglz_compress was two thirds of the database's CPU; lz4
-- compresses about as well for this text and base64, several times faster.
-- A server built without lz4 keeps pglz: the migration must not fail there.
DO $$
BEGIN
    ALTER TABLE message_bodies
        ALTER COLUMN body SET COMPRESSION lz4,
        ALTER COLUMN raw SET COMPRESSION lz4;
    ALTER TABLE messages ALTER COLUMN refs SET COMPRESSION lz4;
    ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'lz4 is not available (%); mail stays compressed with pglz', SQLERRM;
END $$;
