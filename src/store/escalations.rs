//! Fired escalation steps: recorded once each, so a restart neither repeats
//! nor skips one.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::*;
use super::{AnyConnection, StoreError, from_db, parse_stored, to_db};
use crate::contract::Timer;
use crate::on_backend;

type Result<T> = std::result::Result<T, StoreError>;

/// A step that fired (or is about to be recorded as fired).
#[derive(Debug, Clone, PartialEq)]
pub struct FiredStep {
    pub conversation_id: i64,
    pub timer: Timer,
    pub timer_seq: u32,
    /// The engine's key of the step, unique within the conversation.
    pub step: String,
    pub due_at: DateTime<Utc>,
    pub fired_at: DateTime<Utc>,
    pub late: bool,
}

#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = escalations_fired)]
struct Form {
    conversation_id: i64,
    timer_kind: String,
    timer_seq: i32,
    step: String,
    due_at: NaiveDateTime,
    fired_at: NaiveDateTime,
    late: bool,
}

/// Records that a step fired; `false` if it had fired before (a step fires once).
pub fn record_fired_step(conn: &mut AnyConnection, s: &FiredStep) -> Result<bool> {
    let form = Form {
        conversation_id: s.conversation_id,
        timer_kind: s.timer.as_str().into(),
        timer_seq: s.timer_seq as i32,
        step: s.step.clone(),
        due_at: to_db(s.due_at),
        fired_at: to_db(s.fired_at),
        late: s.late,
    };
    let n = on_backend!(conn, |c| diesel::insert_into(escalations_fired::table)
        .values(&form)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

fn fired(f: Form) -> Result<FiredStep> {
    Ok(FiredStep {
        conversation_id: f.conversation_id,
        timer: parse_stored("escalations_fired.timer_kind", &f.timer_kind)?,
        timer_seq: f.timer_seq as u32,
        step: f.step,
        due_at: from_db(f.due_at),
        fired_at: from_db(f.fired_at),
        late: f.late,
    })
}

/// The steps a conversation fired, in the order they fired.
pub fn fired_steps_of(conn: &mut AnyConnection, conversation: i64) -> Result<Vec<FiredStep>> {
    escalations_fired::table
        .filter(escalations_fired::conversation_id.eq(conversation))
        .order(escalations_fired::id.asc())
        .select(Form::as_select())
        .load(conn)?
        .into_iter()
        .map(fired)
        .collect()
}

/// [`fired_steps_of`] for several conversations, one query per 5,000.
pub fn fired_steps_of_many(
    conn: &mut AnyConnection,
    conversations: &[i64],
) -> Result<std::collections::HashMap<i64, Vec<FiredStep>>> {
    let mut out: std::collections::HashMap<i64, Vec<FiredStep>> = Default::default();
    for chunk in conversations.chunks(5_000) {
        let rows = escalations_fired::table
            .filter(escalations_fired::conversation_id.eq_any(chunk))
            .filter(super::planned_each_time())
            .order(escalations_fired::id.asc())
            .select(Form::as_select())
            .load(conn)?;
        for f in rows {
            let f = fired(f)?;
            out.entry(f.conversation_id).or_default().push(f);
        }
    }
    Ok(out)
}

pub fn fired_step_count(conn: &mut AnyConnection, conversation: i64) -> Result<i64> {
    Ok(escalations_fired::table
        .filter(escalations_fired::conversation_id.eq(conversation))
        .count()
        .get_result(conn)?)
}
