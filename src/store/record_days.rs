//! The client's record kept per day (README, "The client's record"):
//! `record_days` holds, per UTC day of the conversations' `opened_at`,
//! client, request type and settle day, what the page's weeks count
//! (`service::record`); it is rebuilt with `tally_days` by the same job,
//! from the same stale marks (`tally_stale`). Also the page's broken
//! promises, a page at a time.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text, Timestamp};

use super::record::{RECORD_COLUMNS, RecordRow};
use super::schema::{conversations, record_days, timers};
use super::timers::Record as TimerRecord;
use super::{AnyConnection, StoreError, TimerRow, to_db};

type Result<T> = std::result::Result<T, StoreError>;

/// One opened day's figures for one client and request type, settled on
/// `settled`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = record_days)]
pub struct RecordDay {
    pub day: NaiveDate,
    pub client_id: String,
    pub request_type: String,
    pub settled: NaiveDate,
    /// The conversations opened on `day` (on the row settled on `day`
    /// itself; 0 on the others).
    pub requests: i64,
    pub kept: i64,
    pub broken: i64,
    /// The first-response times of the replies given on `settled`,
    /// sorted: [`super::tally::encode_times`].
    pub times: Vec<u8>,
}

/// Replaces `day`'s rows with `rows`.
pub fn replace_day(conn: &mut AnyConnection, day: NaiveDate, rows: &[RecordDay]) -> Result<()> {
    diesel::delete(record_days::table.filter(record_days::day.eq(day))).execute(conn)?;
    // Eight columns a row: far below either backend's limit of parameters.
    for chunk in rows.chunks(1_000) {
        crate::on_backend!(conn, |c| diesel::insert_into(record_days::table)
            .values(chunk)
            .execute(c))?;
    }
    Ok(())
}

/// One client's record rows of the days in `[from, to)`, stale days
/// included (the caller leaves those out).
pub fn of_client_between(
    conn: &mut AnyConnection,
    client: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<RecordDay>> {
    Ok(record_days::table
        .filter(record_days::client_id.eq(client))
        .filter(record_days::day.ge(from))
        .filter(record_days::day.lt(to))
        .select(RecordDay::as_select())
        .load(conn)?)
}

/// Up to `limit` of the broken promises (missed or still breached timers
/// with a due) of the client's conversations opened in `[from, to)`, after
/// the first `offset`: the newest due first, then the higher conversation
/// and timer id. One query, walked along the index `timers_broken`.
pub fn broken_page(
    conn: &mut AnyConnection,
    client: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
    offset: i64,
) -> Result<Vec<(RecordRow, TimerRow)>> {
    let mut q = timers::table
        .inner_join(conversations::table)
        // Written out, not bound: only then may either database use the
        // partial index `timers_broken`, whose condition this is.
        .filter(sql::<Bool>("timers.status IN ('missed', 'breached')"))
        .filter(timers::due_at.is_not_null())
        .order((
            timers::due_at.desc(),
            timers::conversation_id.desc(),
            timers::id.desc(),
        ))
        .limit(limit)
        .offset(offset)
        .select((RECORD_COLUMNS, TimerRecord::as_select()))
        .into_boxed();
    q = if matches!(conn, AnyConnection::Sqlite(_)) {
        // SQLite would read the period's conversations by `opened_at` and
        // sort all their broken promises (464 ms for a year of a client with
        // a third of 300,000 conversations); `+` keeps it off the
        // conversations' indexes, so it walks `timers_broken` newest first
        // and stops at the page (1 ms). PostgreSQL weighs both by itself.
        q.filter(
            sql::<Bool>("+conversations.client_id = ")
                .bind::<Text, _>(client.to_string())
                .sql(" AND +conversations.opened_at >= ")
                .bind::<Timestamp, _>(to_db(from))
                .sql(" AND +conversations.opened_at < ")
                .bind::<Timestamp, _>(to_db(to)),
        )
    } else {
        q.filter(conversations::client_id.eq(client.to_string()))
            .filter(conversations::opened_at.ge(to_db(from)))
            .filter(conversations::opened_at.lt(to_db(to)))
    };
    let rows: Vec<(RecordRow, TimerRecord)> = q.load(conn)?;
    rows.into_iter()
        .map(|(c, t)| Ok((c, TimerRow::try_from(t)?)))
        .collect()
}
