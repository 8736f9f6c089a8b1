-- Instants are UTC, stored as TIMESTAMP text with microsecond precision.
CREATE TABLE contract_versions (
    version TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    first_loaded_at TIMESTAMP NOT NULL
);

CREATE TABLE clients (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    channel TEXT NOT NULL,
    thread_key TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id),
    subject TEXT NOT NULL,
    request_type TEXT NOT NULL,
    classification TEXT NOT NULL,
    contract_version TEXT NOT NULL REFERENCES contract_versions(version),
    status TEXT NOT NULL,
    channel_mismatch BOOLEAN NOT NULL DEFAULT 0,
    opened_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    solved_at TIMESTAMP,
    UNIQUE (channel, thread_key)
);
CREATE INDEX conversations_client ON conversations(client_id);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    conversation_id BIGINT REFERENCES conversations(id),
    channel TEXT NOT NULL,
    external_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    sender TEXT NOT NULL,
    recipients TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    message_id TEXT,
    in_reply_to TEXT,
    refs TEXT NOT NULL,
    raw BLOB,
    sent_at TIMESTAMP NOT NULL,
    received_at TIMESTAMP NOT NULL,
    UNIQUE (channel, external_id)
);
CREATE INDEX messages_conversation ON messages(conversation_id);
CREATE INDEX messages_message_id ON messages(message_id);

CREATE TABLE timers (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    conversation_id BIGINT NOT NULL REFERENCES conversations(id),
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    due_at TIMESTAMP,
    stopped_at TIMESTAMP,
    UNIQUE (conversation_id, kind, seq)
);
CREATE INDEX timers_running_due ON timers(status, due_at);

CREATE TABLE escalations_fired (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    conversation_id BIGINT NOT NULL REFERENCES conversations(id),
    timer_kind TEXT NOT NULL,
    timer_seq INTEGER NOT NULL,
    step TEXT NOT NULL,
    due_at TIMESTAMP NOT NULL,
    fired_at TIMESTAMP NOT NULL,
    late BOOLEAN NOT NULL,
    UNIQUE (conversation_id, timer_kind, timer_seq, step)
);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    payload TEXT NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    available_at TIMESTAMP NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at TIMESTAMP
);
CREATE INDEX outbox_pending ON outbox(sent_at, available_at);

CREATE TABLE mailbox_checkpoints (
    mailbox TEXT NOT NULL,
    folder TEXT NOT NULL,
    uidvalidity BIGINT NOT NULL,
    last_uid BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (mailbox, folder)
);

CREATE TABLE rejected_input (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    channel TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    raw BLOB NOT NULL,
    received_at TIMESTAMP NOT NULL
);
