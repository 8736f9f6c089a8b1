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
    message_id: Option<String>,
    in_reply_to: Option<String>,
    refs: String,
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

impl MessageRow {
    /// A `messages` row with its body and raw bytes (from `message_bodies`).
    fn from_parts(r: Record, body: Option<String>, raw: Option<Vec<u8>>) -> Result<MessageRow> {
        Ok(MessageRow {
            id: r.id,
            conversation_id: r.conversation_id,
            channel: r.channel,
            external_id: r.external_id,
            direction: direction(&r.direction)?,
            sender: r.sender,
            recipients: r.recipients,
            subject: r.subject,
            body: body.unwrap_or_default(),
            message_id: r.message_id,
            in_reply_to: r.in_reply_to,
            refs: r.refs,
            raw,
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
// NULL, not DEFAULT, for a `None`: one statement text per row count, so a
// batch insert stays one prepared statement (`store::Cached`).
#[diesel(table_name = messages, treat_none_as_default_value = false)]
struct Form {
    conversation_id: Option<i64>,
    channel: String,
    external_id: String,
    direction: &'static str,
    sender: String,
    recipients: String,
    subject: String,
    message_id: Option<String>,
    in_reply_to: Option<String>,
    refs: String,
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
        message_id: m.message_id.as_deref().map(text),
        in_reply_to: m.in_reply_to.as_deref().map(text),
        refs: text(&m.refs),
        sent_at: to_db(m.sent_at),
        received_at: to_db(m.received_at),
        status: m.status.map(TicketStatus::as_str),
        awaiting_client: m.awaiting_client,
    }
}

#[derive(Insertable)]
#[diesel(table_name = message_bodies, treat_none_as_default_value = false)]
struct BodyForm<'a> {
    message_id: i64,
    body: String,
    raw: Option<&'a [u8]>,
}

/// The body row of a message, if it has anything to keep: a status-only
/// event has neither text nor raw bytes, and costs no second row.
fn body_form(id: i64, m: &NewMessage) -> Option<BodyForm<'_>> {
    (!m.body.is_empty() || m.raw.is_some()).then(|| BodyForm {
        message_id: id,
        body: text(&m.body),
        raw: m.raw.as_deref(),
    })
}

/// Raw mail is kept compressed on SQLite, as PostgreSQL keeps it (TOAST
/// with lz4, migration `lz4_mail`): SQLite compresses nothing, and raw mail
/// — headers, quoted text, base64 — was the larger half of a SQLite
/// database (BENCHMARKS.md, "Storage"). A compressed value starts with
/// this marker, which no mail starts with (a NUL byte first); a value
/// without it is stored as it came (rows from before, or a value lz4
/// would not make smaller).
const PACKED: &[u8; 8] = b"\0kwlz4\x01\0";

/// Whether new raw mail is compressed on SQLite: on, except for the
/// storage benchmark's "before" run in the same process.
static PACK_RAW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns the compression of new raw mail on SQLite on or off, for the
/// whole process (the storage benchmark measures both in one run).
pub fn set_raw_compression(on: bool) {
    PACK_RAW.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn pack_raw(raw: &[u8]) -> Vec<u8> {
    let packed = lz4_flex::compress_prepend_size(raw);
    if packed.len() + PACKED.len() >= raw.len() {
        return raw.to_vec();
    }
    let mut out = Vec::with_capacity(PACKED.len() + packed.len());
    out.extend_from_slice(PACKED);
    out.extend_from_slice(&packed);
    out
}

/// Raw mail as it came, from a stored value either way.
pub(crate) fn unpack_raw(stored: Vec<u8>) -> Result<Vec<u8>> {
    match stored.strip_prefix(PACKED.as_slice()) {
        Some(packed) => lz4_flex::decompress_size_prepended(packed)
            .map_err(|e| StoreError::Corrupt(format!("message_bodies.raw: {e}"))),
        None => Ok(stored),
    }
}

fn insert_bodies(conn: &mut AnyConnection, bodies: &[BodyForm<'_>]) -> Result<()> {
    if bodies.is_empty() {
        return Ok(());
    }
    match conn {
        // One statement per row: SQLite runs them in-process, and a row of
        // a 300 KB attachment is its own overflow chain either way.
        AnyConnection::Sqlite(c) => {
            let pack = PACK_RAW.load(std::sync::atomic::Ordering::Relaxed);
            for b in bodies {
                let packed = b.raw.filter(|_| pack).map(pack_raw);
                let row = BodyForm {
                    message_id: b.message_id,
                    body: b.body.clone(),
                    raw: packed.as_deref().or(b.raw),
                };
                // Loaded, not executed: see `Cached`.
                let _: i64 = super::Cached(
                    diesel::insert_into(message_bodies::table)
                        .values(&row)
                        .returning(message_bodies::message_id),
                )
                .get_result(c)?;
            }
        }
        // Multi-row: one round trip for the batch, bounded so a batch of
        // attachments stays a reasonable statement.
        AnyConnection::Postgresql(c) => {
            for chunk in bodies.chunks(200) {
                // RETURNING, and loaded: diesel keeps an `execute` out of
                // its cache whatever `Cached` says.
                let _: Vec<i64> = crate::pg_cached!(
                    chunk.len(),
                    diesel::insert_into(message_bodies::table)
                        .values(chunk)
                        .returning(message_bodies::message_id),
                    |q| q.get_results(c)
                )?;
            }
        }
    }
    Ok(())
}

pub fn insert_message(conn: &mut AnyConnection, new: &NewMessage) -> Result<Inserted> {
    let form = &form(new);
    let id: Option<i64> = on_backend!(conn, |c| diesel::insert_into(messages::table)
        .values(form)
        .on_conflict((messages::channel, messages::external_id))
        .do_nothing()
        .returning(messages::id)
        .get_result(c)
        .optional())?;
    if let Some(id) = id {
        insert_bodies(conn, body_form(id, new).as_slice())?;
        return Ok(Inserted::New(id));
    }
    let id = messages::table
        .filter(messages::channel.eq(&form.channel))
        .filter(messages::external_id.eq(&form.external_id))
        .select(messages::id)
        .first(conn)?;
    Ok(Inserted::Duplicate(id))
}

/// Stores messages whose keys the caller knows to be new (a mail batch
/// checks them first with [`messages_by_external_ids`]); returns each one's
/// id, or `None` where a concurrent writer stored the same key meanwhile.
/// On PostgreSQL the batch is a few multi-row statements, not a round trip
/// per message.
pub fn insert_messages(conn: &mut AnyConnection, new: &[NewMessage]) -> Result<Vec<Option<i64>>> {
    let forms: Vec<Form> = new.iter().map(form).collect();
    let mut ids: Vec<Option<i64>> = Vec::with_capacity(new.len());
    match conn {
        AnyConnection::Sqlite(c) => {
            for f in &forms {
                ids.push(
                    super::Cached(
                        diesel::insert_into(messages::table)
                            .values(f)
                            .on_conflict((messages::channel, messages::external_id))
                            .do_nothing()
                            .returning(messages::id),
                    )
                    .get_result(c)
                    .optional()?,
                );
            }
        }
        AnyConnection::Postgresql(c) => {
            for chunk in forms.chunks(500) {
                let stored: Vec<(i64, String, String)> = crate::pg_cached!(
                    chunk.len(),
                    diesel::insert_into(messages::table)
                        .values(chunk)
                        .on_conflict((messages::channel, messages::external_id))
                        .do_nothing()
                        .returning((messages::id, messages::channel, messages::external_id)),
                    |q| q.get_results(c)
                )?;
                let by_key: std::collections::HashMap<(String, String), i64> = stored
                    .into_iter()
                    .map(|(id, ch, k)| ((ch, k), id))
                    .collect();
                // Keys are distinct within a channel's batch; RETURNING does
                // not promise the VALUES order, so match by key.
                ids.extend(chunk.iter().map(|f| {
                    by_key
                        .get(&(f.channel.clone(), f.external_id.clone()))
                        .copied()
                }));
            }
        }
    }
    let bodies: Vec<BodyForm<'_>> = ids
        .iter()
        .zip(new)
        .filter_map(|(id, m)| body_form((*id)?, m))
        .collect();
    insert_bodies(conn, &bodies)?;
    Ok(ids)
}

/// A stored message's id and its conversation.
pub type StoredKey = (i64, Option<i64>);

/// The stored message (and its conversation) of each `(channel, external
/// id)` of a batch that was seen before: one query per channel instead of
/// one per event.
pub fn messages_by_external_ids(
    conn: &mut AnyConnection,
    keys: &[(&str, &str)],
) -> Result<std::collections::HashMap<(String, String), StoredKey>> {
    let mut by_channel: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (channel, key) in keys {
        by_channel.entry(channel).or_default().push(text(key));
    }
    let mut out = std::collections::HashMap::new();
    for (channel, keys) in by_channel {
        for chunk in keys.chunks(5_000) {
            let found: Vec<(String, i64, Option<i64>)> = messages::table
                .filter(messages::channel.eq(text(channel)))
                .filter(messages::external_id.eq_any(chunk))
                .filter(super::planned_each_time())
                .select((
                    messages::external_id,
                    messages::id,
                    messages::conversation_id,
                ))
                .load(conn)?;
            out.extend(
                found
                    .into_iter()
                    .map(|(key, id, conv)| ((channel.to_string(), key), (id, conv))),
            );
        }
    }
    Ok(out)
}

/// The conversations of these Message-IDs, where stored (one query for a
/// batch's In-Reply-To and References instead of one per header).
pub fn conversations_of_message_ids(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<std::collections::HashMap<String, i64>> {
    let mut out = std::collections::HashMap::new();
    for chunk in ids.chunks(5_000) {
        let found: Vec<(Option<String>, Option<i64>)> = messages::table
            .filter(messages::message_id.eq_any(chunk))
            .filter(super::planned_each_time())
            .filter(messages::conversation_id.is_not_null())
            .select((messages::message_id, messages::conversation_id))
            .load(conn)?;
        for (id, conv) in found {
            if let (Some(id), Some(conv)) = (id, conv) {
                out.entry(id).or_insert(conv);
            }
        }
    }
    Ok(out)
}

/// Which of `addresses` got an acknowledgement since `since`.
pub fn acknowledged_any_since(
    conn: &mut AnyConnection,
    addresses: &[String],
    since: DateTime<Utc>,
) -> Result<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    for chunk in addresses.chunks(5_000) {
        let found: Vec<String> = messages::table
            .filter(messages::direction.eq(Direction::Auto.as_str()))
            .filter(messages::recipients.eq_any(chunk))
            .filter(super::planned_each_time())
            .filter(messages::external_id.like("ack:%"))
            .filter(messages::sent_at.ge(to_db(since)))
            .select(messages::recipients)
            .distinct()
            .load(conn)?;
        out.extend(found);
    }
    Ok(out)
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

fn event_row(r: EventRecord) -> Result<EventRow> {
    Ok(EventRow {
        direction: direction(&r.direction)?,
        status: status(r.status.as_deref())?,
        awaiting_client: r.awaiting_client,
        sent_at: from_db(r.sent_at),
    })
}

/// The events of a conversation in order, for the SLA engine. Re-read on
/// every refresh, so it reads only the four columns the engine uses, from
/// the `messages_events` index; bodies and raw bytes are in another table.
pub fn events_of(conn: &mut AnyConnection, conversation: i64) -> Result<Vec<EventRow>> {
    messages::table
        .filter(messages::conversation_id.eq(conversation))
        .order((messages::sent_at.asc(), messages::id.asc()))
        .select(EventRecord::as_select())
        .load(conn)?
        .into_iter()
        .map(event_row)
        .collect()
}

/// [`events_of`] for several conversations in one query per 5,000.
pub fn events_of_many(
    conn: &mut AnyConnection,
    conversations: &[i64],
) -> Result<std::collections::HashMap<i64, Vec<EventRow>>> {
    let mut out: std::collections::HashMap<i64, Vec<EventRow>> = Default::default();
    for chunk in conversations.chunks(5_000) {
        let rows: Vec<(Option<i64>, EventRecord)> = messages::table
            .filter(messages::conversation_id.eq_any(chunk))
            .filter(super::planned_each_time())
            .order((
                messages::conversation_id.asc(),
                messages::sent_at.asc(),
                messages::id.asc(),
            ))
            .select((messages::conversation_id, EventRecord::as_select()))
            .load(conn)?;
        for (conv, r) in rows {
            if let Some(conv) = conv {
                out.entry(conv).or_default().push(event_row(r)?);
            }
        }
    }
    Ok(out)
}

/// The messages of a conversation without their bodies and raw bytes (a
/// view that shows a page of them reads those with [`body_previews`]).
pub fn message_heads_of(conn: &mut AnyConnection, conversation: i64) -> Result<Vec<MessageRow>> {
    messages::table
        .filter(messages::conversation_id.eq(conversation))
        .order((messages::sent_at.asc(), messages::id.asc()))
        .select(Record::as_select())
        .load::<Record>(conn)?
        .into_iter()
        .map(|r| MessageRow::from_parts(r, None, None))
        .collect()
}

diesel::define_sql_function! {
    /// Characters `from` (1-based) on, at most `count` of them.
    fn substr(text: diesel::sql_types::Text, from: diesel::sql_types::Integer, count: diesel::sql_types::Integer) -> diesel::sql_types::Text;
}
diesel::define_sql_function! {
    /// Length in characters.
    fn length(text: diesel::sql_types::Text) -> diesel::sql_types::Integer;
}

/// A body's first characters and its whole length in characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyPreview {
    pub message_id: i64,
    pub text: String,
    pub chars: i64,
    /// The body is gone, and why.
    pub removed: Option<BodyRemoved>,
}

/// Why a message's body and raw bytes were removed (its SLA record stays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRemoved {
    /// By the retention job, under `[retention] bodies` of this many days.
    Retention { days: u32 },
    /// By `keepword erase`.
    Erasure,
}

impl BodyRemoved {
    pub fn as_stored(self) -> String {
        match self {
            BodyRemoved::Retention { days } => format!("retention:{days}"),
            BodyRemoved::Erasure => "erasure".into(),
        }
    }

    fn from_stored(s: &str) -> Result<BodyRemoved> {
        if s == "erasure" {
            return Ok(BodyRemoved::Erasure);
        }
        s.strip_prefix("retention:")
            .and_then(|d| d.parse().ok())
            .map(|days| BodyRemoved::Retention { days })
            .ok_or_else(|| StoreError::Corrupt(format!("message_bodies.removed: `{s}`")))
    }
}

/// The first `max_chars` characters of the bodies of `ids`, cut in the
/// database: a page shows a bounded part of each, whatever a body's size.
pub fn body_previews(
    conn: &mut AnyConnection,
    ids: &[i64],
    max_chars: i32,
) -> Result<Vec<BodyPreview>> {
    message_bodies::table
        .filter(message_bodies::message_id.eq_any(ids))
        .select((
            message_bodies::message_id,
            substr(message_bodies::body, 1, max_chars),
            length(message_bodies::body),
            message_bodies::removed,
        ))
        .load::<(i64, String, i32, Option<String>)>(conn)?
        .into_iter()
        .map(|(message_id, text, chars, removed)| {
            Ok(BodyPreview {
                message_id,
                text,
                chars: chars.into(),
                removed: removed
                    .as_deref()
                    .map(BodyRemoved::from_stored)
                    .transpose()?,
            })
        })
        .collect()
}

/// The whole body of message `id` of `conversation`.
pub fn message_body(
    conn: &mut AnyConnection,
    conversation: i64,
    id: i64,
) -> Result<Option<String>> {
    Ok(messages::table
        .inner_join(message_bodies::table)
        .filter(messages::conversation_id.eq(conversation))
        .filter(messages::id.eq(id))
        .select(message_bodies::body)
        .first::<String>(conn)
        .optional()?)
}

pub fn messages_of(conn: &mut AnyConnection, conversation: i64) -> Result<Vec<MessageRow>> {
    messages::table
        .left_join(message_bodies::table)
        .filter(messages::conversation_id.eq(conversation))
        .order((messages::sent_at.asc(), messages::id.asc()))
        .select((
            Record::as_select(),
            message_bodies::body.nullable(),
            message_bodies::raw.nullable(),
        ))
        .load::<(Record, Option<String>, Option<Vec<u8>>)>(conn)?
        .into_iter()
        .map(|(r, body, raw)| MessageRow::from_parts(r, body, raw.map(unpack_raw).transpose()?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_mail_reads_back_as_it_came_packed_or_not() {
        let mail = b"From: a@b.test\r\nSubject: hello\r\n\r\n".repeat(50);
        let packed = pack_raw(&mail);
        assert!(packed.starts_with(PACKED) && packed.len() < mail.len() / 4);
        assert_eq!(unpack_raw(packed).unwrap(), mail);
        // Too short to gain: kept as it came, and read as it is.
        let tiny = b"x".to_vec();
        assert_eq!(pack_raw(&tiny), tiny);
        assert_eq!(unpack_raw(tiny.clone()).unwrap(), tiny);
        let mut broken = PACKED.to_vec();
        broken.extend_from_slice(b"\xff\xff");
        assert!(unpack_raw(broken).is_err());
    }
}
