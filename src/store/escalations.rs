//! Fired escalation steps: recorded once each, so a restart neither repeats
//! nor skips one.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::*;
use super::{AnyConnection, StoreError};
use crate::on_backend;

type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = escalations_fired)]
pub struct FiredStep {
    pub conversation_id: i64,
    pub timer_kind: String,
    pub timer_seq: i32,
    pub step: String,
    pub due_at: NaiveDateTime,
    pub fired_at: NaiveDateTime,
    pub late: bool,
}

/// Records that a step fired; `false` if it had fired before (a step fires once).
pub fn record_fired_step(conn: &mut AnyConnection, s: &FiredStep) -> Result<bool> {
    let n = on_backend!(conn, |c| diesel::insert_into(escalations_fired::table)
        .values(s)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = escalations_fired)]
pub struct FiredRow {
    pub id: i64,
    pub conversation_id: i64,
    pub timer_kind: String,
    pub timer_seq: i32,
    pub step: String,
    pub due_at: NaiveDateTime,
    pub fired_at: NaiveDateTime,
    pub late: bool,
}

pub fn fired_steps_of(conn: &mut AnyConnection, conversation: i64) -> Result<Vec<FiredRow>> {
    Ok(escalations_fired::table
        .filter(escalations_fired::conversation_id.eq(conversation))
        .order(escalations_fired::id.asc())
        .select(FiredRow::as_select())
        .load(conn)?)
}

pub fn fired_step_count(conn: &mut AnyConnection, conversation: i64) -> Result<i64> {
    Ok(escalations_fired::table
        .filter(escalations_fired::conversation_id.eq(conversation))
        .count()
        .get_result(conn)?)
}
