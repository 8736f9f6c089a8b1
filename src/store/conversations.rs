//! Conversations: one thread with one client; opened once per `(channel,
//! thread_key)`, their derived state (status, health, next check) stored back.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::*;
use super::{AnyConnection, StoreError, from_db, parse_stored, text, to_db};
use crate::contract::Timer;
use crate::on_backend;
use crate::sla::{Health, TicketStatus};

type Result<T> = std::result::Result<T, StoreError>;

/// One stored conversation. Statuses and health are enums, instants UTC.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationRow {
    pub id: i64,
    pub channel: String,
    pub thread_key: String,
    pub client_id: String,
    pub subject: String,
    pub request_type: String,
    pub classification: String,
    pub contract_version: String,
    pub status: TicketStatus,
    pub channel_mismatch: bool,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub solved_at: Option<DateTime<Utc>>,
    pub health: Health,
    pub next_check_at: Option<DateTime<Utc>>,
    pub subject_key: String,
    pub opener: String,
    pub last_message_at: Option<DateTime<Utc>>,
    /// The earliest due among timers still counting (running or breached).
    pub next_due_at: Option<DateTime<Utc>>,
    /// The timer of `next_due_at`.
    pub next_timer: Option<Timer>,
    /// Waiting on the client since then (status `pending`).
    pub paused_since: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = conversations)]
pub(super) struct Record {
    id: i64,
    channel: String,
    thread_key: String,
    client_id: String,
    subject: String,
    request_type: String,
    classification: String,
    contract_version: String,
    status: String,
    channel_mismatch: bool,
    opened_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    solved_at: Option<NaiveDateTime>,
    health: String,
    next_check_at: Option<NaiveDateTime>,
    subject_key: String,
    opener: String,
    last_message_at: Option<NaiveDateTime>,
    next_due_at: Option<NaiveDateTime>,
    next_timer: String,
    paused_since: Option<NaiveDateTime>,
}

impl Record {
    pub(super) fn id(&self) -> i64 {
        self.id
    }
}

impl TryFrom<Record> for ConversationRow {
    type Error = StoreError;
    fn try_from(r: Record) -> Result<ConversationRow> {
        Ok(ConversationRow {
            id: r.id,
            channel: r.channel,
            thread_key: r.thread_key,
            client_id: r.client_id,
            subject: r.subject,
            request_type: r.request_type,
            classification: r.classification,
            contract_version: r.contract_version,
            status: parse_stored("conversations.status", &r.status)?,
            channel_mismatch: r.channel_mismatch,
            opened_at: from_db(r.opened_at),
            updated_at: from_db(r.updated_at),
            solved_at: r.solved_at.map(from_db),
            health: parse_stored("conversations.health", &r.health)?,
            next_check_at: r.next_check_at.map(from_db),
            subject_key: r.subject_key,
            opener: r.opener,
            last_message_at: r.last_message_at.map(from_db),
            next_due_at: r.next_due_at.map(from_db),
            next_timer: match r.next_timer.as_str() {
                "" => None,
                t => Some(parse_stored("conversations.next_timer", t)?),
            },
            paused_since: r.paused_since.map(from_db),
        })
    }
}

fn rows(records: Vec<Record>) -> Result<Vec<ConversationRow>> {
    records.into_iter().map(ConversationRow::try_from).collect()
}

/// A conversation to open.
#[derive(Debug, Clone)]
pub struct NewConversation {
    pub channel: String,
    pub thread_key: String,
    pub client_id: String,
    pub subject: String,
    pub request_type: String,
    pub classification: String,
    pub contract_version: String,
    pub status: TicketStatus,
    pub channel_mismatch: bool,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Normalised subject, for threading email by subject.
    pub subject_key: String,
    /// The opening sender's address, lower-case (empty when unknown).
    pub opener: String,
    pub last_message_at: Option<DateTime<Utc>>,
}

/// Opens the conversation of `(channel, thread_key)`, or returns the one that
/// already exists: `(row, created)`. One statement when it is new.
pub fn open_conversation(
    conn: &mut AnyConnection,
    new: &NewConversation,
) -> Result<(ConversationRow, bool)> {
    // The row as a new conversation has it before any evaluation (the
    // columns' defaults).
    let form = open_form(new, &DerivedState::unevaluated(new));
    let inserted = on_backend!(conn, |c| diesel::insert_into(conversations::table)
        .values(&form)
        .on_conflict((conversations::channel, conversations::thread_key))
        .do_nothing()
        .returning(Record::as_returning())
        .get_result::<Record>(c)
        .optional())?;
    if let Some(r) = inserted {
        return Ok((ConversationRow::try_from(r)?, true));
    }
    let r = conversations::table
        .filter(conversations::channel.eq(&form.channel))
        .filter(conversations::thread_key.eq(&form.thread_key))
        .select(Record::as_select())
        .first(conn)?;
    Ok((ConversationRow::try_from(r)?, false))
}

