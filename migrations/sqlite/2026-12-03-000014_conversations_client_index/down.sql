CREATE INDEX conversations_client ON conversations(client_id);
