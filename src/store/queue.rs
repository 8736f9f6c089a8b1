//! The dashboard's reads: the queue (open conversations by next due), its
//! counts per health, and the conversations of a compliance period. Each is a
//! fixed number of indexed queries, whatever the number of rows.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::conversations::Record;
use super::schema::*;
use super::{AnyConnection, ConversationRow, StoreError, from_db, parse_stored, text, to_db};
use crate::sla::{Health, TicketStatus};

type Result<T> = std::result::Result<T, StoreError>;

/// Which conversations the queue shows. `None` is "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilter {
    pub client: Option<String>,
    pub request_type: Option<String>,
    pub health: Option<Health>,
    pub channel: Option<String>,
    /// `None`: every unsolved conversation.
    pub status: Option<TicketStatus>,
}

/// One page of the queue and what the whole filtered queue holds.
#[derive(Debug, Clone, Default)]
pub struct QueuePage {
    pub rows: Vec<ConversationRow>,
    /// Conversations matching the filter (health filter included).
    pub total: i64,
    /// Per health, with every filter but `health` applied.
    pub by_health: Vec<(Health, i64)>,
}

macro_rules! filtered {
    ($q:expr, $f:expr, $with_health:expr) => {{
        let mut q = $q;
        let f: &QueueFilter = $f;
        if let Some(v) = &f.client {
            q = q.filter(conversations::client_id.eq(text(v)));
        }
        if let Some(v) = &f.request_type {
            q = q.filter(conversations::request_type.eq(text(v)));
        }
        if let Some(v) = &f.channel {
            q = q.filter(conversations::channel.eq(text(v)));
        }
        if $with_health && let Some(v) = f.health {
            q = q.filter(conversations::health.eq(v.as_str()));
        }
        q = match f.status {
            // A literal, not a bound value: the partial indexes' condition
            // must be visible to the planner (SQLite plans once, without the
            // values, under its query-planner stability guarantee; a
            // PostgreSQL generic plan does not know them either).
            None => q.filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "conversations.status <> 'solved'",
            )),
            Some(s) => q.filter(conversations::status.eq(s.as_str())),
        };
        q
    }};
}

/// The queue, most urgent first: conversations with a due by that due (the
/// most overdue first), then those with none (every timer paused or
/// stopped) newest first. Solved ones (status `solved`) by solve time,
/// newest first. `offset`/`limit` page it.
///
/// Two segments rather than `ORDER BY next_due_at IS NULL, …`: that order
/// no index serves, and sorting 100,000 rows per page view is what a queue
/// must not do. Each segment is a range scan of `conversations_queue`.
pub fn queue_page(
    conn: &mut AnyConnection,
    f: &QueueFilter,
    offset: i64,
    limit: i64,
) -> Result<QueuePage> {
    let by_health: Vec<(String, i64)> = filtered!(
        conversations::table
            .group_by(conversations::health)
            .select((conversations::health, diesel::dsl::count_star()))
            .into_boxed(),
        f,
        false
    )
    .load(conn)?;
    let total = match f.health {
        Some(h) => by_health
            .iter()
            .find(|(k, _)| k == h.as_str())
            .map_or(0, |(_, n)| *n),
        None => by_health.iter().map(|(_, n)| n).sum(),
    };
    let by_health = by_health
        .into_iter()
        .map(|(h, n)| Ok((parse_stored("conversations.health", &h)?, n)))
        .collect::<Result<Vec<(Health, i64)>>>()?;
    let rows: Vec<Record> = if f.status == Some(TicketStatus::Solved) {
        filtered!(
            conversations::table
                .select(Record::as_select())
                .into_boxed(),
            f,
            true
        )
        .order((conversations::solved_at.desc(), conversations::id.desc()))
        .offset(offset)
        .limit(limit)
        .load(conn)?
    } else {
        // Ids first, through the index alone (deep pages skip index entries,
        // not rows), then the page's rows by id.
        let ids: Vec<i64> = filtered!(
            conversations::table
                .filter(conversations::next_due_at.is_not_null())
                .select(conversations::id)
                .into_boxed(),
            f,
            true
        )
        .order((conversations::next_due_at.asc(), conversations::id.asc()))
        .offset(offset)
        .limit(limit)
        .load(conn)?;
        let mut rows = by_ids(conn, &ids)?;
        // How many rows have a due, to know where the second segment starts:
        // implied by a short first segment, counted only when the page lies
        // wholly past it (the first pages, the ones people look at, never
        // pay for a count).
        let got = rows.len() as i64;
        let with_due = if got > 0 || offset == 0 {
            offset + got
        } else {
            filtered!(
                conversations::table
                    .filter(conversations::next_due_at.is_not_null())
                    .select(diesel::dsl::count_star())
                    .into_boxed(),
                f,
                true
            )
            .first(conn)?
        };
        let missing = limit - rows.len() as i64;
        if missing > 0 {
            let from = (offset - with_due).max(0);
            let ids: Vec<i64> = filtered!(
                conversations::table
                    .filter(conversations::next_due_at.is_null())
                    .select(conversations::id)
                    .into_boxed(),
                f,
                true
            )
            .order(conversations::id.desc())
            .offset(from)
            .limit(missing)
            .load(conn)?;
            rows.extend(by_ids(conn, &ids)?);
        }
        rows
    };
    Ok(QueuePage {
        rows: rows
            .into_iter()
            .map(ConversationRow::try_from)
            .collect::<Result<_>>()?,
        total,
        by_health,
    })
}

