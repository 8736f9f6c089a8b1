//! Messages: stored once per idempotency key; what the SLA engine reads of
//! them ([`EventRow`]) never includes bodies or raw bytes.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::*;
use super::{AnyConnection, StoreError, from_db, parse_stored, text, to_db};
use crate::on_backend;
use crate::sla::{Direction, TicketStatus};

type Result<T> = std::result::Result<T, StoreError>;

/// One stored message. `direction` is `None` for an event that only set a
/// status (stored as `none`).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    pub id: i64,
    pub conversation_id: Option<i64>,
    pub channel: String,
    pub external_id: String,
    pub direction: Option<Direction>,
    pub sender: String,
    pub recipients: String,
    pub subject: String,
    pub body: String,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub refs: String,
    pub raw: Option<Vec<u8>>,
    pub sent_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub status: Option<TicketStatus>,
    pub awaiting_client: bool,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = messages)]
struct Record {
    id: i64,
    conversation_id: Option<i64>,
    channel: String,
    external_id: String,
    direction: String,
    sender: String,
    recipients: String,
    subject: String,
    body: String,
    message_id: Option<String>,
    in_reply_to: Option<String>,
    refs: String,
    raw: Option<Vec<u8>>,
    sent_at: NaiveDateTime,
    received_at: NaiveDateTime,
    status: Option<String>,
    awaiting_client: bool,
}

/// The stored name of a message's direction; `none` for status-only events.
const NO_DIRECTION: &str = "none";

fn direction(stored: &str) -> Result<Option<Direction>> {
    if stored == NO_DIRECTION {
        return Ok(None);
    }
    parse_stored("messages.direction", stored).map(Some)
}

fn status(stored: Option<&str>) -> Result<Option<TicketStatus>> {
    stored
        .map(|s| parse_stored("messages.status", s))
        .transpose()
}

impl TryFrom<Record> for MessageRow {
    type Error = StoreError;
    fn try_from(r: Record) -> Result<MessageRow> {
        Ok(MessageRow {
            id: r.id,
            conversation_id: r.conversation_id,
            channel: r.channel,
            external_id: r.external_id,
            direction: direction(&r.direction)?,
            sender: r.sender,
            recipients: r.recipients,
            subject: r.subject,
            body: r.body,
            message_id: r.message_id,
            in_reply_to: r.in_reply_to,
            refs: r.refs,
            raw: r.raw,
            sent_at: from_db(r.sent_at),
            received_at: from_db(r.received_at),
            status: status(r.status.as_deref())?,
            awaiting_client: r.awaiting_client,
        })
    }
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub conversation_id: Option<i64>,
    pub channel: String,
    /// Idempotency key within the channel: event id, delivery id, Message-ID.
    pub external_id: String,
    /// `None`: an event that only sets a status.
    pub direction: Option<Direction>,
    pub sender: String,
    pub recipients: String,
    pub subject: String,
    pub body: String,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub refs: String,
    pub raw: Option<Vec<u8>>,
    pub sent_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// A ticket status the event set.
    pub status: Option<TicketStatus>,
    /// An outbound that asks the client something: resolution waits on them.
    pub awaiting_client: bool,
}

#[derive(Insertable)]
#[diesel(table_name = messages)]
struct Form {
    conversation_id: Option<i64>,
    channel: String,
    external_id: String,
    direction: &'static str,
    sender: String,
    recipients: String,
    subject: String,
    body: String,
    message_id: Option<String>,
    in_reply_to: Option<String>,
    refs: String,
    raw: Option<Vec<u8>>,
    sent_at: NaiveDateTime,
    received_at: NaiveDateTime,
    status: Option<&'static str>,
    awaiting_client: bool,
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

/// The row as stored: NUL replaced in text (see `text`), names for enums,
/// instants truncated to microseconds.
fn form(m: &NewMessage) -> Form {
    Form {
        conversation_id: m.conversation_id,
        channel: text(&m.channel),
        external_id: text(&m.external_id),
        direction: m.direction.map_or(NO_DIRECTION, Direction::as_str),
        sender: text(&m.sender),
        recipients: text(&m.recipients),
        subject: text(&m.subject),
        body: text(&m.body),
        message_id: m.message_id.as_deref().map(text),
        in_reply_to: m.in_reply_to.as_deref().map(text),
        refs: text(&m.refs),
        raw: m.raw.clone(),
        sent_at: to_db(m.sent_at),
        received_at: to_db(m.received_at),
        status: m.status.map(TicketStatus::as_str),
        awaiting_client: m.awaiting_client,
    }
}

pub fn insert_message(conn: &mut AnyConnection, new: &NewMessage) -> Result<Inserted> {
    let new = &form(new);
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

/// Whether an acknowledgement went to `address` since `since`.
pub fn acknowledged_since(
    conn: &mut AnyConnection,
    address: &str,
    since: DateTime<Utc>,
) -> Result<bool> {
    let n: i64 = messages::table
        .filter(messages::direction.eq(Direction::Auto.as_str()))
        .filter(messages::recipients.eq(address))
        .filter(messages::external_id.like("ack:%"))
        .filter(messages::sent_at.ge(to_db(since)))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// What the SLA engine needs of a message: no bodies, no raw bytes.
/// What the SLA engine needs of a message: no bodies, no raw bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub direction: Option<Direction>,
    pub status: Option<TicketStatus>,
    pub awaiting_client: bool,
    pub sent_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = messages)]
struct EventRecord {
    direction: String,
    status: Option<String>,
    awaiting_client: bool,
    sent_at: NaiveDateTime,
}

/// The events of a conversation in order, for the SLA engine. Re-read on
/// every refresh, so it loads only the four columns the engine uses.
pub fn events_of(conn: &mut AnyConnection, conversation: i64) -> Result<Vec<EventRow>> {
    messages::table
        .filter(messages::conversation_id.eq(conversation))
        .order((messages::sent_at.asc(), messages::id.asc()))
        .select(EventRecord::as_select())
        .load(conn)?
        .into_iter()
        .map(|r| {
            Ok(EventRow {
                direction: direction(&r.direction)?,
                status: status(r.status.as_deref())?,
                awaiting_client: r.awaiting_client,
                sent_at: from_db(r.sent_at),
            })
        })
        .collect()
}

pub fn messages_of(conn: &mut AnyConnection, conversation: i64) -> Result<Vec<MessageRow>> {
    messages::table
        .filter(messages::conversation_id.eq(conversation))
        .order((messages::sent_at.asc(), messages::id.asc()))
        .select(Record::as_select())
        .load(conn)?
        .into_iter()
        .map(MessageRow::try_from)
        .collect()
}
