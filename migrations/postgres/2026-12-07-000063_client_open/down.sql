DROP INDEX conversations_client_open;
