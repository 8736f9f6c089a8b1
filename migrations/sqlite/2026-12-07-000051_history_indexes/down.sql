DROP INDEX conversations_queue_undue;