/// A new conversation with its first derived state, for [`open_conversations`].
#[derive(Insertable)]
// NULL, not DEFAULT, for a `None`: one statement text per row count.
#[diesel(table_name = conversations, treat_none_as_default_value = false)]
struct OpenForm {
    channel: String,
    thread_key: String,
    client_id: String,
    subject: String,
    request_type: String,
    classification: String,
    contract_version: String,
    status: &'static str,
    channel_mismatch: bool,
    opened_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    subject_key: String,
    opener: String,
    last_message_at: Option<NaiveDateTime>,
    health: &'static str,
    next_check_at: Option<NaiveDateTime>,
    solved_at: Option<NaiveDateTime>,
    next_due_at: Option<NaiveDateTime>,
    next_timer: &'static str,
    paused_since: Option<NaiveDateTime>,
}

fn open_form(new: &NewConversation, d: &DerivedState) -> OpenForm {
    OpenForm {
        channel: new.channel.clone(),
        thread_key: text(&new.thread_key),
        client_id: new.client_id.clone(),
        subject: text(&new.subject),
        request_type: new.request_type.clone(),
        classification: new.classification.clone(),
        contract_version: new.contract_version.clone(),
        status: d.status.as_str(),
        channel_mismatch: new.channel_mismatch,
        opened_at: to_db(new.opened_at),
        updated_at: to_db(new.updated_at),
        subject_key: text(&new.subject_key),
        opener: text(&new.opener),
        last_message_at: d.last_message_at.map(to_db),
        health: d.health.as_str(),
        next_check_at: d.next_check_at.map(to_db),
        solved_at: d.solved_at.map(to_db),
        next_due_at: d.next_due.map(|(t, _)| to_db(t)),
        next_timer: d.next_due.map_or("", |(_, k)| k.as_str()),
        paused_since: d.paused_since.map(to_db),
    }
}

/// Opens several conversations, each with the state the SLA engine derived
/// for it already in its row: on PostgreSQL one multi-row statement per 500
/// instead of an insert and an update each (the update would touch all of
/// the table's indexes again). Returns the row of each one this call
/// created, in order; `None` where `(channel, thread_key)` existed already
/// (a concurrent opener won): the caller looks that one up.
pub fn open_conversations(
    conn: &mut AnyConnection,
    new: &[(NewConversation, DerivedState)],
) -> Result<Vec<Option<ConversationRow>>> {
    let forms: Vec<OpenForm> = new.iter().map(|(n, d)| open_form(n, d)).collect();
    let mut out = Vec::with_capacity(forms.len());
    match conn {
        AnyConnection::Sqlite(c) => {
            for f in &forms {
                let r = super::Cached(
                    diesel::insert_into(conversations::table)
                        .values(f)
                        .on_conflict((conversations::channel, conversations::thread_key))
                        .do_nothing()
                        .returning(Record::as_returning()),
                )
                .get_result::<Record>(c)
                .optional()?;
                out.push(r.map(ConversationRow::try_from).transpose()?);
            }
        }
        AnyConnection::Postgresql(c) => {
            for chunk in forms.chunks(500) {
                let rows: Vec<Record> = crate::pg_cached!(
                    chunk.len(),
                    diesel::insert_into(conversations::table)
                        .values(chunk)
                        .on_conflict((conversations::channel, conversations::thread_key))
                        .do_nothing()
                        .returning(Record::as_returning()),
                    |q| q.get_results(c)
                )?;
                // RETURNING does not promise the VALUES order: match by key.
                let mut by_key: std::collections::HashMap<(String, String), Record> = rows
                    .into_iter()
                    .map(|r| ((r.channel.clone(), r.thread_key.clone()), r))
                    .collect();
                for f in chunk {
                    out.push(
                        by_key
                            .remove(&(f.channel.clone(), f.thread_key.clone()))
                            .map(ConversationRow::try_from)
                            .transpose()?,
                    );
                }
            }
        }
    }
    Ok(out)
}

/// [`open_conversations`], with the row of each one some concurrent writer
/// opened first read back: in order, `(row, created)`.
pub fn open_or_find_conversations(
    conn: &mut AnyConnection,
    new: &[(NewConversation, DerivedState)],
) -> Result<Vec<(ConversationRow, bool)>> {
    let rows = open_conversations(conn, new)?;
    rows.into_iter()
        .zip(new)
        .map(|(row, (n, _))| match row {
            Some(row) => Ok((row, true)),
            None => conversation_by_thread(conn, &n.channel, &n.thread_key)?
                .map(|row| (row, false))
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "conversation {} of {} was opened and is gone",
                        n.thread_key, n.channel
                    ))
                }),
        })
        .collect()
}

