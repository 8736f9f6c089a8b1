//! Messages: stored once per idempotency key; what the SLA engine reads of
//! them ([`EventRow`]) never includes bodies or raw bytes.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::*;
use super::{AnyConnection, StoreError, text, to_db};
use crate::on_backend;

type Result<T> = std::result::Result<T, StoreError>;

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
