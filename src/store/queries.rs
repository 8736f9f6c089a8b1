//! Queries per aggregate. Each takes `&mut AnyConnection` so a use case can
//! compose several in one transaction (`Store::transaction`). Rows (what is
//! read) are kept apart from `New*` forms (what is written).

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::*;
use super::{AnyConnection, StoreError, to_db};
use crate::on_backend;

type Result<T> = std::result::Result<T, StoreError>;

// ---------------------------------------------------------------- contracts

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = contract_versions)]
pub struct ContractVersionRow {
    pub version: String,
    pub name: String,
    pub source: String,
    pub first_loaded_at: NaiveDateTime,
}

/// Keeps a contract version (its source text) once; returns whether it was new.
/// Conversations reference the version they opened under, so past versions
/// stay in the database after the contract changes.
pub fn record_contract_version(
    conn: &mut AnyConnection,
    version: &str,
    name: &str,
    source: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let row = ContractVersionRow {
        version: version.into(),
        name: name.into(),
        source: source.into(),
        first_loaded_at: to_db(now),
    };
    let n = on_backend!(conn, |c| diesel::insert_into(contract_versions::table)
        .values(&row)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

pub fn contract_version(conn: &mut AnyConnection, v: &str) -> Result<Option<ContractVersionRow>> {
    Ok(contract_versions::table
        .find(v)
        .select(ContractVersionRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn contract_versions_list(conn: &mut AnyConnection) -> Result<Vec<ContractVersionRow>> {
    Ok(contract_versions::table
        .order(contract_versions::first_loaded_at.asc())
        .select(ContractVersionRow::as_select())
        .load(conn)?)
}

// ---------------------------------------------------------------- clients

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = clients)]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub created_at: NaiveDateTime,
}

/// Creates the client or updates its display name (the contract may rename it).
///
/// Looks first and writes only when something changes: an `ON CONFLICT DO
/// UPDATE` locks the client's row until commit even when the name is the same,
/// so on PostgreSQL every transaction opening a conversation for one client
/// waited for the previous one (measured with `scripts/bench`: 190 new
/// conversations/s, p50 72 ms).
pub fn upsert_client(
    conn: &mut AnyConnection,
    id: &str,
    name: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    if client(conn, id)?.is_some_and(|c| c.name == name) {
        return Ok(());
    }
    let row = ClientRow {
        id: id.into(),
        name: name.into(),
        created_at: to_db(now),
    };
    on_backend!(conn, |c| diesel::insert_into(clients::table)
        .values(&row)
        .on_conflict(clients::id)
        .do_update()
        .set(clients::name.eq(name))
        .execute(c))?;
    Ok(())
}

pub fn client(conn: &mut AnyConnection, id: &str) -> Result<Option<ClientRow>> {
    Ok(clients::table
        .find(id)
        .select(ClientRow::as_select())
        .first(conn)
        .optional()?)
}

// ---------------------------------------------------------------- conversations

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = conversations)]
pub struct ConversationRow {
    pub id: i64,
    pub channel: String,
    pub thread_key: String,
    pub client_id: String,
    pub subject: String,
    pub request_type: String,
    pub classification: String,
    pub contract_version: String,
    pub status: String,
    pub channel_mismatch: bool,
    pub opened_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub solved_at: Option<NaiveDateTime>,
    pub health: String,
    pub next_check_at: Option<NaiveDateTime>,
    pub subject_key: String,
    pub opener: String,
    pub last_message_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = conversations)]
pub struct NewConversation {
    pub channel: String,
    pub thread_key: String,
    pub client_id: String,
    pub subject: String,
    pub request_type: String,
    pub classification: String,
    pub contract_version: String,
    pub status: String,
    pub channel_mismatch: bool,
    pub opened_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Normalised subject, for threading email by subject.
    pub subject_key: String,
    /// The opening sender's address, lower-case (empty when unknown).
    pub opener: String,
    pub last_message_at: Option<NaiveDateTime>,
}