/// The rows of `ids`, in that order.
fn by_ids(conn: &mut AnyConnection, ids: &[i64]) -> Result<Vec<Record>> {
    let mut found: std::collections::HashMap<i64, Record> = conversations::table
        .filter(conversations::id.eq_any(ids))
        .select(Record::as_select())
        .load::<Record>(conn)?
        .into_iter()
        .map(|r| (r.id(), r))
        .collect();
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

/// Conversations opened in `[from, to)`, for the compliance report (one
/// range scan; the report is over a period a lead picks, not the queue).
pub fn opened_between(
    conn: &mut AnyConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<ConversationRow>> {
    conversations::table
        .filter(conversations::opened_at.ge(to_db(from)))
        .filter(conversations::opened_at.lt(to_db(to)))
        .order(conversations::id.asc())
        .select(Record::as_select())
        .load(conn)?
        .into_iter()
        .map(ConversationRow::try_from)
        .collect()
}

/// A dashboard session, as stored (the id only as its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id_hash: String,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = dashboard_sessions)]
struct SessionRecord {
    id_hash: String,
    csrf: String,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
}

pub fn create_session(conn: &mut AnyConnection, s: &SessionRow) -> Result<()> {
    // Expired sessions go when a new one comes: no sweeper task needed.
    diesel::delete(
        dashboard_sessions::table.filter(dashboard_sessions::expires_at.le(to_db(s.created_at))),
    )
    .execute(conn)?;
    diesel::insert_into(dashboard_sessions::table)
        .values(SessionRecord {
            id_hash: s.id_hash.clone(),
            csrf: s.csrf.clone(),
            created_at: to_db(s.created_at),
            expires_at: to_db(s.expires_at),
        })
        .execute(conn)?;
    Ok(())
}

/// The session with this id hash, if it has not expired at `now`.
pub fn live_session(
    conn: &mut AnyConnection,
    id_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<SessionRow>> {
    Ok(dashboard_sessions::table
        .find(id_hash)
        .filter(dashboard_sessions::expires_at.gt(to_db(now)))
        .select(SessionRecord::as_select())
        .first(conn)
        .optional()?
        .map(|r| SessionRow {
            id_hash: r.id_hash,
            csrf: r.csrf,
            created_at: from_db(r.created_at),
            expires_at: from_db(r.expires_at),
        }))
}

pub fn delete_session(conn: &mut AnyConnection, id_hash: &str) -> Result<()> {
    diesel::delete(dashboard_sessions::table.find(id_hash)).execute(conn)?;
    Ok(())
}