/// Several conversations by id, in one query per 5,000.
pub fn conversations_by_ids(
    conn: &mut AnyConnection,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, ConversationRow>> {
    let mut out = std::collections::HashMap::new();
    for chunk in ids.chunks(5_000) {
        let rows = conversations::table
            .filter(conversations::id.eq_any(chunk))
            .filter(super::planned_each_time())
            .select(Record::as_select())
            .load(conn)?;
        for r in rows {
            let row = ConversationRow::try_from(r)?;
            out.insert(row.id, row);
        }
    }
    Ok(out)
}

/// The conversations of several `(channel, thread key)`s, keyed as given:
/// one query per channel for a batch of events instead of one per event.
pub fn conversations_by_threads(
    conn: &mut AnyConnection,
    keys: &[(&str, &str)],
) -> Result<std::collections::HashMap<(String, String), ConversationRow>> {
    let mut by_channel: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (channel, thread) in keys {
        by_channel.entry(channel).or_default().push(thread);
    }
    let mut out = std::collections::HashMap::new();
    for (channel, threads) in by_channel {
        // As stored (see `text`), and back to the caller's spelling.
        let stored: std::collections::HashMap<String, &str> =
            threads.iter().map(|t| (text(t), *t)).collect();
        let wanted: Vec<&String> = stored.keys().collect();
        for chunk in wanted.chunks(5_000) {
            let rows = conversations::table
                .filter(conversations::channel.eq(text(channel)))
                .filter(conversations::thread_key.eq_any(chunk))
                .filter(super::planned_each_time())
                .select(Record::as_select())
                .load(conn)?;
            for r in rows {
                let row = ConversationRow::try_from(r)?;
                if let Some(given) = stored.get(&row.thread_key) {
                    out.insert((channel.to_string(), given.to_string()), row);
                }
            }
        }
    }
    Ok(out)
}

/// Moves the latest mail of `ids` forward to `at` where it is earlier: an
/// acknowledgement stored after its conversation's refresh is mail too.
pub fn advance_last_message(
    conn: &mut AnyConnection,
    ids: &[i64],
    at: DateTime<Utc>,
) -> Result<()> {
    let at = to_db(at);
    for chunk in ids.chunks(5_000) {
        diesel::update(
            conversations::table
                .filter(conversations::id.eq_any(chunk))
                .filter(
                    conversations::last_message_at
                        .is_null()
                        .or(conversations::last_message_at.lt(at)),
                ),
        )
        .set(conversations::last_message_at.eq(at))
        .execute(conn)?;
    }
    Ok(())
}

/// The conversations a batch's header-less replies may join, read once for
/// the batch: those with one of `subject_keys`, opened by one of `openers`
/// (lower-case addresses) or of one of `clients`, with mail at or after
/// `since`. The batch then threads in memory.
pub fn conversations_by_subject_keys(
    conn: &mut AnyConnection,
    subject_keys: &[&str],
    clients: &[&str],
    openers: &[&str],
    since: DateTime<Utc>,
) -> Result<Vec<ConversationRow>> {
    if subject_keys.is_empty() || (clients.is_empty() && openers.is_empty()) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for keys in subject_keys.chunks(1_000) {
        let rows = conversations::table
            .filter(conversations::subject_key.eq_any(keys))
            .filter(
                conversations::client_id
                    .eq_any(clients)
                    .or(conversations::opener.eq_any(openers)),
            )
            .filter(conversations::last_message_at.ge(to_db(since)))
            .filter(super::planned_each_time())
            .select(Record::as_select())
            .load(conn)?;
        for r in rows {
            out.push(ConversationRow::try_from(r)?);
        }
    }
    Ok(out)
}

pub fn conversation(conn: &mut AnyConnection, id: i64) -> Result<Option<ConversationRow>> {
    conversations::table
        .find(id)
        .select(Record::as_select())
        .first(conn)
        .optional()?
        .map(ConversationRow::try_from)
        .transpose()
}

pub fn set_conversation_status(
    conn: &mut AnyConnection,
    id: i64,
    status: TicketStatus,
    now: DateTime<Utc>,
) -> Result<()> {
    let solved_at = (status == TicketStatus::Solved).then(|| to_db(now));
    diesel::update(conversations::table.find(id))
        .set((
            conversations::status.eq(status.as_str()),
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
    conversations::table
        .filter(conversations::channel.eq(text(channel)))
        .filter(conversations::thread_key.eq(text(thread)))
        .select(Record::as_select())
        .first(conn)
        .optional()?
        .map(ConversationRow::try_from)
        .transpose()
}

/// What the SLA engine derived for a conversation, stored back after each
/// refresh.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedState {
    pub status: TicketStatus,
    pub health: Health,
    /// When to look at it again.
    pub next_check_at: Option<DateTime<Utc>>,
    pub solved_at: Option<DateTime<Utc>>,
    /// Its latest message instant (threading by subject looks back from it).
    pub last_message_at: Option<DateTime<Utc>>,
    /// The queue's sort key: the earliest due of a timer still counting, and
    /// which timer that is.
    pub next_due: Option<(DateTime<Utc>, Timer)>,
    pub paused_since: Option<DateTime<Utc>>,
}

impl DerivedState {
    /// The row of a new conversation before any evaluation (the columns'
    /// defaults).
    pub fn unevaluated(new: &NewConversation) -> DerivedState {
        DerivedState {
            status: new.status,
            health: Health::OnTrack,
            next_check_at: None,
            solved_at: None,
            last_message_at: new.last_message_at,
            next_due: None,
            paused_since: None,
        }
    }
}

/// Stores what the SLA engine derived, in the one write a refresh makes to
/// the conversation's row.
pub fn update_conversation_state(
    conn: &mut AnyConnection,
    id: i64,
    d: &DerivedState,
    now: DateTime<Utc>,
) -> Result<()> {
    diesel::update(conversations::table.find(id))
        .set(state_changes(d, now))
        .execute(conn)?;
    Ok(())
}

/// The columns a [`DerivedState`] sets.
#[allow(clippy::type_complexity)]
fn state_changes(
    d: &DerivedState,
    now: DateTime<Utc>,
) -> (
    diesel::dsl::Eq<conversations::status, &'static str>,
    diesel::dsl::Eq<conversations::health, &'static str>,
    diesel::dsl::Eq<conversations::next_check_at, Option<NaiveDateTime>>,
    diesel::dsl::Eq<conversations::solved_at, Option<NaiveDateTime>>,
    diesel::dsl::Eq<conversations::last_message_at, Option<NaiveDateTime>>,
    diesel::dsl::Eq<conversations::next_due_at, Option<NaiveDateTime>>,
    diesel::dsl::Eq<conversations::next_timer, &'static str>,
    diesel::dsl::Eq<conversations::paused_since, Option<NaiveDateTime>>,
    diesel::dsl::Eq<conversations::updated_at, NaiveDateTime>,
) {
    (
        conversations::status.eq(d.status.as_str()),
        conversations::health.eq(d.health.as_str()),
        conversations::next_check_at.eq(d.next_check_at.map(to_db)),
        conversations::solved_at.eq(d.solved_at.map(to_db)),
        conversations::last_message_at.eq(d.last_message_at.map(to_db)),
        conversations::next_due_at.eq(d.next_due.map(|(t, _)| to_db(t))),
        conversations::next_timer.eq(d.next_due.map_or("", |(_, k)| k.as_str())),
        conversations::paused_since.eq(d.paused_since.map(to_db)),
        conversations::updated_at.eq(to_db(now)),
    )
}

/// [`update_conversation_state`] for every conversation a batch evaluated.
/// On PostgreSQL one `UPDATE … FROM unnest(…)` per 1,000 rows instead of a
/// round trip each; SQLite has no round trips to save.
pub fn update_conversation_states(
    conn: &mut AnyConnection,
    all: &[(i64, DerivedState)],
    now: DateTime<Utc>,
) -> Result<()> {
    use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
    let pg = match conn {
        AnyConnection::Postgresql(pg) => pg,
        AnyConnection::Sqlite(c) => {
            for (id, d) in all {
                // Loaded, not executed, so that it stays compiled: see
                // `Cached`. One row per id, or none if it is gone.
                let _: Option<i64> = super::Cached(
                    diesel::update(conversations::table.find(*id))
                        .set(state_changes(d, now))
                        .returning(conversations::id),
                )
                .get_result(c)
                .optional()?;
            }
            return Ok(());
        }
    };
    let ts = |t: Option<DateTime<Utc>>| t.map(to_db);
    for chunk in all.chunks(1_000) {
        // Planned on every run, not cached: a generic plan cannot know the
        // array's length, and one made while the table was small joins it by
        // scanning every conversation (BENCHMARKS.md, section a).
        diesel::sql_query(
            "UPDATE conversations AS c SET status = v.status, health = v.health, \
               next_check_at = v.next_check_at, solved_at = v.solved_at, \
               last_message_at = v.last_message_at, next_due_at = v.next_due_at, \
               next_timer = v.next_timer, paused_since = v.paused_since, updated_at = $10 \
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamp[], \
               $5::timestamp[], $6::timestamp[], $7::timestamp[], $8::text[], $9::timestamp[]) \
               AS v(id, status, health, next_check_at, solved_at, last_message_at, \
                    next_due_at, next_timer, paused_since) \
             WHERE c.id = v.id",
        )
        .bind::<Array<BigInt>, _>(chunk.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(
            chunk
                .iter()
                .map(|(_, d)| d.status.as_str())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(
            chunk
                .iter()
                .map(|(_, d)| d.health.as_str())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Timestamp>>, _>(
            chunk
                .iter()
                .map(|(_, d)| ts(d.next_check_at))
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Timestamp>>, _>(
            chunk
                .iter()
                .map(|(_, d)| ts(d.solved_at))
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Timestamp>>, _>(
            chunk
                .iter()
                .map(|(_, d)| ts(d.last_message_at))
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Timestamp>>, _>(
            chunk
                .iter()
                .map(|(_, d)| d.next_due.map(|(t, _)| to_db(t)))
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(
            chunk
                .iter()
                .map(|(_, d)| d.next_due.map_or("", |(_, k)| k.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Timestamp>>, _>(
            chunk
                .iter()
                .map(|(_, d)| ts(d.paused_since))
                .collect::<Vec<_>>(),
        )
        .bind::<Timestamp, _>(to_db(now))
        .execute(pg)?;
    }
    Ok(())
}

/// The earliest instant any conversation must be looked at again: what the
/// scheduler sleeps until. One indexed lookup, whatever the number of
/// conversations.
pub fn earliest_check(conn: &mut AnyConnection) -> Result<Option<DateTime<Utc>>> {
    Ok(conversations::table
        .select(diesel::dsl::min(conversations::next_check_at))
        .first::<Option<NaiveDateTime>>(conn)?
        .map(from_db))
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
                .select(Record::as_select())
        };
    }
    rows(match conn {
        AnyConnection::Postgresql(c) => due!().for_update().skip_locked().load(c)?,
        AnyConnection::Sqlite(c) => due!().load(c)?,
    })
}

#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub health: Option<Health>,
    pub client: Option<String>,
    pub request_type: Option<String>,
    pub status: Option<TicketStatus>,
    /// Return conversations with an id below this (paging, newest first).
    pub before_id: Option<i64>,
    pub limit: i64,
}

pub fn list_conversations(
    conn: &mut AnyConnection,
    f: &ConversationFilter,
) -> Result<Vec<ConversationRow>> {
    let mut q = conversations::table
        .select(Record::as_select())
        .order(conversations::id.desc())
        .limit(f.limit)
        .into_boxed();
    if let Some(h) = f.health {
        q = q.filter(conversations::health.eq(h.as_str()));
    }
    if let Some(c) = &f.client {
        q = q.filter(conversations::client_id.eq(c.clone()));
    }
    if let Some(t) = &f.request_type {
        q = q.filter(conversations::request_type.eq(t.clone()));
    }
    if let Some(s) = f.status {
        q = q.filter(conversations::status.eq(s.as_str()));
    }
    if let Some(b) = f.before_id {
        q = q.filter(conversations::id.lt(b));
    }
    rows(q.load(conn)?)
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

/// Conversations opened at or after `since`, counted by (client, contract
/// version, request type): the urgent share, in one grouped query.
pub fn opened_since_by_type(
    conn: &mut AnyConnection,
    since: DateTime<Utc>,
) -> Result<Vec<(String, String, String, i64)>> {
    Ok(conversations::table
        .filter(conversations::opened_at.ge(to_db(since)))
        .group_by((
            conversations::client_id,
            conversations::contract_version,
            conversations::request_type,
        ))
        .select((
            conversations::client_id,
            conversations::contract_version,
            conversations::request_type,
            diesel::dsl::count_star(),
        ))
        .load(conn)?)
}

/// One client's conversations opened at or after `since`, oldest first.
pub fn opened_since_of_client(
    conn: &mut AnyConnection,
    client: &str,
    since: DateTime<Utc>,
) -> Result<Vec<ConversationRow>> {
    rows(
        conversations::table
            .filter(conversations::client_id.eq(client))
            .filter(conversations::opened_at.ge(to_db(since)))
            .order((conversations::opened_at, conversations::id))
            .select(Record::as_select())
            .load(conn)?,
    )
}