/// Opens the conversation of `(channel, thread_key)`, or returns the one that
/// already exists: `(id, created)`.
pub fn open_conversation(conn: &mut AnyConnection, new: &NewConversation) -> Result<(i64, bool)> {
    let new = &NewConversation {
        thread_key: text(&new.thread_key),
        subject: text(&new.subject),
        subject_key: text(&new.subject_key),
        ..new.clone()
    };
    let inserted = on_backend!(conn, |c| diesel::insert_into(conversations::table)
        .values(new)
        .on_conflict((conversations::channel, conversations::thread_key))
        .do_nothing()
        .execute(c))?;
    let id = conversations::table
        .filter(conversations::channel.eq(&new.channel))
        .filter(conversations::thread_key.eq(&new.thread_key))
        .select(conversations::id)
        .first(conn)?;
    Ok((id, inserted == 1))
}

pub fn conversation(conn: &mut AnyConnection, id: i64) -> Result<Option<ConversationRow>> {
    Ok(conversations::table
        .find(id)
        .select(ConversationRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn set_conversation_status(
    conn: &mut AnyConnection,
    id: i64,
    status: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let solved_at = (status == "solved").then(|| to_db(now));
    diesel::update(conversations::table.find(id))
        .set((
            conversations::status.eq(status),
            conversations::updated_at.eq(to_db(now)),
            conversations::solved_at.eq(solved_at),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn conversation_by_thread(
    conn: &mut AnyConnection,
    channel: &str,
    thread: &str,
) -> Result<Option<ConversationRow>> {
    // Looked up as stored (see `text`): a NUL in the key must not make
    // PostgreSQL refuse the query.
    Ok(conversations::table
        .filter(conversations::channel.eq(text(channel)))
        .filter(conversations::thread_key.eq(text(thread)))
        .select(ConversationRow::as_select())
        .first(conn)
        .optional()?)
}

/// Stores what the SLA engine derived: status, health and when to look again.
pub fn update_conversation_state(
    conn: &mut AnyConnection,
    id: i64,
    status: &str,
    health: &str,
    next_check_at: Option<DateTime<Utc>>,
    solved_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<()> {
    diesel::update(conversations::table.find(id))
        .set((
            conversations::status.eq(status),
            conversations::health.eq(health),
            conversations::next_check_at.eq(next_check_at.map(to_db)),
            conversations::solved_at.eq(solved_at.map(to_db)),
            conversations::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(())
}

/// The earliest instant any conversation must be looked at again: what the
/// scheduler sleeps until. One indexed lookup, whatever the number of
/// conversations.
pub fn earliest_check(conn: &mut AnyConnection) -> Result<Option<NaiveDateTime>> {
    Ok(conversations::table
        .select(diesel::dsl::min(conversations::next_check_at))
        .first::<Option<NaiveDateTime>>(conn)?)
}

/// Conversations whose check time has come, oldest first. On PostgreSQL the
/// rows are locked `FOR UPDATE SKIP LOCKED`, so several processes share the
/// due work without taking the same conversation; call inside a transaction.
pub fn claim_due_conversations(
    conn: &mut AnyConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ConversationRow>> {
    // A macro, not a value: each backend needs its own query type.
    macro_rules! due {
        () => {
            conversations::table
                .filter(conversations::next_check_at.le(to_db(now)))
                .order(conversations::next_check_at.asc())
                .limit(limit)
                .select(ConversationRow::as_select())
        };
    }
    Ok(match conn {
        AnyConnection::Postgresql(c) => due!().for_update().skip_locked().load(c)?,
        AnyConnection::Sqlite(c) => due!().load(c)?,
    })
}

#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub health: Option<String>,
    pub client: Option<String>,
    pub request_type: Option<String>,
    pub status: Option<String>,
    /// Return conversations with an id below this (paging, newest first).
    pub before_id: Option<i64>,
    pub limit: i64,
}

pub fn list_conversations(
    conn: &mut AnyConnection,
    f: &ConversationFilter,
) -> Result<Vec<ConversationRow>> {
    let mut q = conversations::table
        .select(ConversationRow::as_select())
        .order(conversations::id.desc())
        .limit(f.limit)
        .into_boxed();
    if let Some(h) = &f.health {
        q = q.filter(conversations::health.eq(h.clone()));
    }
    if let Some(c) = &f.client {
        q = q.filter(conversations::client_id.eq(c.clone()));
    }
    if let Some(t) = &f.request_type {
        q = q.filter(conversations::request_type.eq(t.clone()));
    }
    if let Some(s) = &f.status {
        q = q.filter(conversations::status.eq(s.clone()));
    }
    if let Some(b) = f.before_id {
        q = q.filter(conversations::id.lt(b));
    }
    Ok(q.load(conn)?)
}

/// Open conversations by request type and health (the
/// `keepword_conversations_open` gauge).
pub fn open_counts(conn: &mut AnyConnection) -> Result<Vec<(String, String, i64)>> {
    Ok(conversations::table
        .filter(conversations::status.ne("solved"))
        .group_by((conversations::request_type, conversations::health))
        .select((
            conversations::request_type,
            conversations::health,
            diesel::dsl::count_star(),
        ))
        .load(conn)?)
}

// ---------------------------------------------------------------- messages

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = messages)]
pub struct MessageRow {
    pub id: i64,
    pub conversation_id: Option<i64>,
    pub channel: String,
    pub external_id: String,
    pub direction: String,
    pub sender: String,
    pub recipients: String,
    pub subject: String,
    pub body: String,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub refs: String,
    pub raw: Option<Vec<u8>>,
    pub sent_at: NaiveDateTime,
    pub received_at: NaiveDateTime,
    pub status: Option<String>,
    pub awaiting_client: bool,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = messages)]
pub struct NewMessage {
    pub conversation_id: Option<i64>,
    pub channel: String,
    /// Idempotency key within the channel: event id, delivery id, Message-ID.
    pub external_id: String,
    pub direction: String,
    pub sender: String,
    pub recipients: String,
    pub subject: String,
    pub body: String,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub refs: String,
    pub raw: Option<Vec<u8>>,
    pub sent_at: NaiveDateTime,
    pub received_at: NaiveDateTime,
    /// A ticket status the event set (`open`, `pending`, `solved`).
    pub status: Option<String>,
    /// An outbound that asks the client something: resolution waits on them.
    pub awaiting_client: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New(i64),
    /// The same `(channel, external_id)` was stored before: nothing was written.
    Duplicate(i64),
}

impl Inserted {
    pub fn id(self) -> i64 {
        match self {
            Inserted::New(id) | Inserted::Duplicate(id) => id,
        }
    }
}

/// PostgreSQL text cannot hold NUL; mail and webhook bodies sometimes do.
/// Replaced the same way on both backends so they store the same text.
fn text(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

fn clean_message(m: &NewMessage) -> NewMessage {
    NewMessage {
        channel: text(&m.channel),
        external_id: text(&m.external_id),
        direction: text(&m.direction),
        sender: text(&m.sender),
        recipients: text(&m.recipients),
        subject: text(&m.subject),
        body: text(&m.body),
        message_id: m.message_id.as_deref().map(text),
        in_reply_to: m.in_reply_to.as_deref().map(text),
        refs: text(&m.refs),
        status: m.status.as_deref().map(text),
        ..m.clone()
    }
}

pub fn insert_message(conn: &mut AnyConnection, new: &NewMessage) -> Result<Inserted> {
    let new = &clean_message(new);
    let n = on_backend!(conn, |c| diesel::insert_into(messages::table)
        .values(new)
        .on_conflict((messages::channel, messages::external_id))
        .do_nothing()
        .execute(c))?;
    let id = messages::table
        .filter(messages::channel.eq(&new.channel))
        .filter(messages::external_id.eq(&new.external_id))
        .select(messages::id)
        .first(conn)?;
    Ok(if n == 1 {
        Inserted::New(id)
    } else {
        Inserted::Duplicate(id)
    })
}

/// The message stored under `(channel, external_id)`, if any: its id and
/// conversation.
pub fn message_by_external_id(
    conn: &mut AnyConnection,
    channel: &str,
    external_id: &str,
) -> Result<Option<(i64, Option<i64>)>> {
    Ok(messages::table
        .filter(messages::channel.eq(text(channel)))
        .filter(messages::external_id.eq(text(external_id)))
        .select((messages::id, messages::conversation_id))
        .first(conn)
        .optional()?)
}

/// The conversation a Message-ID belongs to, if any (email threading).
pub fn conversation_of_message_id(
    conn: &mut AnyConnection,
    message_id: &str,
) -> Result<Option<i64>> {
    Ok(messages::table
        .filter(messages::message_id.eq(message_id))
        .filter(messages::conversation_id.is_not_null())
        .select(messages::conversation_id)
        .first::<Option<i64>>(conn)
        .optional()?
        .flatten())
}

/// The latest conversation of a client with this normalised subject and
/// activity since `since`.
pub fn conversation_by_subject(
    conn: &mut AnyConnection,
    client: &str,
    subject_key: &str,
    since: DateTime<Utc>,
) -> Result<Option<i64>> {
    Ok(conversations::table
        .filter(conversations::client_id.eq(client))
        .filter(conversations::subject_key.eq(subject_key))
        .filter(conversations::last_message_at.ge(to_db(since)))
        .order(conversations::last_message_at.desc())
        .select(conversations::id)
        .first(conn)
        .optional()?)
}

/// The most recent conversation opened by `address` (lower-case) with this
/// normalised subject and mail at or after `since`.
pub fn conversation_by_opener_subject(
    conn: &mut AnyConnection,
    address: &str,
    subject_key: &str,
    since: DateTime<Utc>,
) -> Result<Option<i64>> {
    Ok(conversations::table
        .filter(conversations::opener.eq(address))
        .filter(conversations::subject_key.eq(subject_key))
        .filter(conversations::last_message_at.ge(to_db(since)))
        .order(conversations::last_message_at.desc())
        .select(conversations::id)
        .first(conn)
        .optional()?)
}

/// Moves a conversation's latest message instant forward to `at` (never
/// back: mail arrives out of order).
pub fn touch_conversation(conn: &mut AnyConnection, id: i64, at: DateTime<Utc>) -> Result<()> {
    let at = to_db(at);
    diesel::update(
        conversations::table.find(id).filter(
            conversations::last_message_at
                .is_null()
                .or(conversations::last_message_at.lt(at)),
        ),
    )
    .set(conversations::last_message_at.eq(at))
    .execute(conn)?;
    Ok(())
}

/// Whether an acknowledgement went to `address` since `since`.
pub fn acknowledged_since(
    conn: &mut AnyConnection,
    address: &str,
    since: DateTime<Utc>,
) -> Result<bool> {
    let n: i64 = messages::table
        .filter(messages::direction.eq("auto"))
        .filter(messages::recipients.eq(address))
        .filter(messages::external_id.like("ack:%"))
        .filter(messages::sent_at.ge(to_db(since)))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// What the SLA engine needs of a message: no bodies, no raw bytes.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = messages)]
pub struct EventRow {
    pub direction: String,
    pub status: Option<String>,
    pub awaiting_client: bool,
    pub sent_at: NaiveDateTime,
}

/// The events of a conversation in order, for the SLA engine. Re-read on
/// every refresh, so it loads only the four columns the engine uses.
pub fn events_of(conn: &mut AnyConnection, conversation: i64) -> Result<Vec<EventRow>> {
    Ok(messages::table
        .filter(messages::conversation_id.eq(conversation))
        .order((messages::sent_at.asc(), messages::id.asc()))
        .select(EventRow::as_select())
        .load(conn)?)
}

pub fn messages_of(conn: &mut AnyConnection, conversation: i64) -> Result<Vec<MessageRow>> {
    Ok(messages::table
        .filter(messages::conversation_id.eq(conversation))
        .order((messages::sent_at.asc(), messages::id.asc()))
        .select(MessageRow::as_select())
        .load(conn)?)
}

// ---------------------------------------------------------------- timers

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = timers)]
pub struct TimerRow {
    pub id: i64,
    pub conversation_id: i64,
    pub kind: String,
    pub seq: i32,
    pub status: String,
    pub started_at: NaiveDateTime,
    pub due_at: Option<NaiveDateTime>,
    pub stopped_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = timers)]
pub struct TimerState {
    pub conversation_id: i64,
    pub kind: String,
    pub seq: i32,
    pub status: String,
    pub started_at: NaiveDateTime,
    pub due_at: Option<NaiveDateTime>,
    pub stopped_at: Option<NaiveDateTime>,
}

/// Writes the derived state of one timer (insert or replace).
pub fn save_timer(conn: &mut AnyConnection, t: &TimerState) -> Result<()> {
    on_backend!(conn, |c| diesel::insert_into(timers::table)
        .values(t)
        .on_conflict((timers::conversation_id, timers::kind, timers::seq))
        .do_update()
        .set(t)
        .execute(c))?;
    Ok(())
}

pub fn timers_of(conn: &mut AnyConnection, conversation: i64) -> Result<Vec<TimerRow>> {
    Ok(timers::table
        .filter(timers::conversation_id.eq(conversation))
        .order((timers::kind.asc(), timers::seq.asc()))
        .select(TimerRow::as_select())
        .load(conn)?)
}

/// The timers of several conversations in one query (a page of a list),
/// grouped by conversation, each group in [`timers_of`] order.
pub fn timers_of_many(
    conn: &mut AnyConnection,
    conversations: &[i64],
) -> Result<std::collections::HashMap<i64, Vec<TimerRow>>> {
    let mut out: std::collections::HashMap<i64, Vec<TimerRow>> = Default::default();
    // Bounded IN lists: SQLite allows 32,766 host parameters, PostgreSQL
    // 65,535; a page is far smaller, but a caller may pass more.
    for chunk in conversations.chunks(10_000) {
        let rows = timers::table
            .filter(timers::conversation_id.eq_any(chunk))
            .order((
                timers::conversation_id.asc(),
                timers::kind.asc(),
                timers::seq.asc(),
            ))
            .select(TimerRow::as_select())
            .load(conn)?;
        for t in rows {
            out.entry(t.conversation_id).or_default().push(t);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- escalations

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = escalations_fired)]
pub struct FiredStep {
    pub conversation_id: i64,
    pub timer_kind: String,
    pub timer_seq: i32,
    pub step: String,
    pub due_at: NaiveDateTime,
    pub fired_at: NaiveDateTime,
    pub late: bool,
}

/// Records that a step fired; `false` if it had fired before (a step fires once).
pub fn record_fired_step(conn: &mut AnyConnection, s: &FiredStep) -> Result<bool> {
    let n = on_backend!(conn, |c| diesel::insert_into(escalations_fired::table)
        .values(s)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = escalations_fired)]
pub struct FiredRow {
    pub id: i64,
    pub conversation_id: i64,
    pub timer_kind: String,
    pub timer_seq: i32,
    pub step: String,
    pub due_at: NaiveDateTime,
    pub fired_at: NaiveDateTime,
    pub late: bool,
}

pub fn fired_steps_of(conn: &mut AnyConnection, conversation: i64) -> Result<Vec<FiredRow>> {
    Ok(escalations_fired::table
        .filter(escalations_fired::conversation_id.eq(conversation))
        .order(escalations_fired::id.asc())
        .select(FiredRow::as_select())
        .load(conn)?)
}

pub fn fired_step_count(conn: &mut AnyConnection, conversation: i64) -> Result<i64> {
    Ok(escalations_fired::table
        .filter(escalations_fired::conversation_id.eq(conversation))
        .count()
        .get_result(conn)?)
}

// ---------------------------------------------------------------- outbox

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub target: String,
    pub payload: String,
    pub dedupe_key: String,
    pub created_at: NaiveDateTime,
    pub available_at: NaiveDateTime,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub sent_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = outbox)]
pub struct NewOutbox {
    pub kind: String,
    pub target: String,
    pub payload: String,
    /// What makes this notification unique, so a retried use case cannot
    /// enqueue it twice.
    pub dedupe_key: String,
    pub created_at: NaiveDateTime,
    pub available_at: NaiveDateTime,
}

/// Enqueues a notification; `false` if one with the same dedupe key exists.
pub fn enqueue(conn: &mut AnyConnection, new: &NewOutbox) -> Result<bool> {
    let n = on_backend!(conn, |c| diesel::insert_into(outbox::table)
        .values(new)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

pub fn outbox_pending(conn: &mut AnyConnection) -> Result<i64> {
    Ok(outbox::table
        .filter(outbox::sent_at.is_null())
        .count()
        .get_result(conn)?)
}

// ---------------------------------------------------------------- mailboxes

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub uidvalidity: i64,
    pub last_uid: i64,
}

pub fn checkpoint(
    conn: &mut AnyConnection,
    mailbox: &str,
    folder: &str,
) -> Result<Option<Checkpoint>> {
    Ok(mailbox_checkpoints::table
        .find((mailbox, folder))
        .select((
            mailbox_checkpoints::uidvalidity,
            mailbox_checkpoints::last_uid,
        ))
        .first::<(i64, i64)>(conn)
        .optional()?
        .map(|(uidvalidity, last_uid)| Checkpoint {
            uidvalidity,
            last_uid,
        }))
}

/// Written in the same transaction as the messages it covers.
pub fn save_checkpoint(
    conn: &mut AnyConnection,
    mailbox: &str,
    folder: &str,
    cp: Checkpoint,
    now: DateTime<Utc>,
) -> Result<()> {
    let values = (
        mailbox_checkpoints::mailbox.eq(mailbox),
        mailbox_checkpoints::folder.eq(folder),
        mailbox_checkpoints::uidvalidity.eq(cp.uidvalidity),
        mailbox_checkpoints::last_uid.eq(cp.last_uid),
        mailbox_checkpoints::updated_at.eq(to_db(now)),
    );
    on_backend!(conn, |c| diesel::insert_into(mailbox_checkpoints::table)
        .values(values)
        .on_conflict((mailbox_checkpoints::mailbox, mailbox_checkpoints::folder))
        .do_update()
        .set((
            mailbox_checkpoints::uidvalidity.eq(cp.uidvalidity),
            mailbox_checkpoints::last_uid.eq(cp.last_uid),
            mailbox_checkpoints::updated_at.eq(to_db(now)),
        ))
        .execute(c))?;
    Ok(())
}

// ---------------------------------------------------------------- rejected input

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = rejected_input)]
pub struct RejectedRow {
    pub id: i64,
    pub channel: String,
    pub reason: String,
    pub detail: String,
    pub raw: Vec<u8>,
    pub received_at: NaiveDateTime,
}

/// Keeps input that could not be processed, raw, so nothing is lost.
pub fn reject_input(
    conn: &mut AnyConnection,
    channel: &str,
    reason: &str,
    detail: &str,
    raw: &[u8],
    now: DateTime<Utc>,
) -> Result<()> {
    diesel::insert_into(rejected_input::table)
        .values((
            rejected_input::channel.eq(channel),
            rejected_input::reason.eq(reason),
            rejected_input::detail.eq(text(detail)),
            rejected_input::raw.eq(raw),
            rejected_input::received_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn rejected_inputs(conn: &mut AnyConnection, limit: i64) -> Result<Vec<RejectedRow>> {
    Ok(rejected_input::table
        .order(rejected_input::id.desc())
        .limit(limit)
        .select(RejectedRow::as_select())
        .load(conn)?)
}

pub fn rejected_input(conn: &mut AnyConnection, id: i64) -> Result<Option<RejectedRow>> {
    Ok(rejected_input::table
        .find(id)
        .select(RejectedRow::as_select())
        .first(conn)
        .optional()?)
}
