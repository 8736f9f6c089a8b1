DO $$
BEGIN
    ALTER TABLE message_bodies
        ALTER COLUMN body SET COMPRESSION default,
        ALTER COLUMN raw SET COMPRESSION default;
    ALTER TABLE messages ALTER COLUMN refs SET COMPRESSION default;
    ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION default;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'compression left as it is (%)', SQLERRM;
END $$;
