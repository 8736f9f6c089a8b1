//! Timers: the engine's derived state of each SLA clock, one row per timer
//! instance. Kinds and statuses go in and come out as enums, instants as UTC.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::*;
use super::{AnyConnection, StoreError, from_db, parse_stored, to_db};
use crate::contract::Timer;
use crate::sla::TimerStatus;

type Result<T> = std::result::Result<T, StoreError>;

/// One stored timer.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerRow {
    pub id: i64,
    pub conversation_id: i64,
    pub kind: Timer,
    pub seq: u32,
    pub status: TimerStatus,
    pub started_at: DateTime<Utc>,
    pub due_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = timers)]
pub(crate) struct Record {
    id: i64,
    conversation_id: i64,
    kind: String,
    seq: i32,
    status: String,
    started_at: NaiveDateTime,
    due_at: Option<NaiveDateTime>,
    stopped_at: Option<NaiveDateTime>,
}

impl TryFrom<Record> for TimerRow {
    type Error = StoreError;
    fn try_from(r: Record) -> Result<TimerRow> {
        Ok(TimerRow {
            id: r.id,
            conversation_id: r.conversation_id,
            kind: parse_stored("timers.kind", &r.kind)?,
            seq: r.seq as u32,
            status: parse_stored("timers.status", &r.status)?,
            started_at: from_db(r.started_at),
            due_at: r.due_at.map(from_db),
            stopped_at: r.stopped_at.map(from_db),
        })
    }
}

/// The derived state of one timer, as the engine computed it.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerUpdate {
    pub conversation_id: i64,
    pub kind: Timer,
    pub seq: u32,
    pub status: TimerStatus,
    pub started_at: DateTime<Utc>,
    pub due_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
}

// `treat_none_as_null`: a timer that stops no longer (an earlier event
// arrived late) must clear `stopped_at`, not keep the old value; and the
// statement's text no longer depends on which fields are set, so it is
// prepared once.
#[derive(Insertable, AsChangeset)]
#[diesel(
    table_name = timers,
    treat_none_as_null = true,
    treat_none_as_default_value = false
)]
struct Form {
    conversation_id: i64,
    kind: &'static str,
    seq: i32,
    status: &'static str,
    started_at: NaiveDateTime,
    due_at: Option<NaiveDateTime>,
    stopped_at: Option<NaiveDateTime>,
}

fn timer_form(t: &TimerUpdate) -> Form {
    Form {
        conversation_id: t.conversation_id,
        kind: t.kind.as_str(),
        seq: t.seq as i32,
        status: t.status.as_str(),
        started_at: to_db(t.started_at),
        due_at: t.due_at.map(to_db),
        stopped_at: t.stopped_at.map(to_db),
    }
}

/// Writes the derived state of one timer (insert or replace).
pub fn save_timer(conn: &mut AnyConnection, t: &TimerUpdate) -> Result<()> {
    save_timers(conn, std::slice::from_ref(t))
}

/// Writes the derived state of several timers: on PostgreSQL one multi-row
/// upsert per 1,000, so a batch's refreshes cost a round trip, not one per
/// timer.
pub fn save_timers(conn: &mut AnyConnection, all: &[TimerUpdate]) -> Result<()> {
    use diesel::upsert::excluded;
    let forms: Vec<Form> = all.iter().map(timer_form).collect();
    match conn {
        AnyConnection::Sqlite(c) => {
            for form in &forms {
                // Loaded, not executed: see `Cached`.
                let _: i64 = super::Cached(
                    diesel::insert_into(timers::table)
                        .values(form)
                        .on_conflict((timers::conversation_id, timers::kind, timers::seq))
                        .do_update()
                        .set(form)
                        .returning(timers::id),
                )
                .get_result(c)?;
            }
        }
        AnyConnection::Postgresql(c) => {
            for chunk in forms.chunks(1_000) {
                crate::pg_cached!(
                    chunk.len(),
                    diesel::insert_into(timers::table)
                        .values(chunk)
                        .on_conflict((timers::conversation_id, timers::kind, timers::seq))
                        .do_update()
                        .set((
                            timers::status.eq(excluded(timers::status)),
                            timers::started_at.eq(excluded(timers::started_at)),
                            timers::due_at.eq(excluded(timers::due_at)),
                            timers::stopped_at.eq(excluded(timers::stopped_at)),
                        ))
                        // Loaded, not executed: see `insert_bodies`.
                        .returning(timers::id),
                    |q| q.get_results::<i64>(c)
                )?;
            }
        }
    }
    Ok(())
}

pub fn timers_of(conn: &mut AnyConnection, conversation: i64) -> Result<Vec<TimerRow>> {
    timers::table
        .filter(timers::conversation_id.eq(conversation))
        .order((timers::kind.asc(), timers::seq.asc()))
        .select(Record::as_select())
        .load(conn)?
        .into_iter()
        .map(TimerRow::try_from)
        .collect()
}

/// The timers of several conversations (a page of a list, or a period's
/// thousands), grouped by conversation, each group in [`timers_of`] order.
pub fn timers_of_many(
    conn: &mut AnyConnection,
    conversations: &[i64],
) -> Result<std::collections::HashMap<i64, Vec<TimerRow>>> {
    let mut out: std::collections::HashMap<i64, Vec<TimerRow>> = Default::default();
    let mut add = |rows: Vec<Record>| {
        for t in rows {
            let t = TimerRow::try_from(t)?;
            out.entry(t.conversation_id).or_default().push(t);
        }
        Ok::<_, StoreError>(())
    };
    let order = (
        timers::conversation_id.asc(),
        timers::kind.asc(),
        timers::seq.asc(),
    );
    if let Some((lo, hi)) = dense_span(conversations) {
        // A period's conversations have neighbouring ids (they are numbered
        // as they open): one range scan of the index, the few rows of
        // conversations not asked for dropped here. Sent as lists instead,
        // a year's ids were 200 statements of 10,000 lookups each.
        let wanted: std::collections::HashSet<i64> = conversations.iter().copied().collect();
        let rows = timers::table
            .filter(timers::conversation_id.between(lo, hi))
            .order(order)
            .select(Record::as_select())
            .load::<Record>(conn)?
            .into_iter()
            .filter(|t| wanted.contains(&t.conversation_id))
            .collect();
        add(rows)?;
    } else {
        // Bounded IN lists: SQLite allows 32,766 host parameters, PostgreSQL
        // 65,535; a page is far smaller, but a caller may pass more.
        for chunk in conversations.chunks(10_000) {
            add(timers::table
                .filter(timers::conversation_id.eq_any(chunk))
                .filter(super::planned_each_time())
                .order(order)
                .select(Record::as_select())
                .load(conn)?)?;
        }
    }
    Ok(out)
}

/// The lowest and highest of `ids` when they are many and fill at least
/// three quarters of the span between them: a range read then wastes at
/// most one row for three wanted. A sparser set (one client's share of a
/// period) reads faster as lists: each list is one pass over the index.
fn dense_span(ids: &[i64]) -> Option<(i64, i64)> {
    if ids.len() < DENSE_FROM {
        return None;
    }
    let (lo, hi) = (*ids.iter().min()?, *ids.iter().max()?);
    (3 * (i128::from(hi) - i128::from(lo)) < 4 * ids.len() as i128).then_some((lo, hi))
}

/// How many conversations make a range read worth it (a queue page is 50).
const DENSE_FROM: usize = 64;
