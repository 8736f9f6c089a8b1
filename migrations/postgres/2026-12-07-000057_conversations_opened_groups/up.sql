-- The urgent share (`keepword_urgent_share`, at every scrape, and the
-- queue's banner) counts the last 30 days' conversations by client,
-- contract version and request type: 165,000 rows at two million a year.
-- `conversations_tally` covers it too but carries each subject: read
-- through this narrower index it takes 65 ms instead of 110 (BENCHMARKS.md,
-- i.8). 4 s to build at two million conversations.
CREATE INDEX conversations_opened_groups ON conversations (opened_at)
    INCLUDE (client_id, contract_version, request_type);
