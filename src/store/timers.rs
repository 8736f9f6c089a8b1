//! Timers: the engine's derived state of each SLA clock, one row per timer
//! instance.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::*;
use super::{AnyConnection, StoreError};
use crate::on_backend;

type Result<T> = std::result::Result<T, StoreError>;

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
