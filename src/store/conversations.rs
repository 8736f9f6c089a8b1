//! Conversations: one thread with one client; opened once per `(channel,
//! thread_key)`, their derived state (status, health, next check) stored back.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::*;
use super::{AnyConnection, StoreError, text, to_db};
use crate::on_backend;

type Result<T> = std::result::Result<T, StoreError>;

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
