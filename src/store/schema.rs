//! Hand-written diesel schema, shared by both backends. `tests/storage/store.rs`
//! checks it against the migrations of each backend by running every query.

diesel::table! {
    contract_versions (version) {
        version -> Text,
        name -> Text,
        source -> Text,
        first_loaded_at -> Timestamp,
    }
}

diesel::table! {
    clients (id) {
        id -> Text,
        name -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    conversations (id) {
        id -> BigInt,
        channel -> Text,
        thread_key -> Text,
        client_id -> Text,
        subject -> Text,
        request_type -> Text,
        classification -> Text,
        contract_version -> Text,
        status -> Text,
        channel_mismatch -> Bool,
        opened_at -> Timestamp,
        updated_at -> Timestamp,
        solved_at -> Nullable<Timestamp>,
        health -> Text,
        next_check_at -> Nullable<Timestamp>,
        subject_key -> Text,
        opener -> Text,
        last_message_at -> Nullable<Timestamp>,
        next_due_at -> Nullable<Timestamp>,
        next_timer -> Text,
        paused_since -> Nullable<Timestamp>,
    }
}

diesel::table! {
    messages (id) {
        id -> BigInt,
        conversation_id -> Nullable<BigInt>,
        channel -> Text,
        external_id -> Text,
        direction -> Text,
        sender -> Text,
        recipients -> Text,
        subject -> Text,
        message_id -> Nullable<Text>,
        in_reply_to -> Nullable<Text>,
        refs -> Text,
        sent_at -> Timestamp,
        received_at -> Timestamp,
        status -> Nullable<Text>,
        awaiting_client -> Bool,
    }
}

diesel::table! {
    timers (id) {
        id -> BigInt,
        conversation_id -> BigInt,
        kind -> Text,
        seq -> Integer,
        status -> Text,
        started_at -> Timestamp,
        due_at -> Nullable<Timestamp>,
        stopped_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    escalations_fired (id) {
        id -> BigInt,
        conversation_id -> BigInt,
        timer_kind -> Text,
        timer_seq -> Integer,
        step -> Text,
        due_at -> Timestamp,
        fired_at -> Timestamp,
        late -> Bool,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        kind -> Text,
        target -> Text,
        payload -> Text,
        dedupe_key -> Text,
        created_at -> Timestamp,
        available_at -> Timestamp,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<Timestamp>,
        not_before -> Nullable<Timestamp>,
        digest_key -> Nullable<Text>,
        conversation_id -> Nullable<BigInt>,
        step -> Nullable<Text>,
        contact -> Nullable<Text>,
        refused_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    mailbox_checkpoints (mailbox, folder) {
        mailbox -> Text,
        folder -> Text,
        uidvalidity -> BigInt,
        last_uid -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    rejected_input (id) {
        id -> BigInt,
        channel -> Text,
        reason -> Text,
        detail -> Text,
        raw -> Binary,
        received_at -> Timestamp,
    }
}

diesel::table! {
    dashboard_sessions (id_hash) {
        id_hash -> Text,
        csrf -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::joinable!(conversations -> clients (client_id));
diesel::joinable!(conversations -> contract_versions (contract_version));
diesel::joinable!(messages -> conversations (conversation_id));
diesel::joinable!(timers -> conversations (conversation_id));
diesel::joinable!(escalations_fired -> conversations (conversation_id));

diesel::allow_tables_to_appear_in_same_query!(
    contract_versions,
    clients,
    conversations,
    messages,
    timers,
    escalations_fired,
    outbox,
    mailbox_checkpoints,
    rejected_input,
);

diesel::table! {
    status_links (token_hash) {
        token_hash -> Text,
        conversation_id -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::joinable!(status_links -> conversations (conversation_id));
diesel::allow_tables_to_appear_in_same_query!(status_links, conversations);

diesel::table! {
    message_bodies (message_id) {
        message_id -> BigInt,
        body -> Text,
        raw -> Nullable<Binary>,
        removed -> Nullable<Text>,
    }
}

diesel::joinable!(message_bodies -> messages (message_id));
diesel::allow_tables_to_appear_in_same_query!(message_bodies, messages);

diesel::table! {
    client_links (token_hash) {
        token_hash -> Text,
        client_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    retention_progress (what) {
        what -> Text,
        last_id -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    erasures (id) {
        id -> BigInt,
        erased_at -> Timestamp,
        kind -> Text,
        counts -> Text,
    }
}

diesel::table! {
    tally_days (day, request_type, client_id, timer) {
        day -> Date,
        request_type -> Text,
        client_id -> Text,
        timer -> Text,
        conversations -> BigInt,
        met -> BigInt,
        missed -> BigInt,
        breached -> BigInt,
        times -> Binary,
    }
}

diesel::table! {
    tally_stale (day) {
        day -> Date,
    }
}

diesel::table! {
    tally_rules (id) {
        id -> Integer,
        rules -> Text,
    }
}

diesel::table! {
    record_days (client_id, day, request_type, settled) {
        day -> Date,
        client_id -> Text,
        request_type -> Text,
        settled -> Date,
        requests -> BigInt,
        kept -> BigInt,
        broken -> BigInt,
        times -> Binary,
    }
}
