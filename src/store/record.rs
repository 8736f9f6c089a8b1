//! The client's record (README, "The client's record"): each client's link,
//! kept as the hash of its token, and the reads the page, the monthly
//! report and the weekly digest make: a client's conversations by period,
//! its open ones, and who wrote the team's replies.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::conversations::Record;
use super::schema::*;
use super::{AnyConnection, ConversationRow, StoreError, from_db, to_db};

type Result<T> = std::result::Result<T, StoreError>;

/// Makes `token_hash` the client's one link. Call it inside a transaction:
/// the older rows go in it, so the old links stop working the moment the
/// new one exists.
pub fn replace_client_link(
    conn: &mut AnyConnection,
    client_id: &str,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    diesel::delete(client_links::table.filter(client_links::client_id.eq(client_id)))
        .execute(conn)?;
    add_client_link(conn, client_id, token_hash, now)
}

/// Adds a link to the client's page beside those it has (the one a
/// monthly report carries).
pub fn add_client_link(
    conn: &mut AnyConnection,
    client_id: &str,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    diesel::insert_into(client_links::table)
        .values((
            client_links::client_id.eq(client_id),
            client_links::token_hash.eq(token_hash),
            client_links::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(())
}

/// The client a token hash opens: an index lookup by the hash, never by
/// the token.
pub fn client_by_link_hash(conn: &mut AnyConnection, token_hash: &str) -> Result<Option<String>> {
    Ok(client_links::table
        .filter(client_links::token_hash.eq(token_hash))
        .select(client_links::client_id)
        .first(conn)
        .optional()?)
}

/// What the record counts of a conversation: who, what type, under which
/// contract version — not its state, which the record reads from timers.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct RecordRow {
    pub id: i64,
    pub client_id: String,
    pub subject: String,
    pub request_type: String,
    pub contract_version: String,
}

/// The columns of a [`RecordRow`].
pub(crate) const RECORD_COLUMNS: (
    conversations::id,
    conversations::client_id,
    conversations::subject,
    conversations::request_type,
    conversations::contract_version,
) = (
    conversations::id,
    conversations::client_id,
    conversations::subject,
    conversations::request_type,
    conversations::contract_version,
);

/// One client's conversations opened in `[from, to)`, oldest first; only
/// the columns the record counts (a page may read ten thousand).
pub fn client_opened_between(
    conn: &mut AnyConnection,
    client: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<RecordRow>> {
    tallied_between(conn, Some(client), from, to)
}

/// The conversations opened in `[from, to)` — of one client, or of all —
/// oldest first, with only the columns a tally counts: a year's compliance
/// report reads millions.
pub fn tallied_between(
    conn: &mut AnyConnection,
    client: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<RecordRow>> {
    let mut q = conversations::table
        .filter(conversations::opened_at.ge(to_db(from)))
        .filter(conversations::opened_at.lt(to_db(to)))
        .order((conversations::opened_at.asc(), conversations::id.asc()))
        .select(RECORD_COLUMNS)
        .into_boxed();
    if let Some(client) = client {
        q = q.filter(conversations::client_id.eq(client.to_string()));
    }
    Ok(q.load(conn)?)
}

/// Up to `limit` of a client's conversations not yet solved, the one due
/// soonest first (those with nothing due last, oldest first), and how many
/// there are.
pub fn client_open(
    conn: &mut AnyConnection,
    client: &str,
    limit: i64,
) -> Result<(Vec<ConversationRow>, i64)> {
    // The literal, as the queue's and `/metrics`' counts: with a bound value
    // neither database's cached plan may use the open conversations'
    // partial indexes, and SQLite read every conversation of the client
    // (100,000 at 300,000: 85% of the client's page's time).
    let open = || {
        conversations::table
            .filter(conversations::client_id.eq(client))
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "conversations.status <> 'solved'",
            ))
    };
    let total: i64 = open().count().get_result(conn)?;
    // Two ranges of `conversations_client_open`, each read in its order and
    // stopped at the page's end: one `ORDER BY next_due_at IS NULL, …` is
    // no index's order, and sorted every open conversation of the client.
    let mut rows: Vec<Record> = open()
        .filter(conversations::next_due_at.is_not_null())
        .order((conversations::next_due_at.asc(), conversations::id.asc()))
        .limit(limit)
        .select(Record::as_select())
        .load(conn)?;
    let left = limit - i64::try_from(rows.len()).unwrap_or(limit);
    if left > 0 {
        rows.extend(
            open()
                .filter(conversations::next_due_at.is_null())
                .order(conversations::id.asc())
                .limit(left)
                .select(Record::as_select())
                .load::<Record>(conn)?,
        );
    }
    let rows = rows
        .into_iter()
        .map(ConversationRow::try_from)
        .collect::<Result<Vec<_>>>()?;
    Ok((rows, total))
}

/// One reply of the team: its conversation, who wrote it, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub conversation_id: i64,
    pub sender: String,
    pub sent_at: DateTime<Utc>,
}

/// The team's replies (outbound messages) in the given conversations, in
/// order per conversation; one query per 5,000 conversations.
pub fn replies_of_many(conn: &mut AnyConnection, conversations: &[i64]) -> Result<Vec<Reply>> {
    let mut out = Vec::new();
    for chunk in conversations.chunks(5_000) {
        let rows: Vec<(Option<i64>, String, NaiveDateTime)> = messages::table
            .filter(messages::conversation_id.eq_any(chunk))
            .filter(messages::direction.eq("outbound"))
            .order((
                messages::conversation_id.asc(),
                messages::sent_at.asc(),
                messages::id.asc(),
            ))
            .select((
                messages::conversation_id,
                messages::sender,
                messages::sent_at,
            ))
            .load(conn)?;
        out.extend(rows.into_iter().filter_map(|(c, sender, at)| {
            c.map(|conversation_id| Reply {
                conversation_id,
                sender,
                sent_at: from_db(at),
            })
        }));
    }
    Ok(out)
}

/// Whether a notification with this dedupe key was ever enqueued.
pub fn outbox_has_key(conn: &mut AnyConnection, key: &str) -> Result<bool> {
    Ok(outbox::table
        .filter(outbox::dedupe_key.eq(key))
        .count()
        .get_result::<i64>(conn)?
        > 0)
}

/// Up to `limit` open conversations waiting on the client, the longest
/// waiting first.
pub fn longest_paused(conn: &mut AnyConnection, limit: i64) -> Result<Vec<ConversationRow>> {
    conversations::table
        .filter(conversations::status.ne("solved"))
        .filter(conversations::paused_since.is_not_null())
        .order((conversations::paused_since.asc(), conversations::id.asc()))
        .limit(limit)
        .select(Record::as_select())
        .load(conn)?
        .into_iter()
        .map(ConversationRow::try_from)
        .collect()
}

/// Up to `limit` open conversations whose next due falls in `[from, to)`,
/// soonest first, and how many there are.
pub fn due_between(
    conn: &mut AnyConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> Result<(Vec<ConversationRow>, i64)> {
    let due = || {
        conversations::table
            .filter(conversations::status.ne("solved"))
            .filter(conversations::next_due_at.ge(to_db(from)))
            .filter(conversations::next_due_at.lt(to_db(to)))
    };
    let total: i64 = due().count().get_result(conn)?;
    let rows = due()
        .order((conversations::next_due_at.asc(), conversations::id.asc()))
        .limit(limit)
        .select(Record::as_select())
        .load(conn)?
        .into_iter()
        .map(ConversationRow::try_from)
        .collect::<Result<Vec<_>>>()?;
    Ok((rows, total))
}
