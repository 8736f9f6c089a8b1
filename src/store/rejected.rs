//! Rejected input: what could not be processed, kept raw so nothing is lost.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::*;
use super::{AnyConnection, StoreError, from_db, text, to_db};

type Result<T> = std::result::Result<T, StoreError>;

/// Input kept raw because it could not be processed.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRow {
    pub id: i64,
    pub channel: String,
    pub reason: String,
    pub detail: String,
    pub raw: Vec<u8>,
    pub received_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = rejected_input)]
struct Record {
    id: i64,
    channel: String,
    reason: String,
    detail: String,
    raw: Vec<u8>,
    received_at: NaiveDateTime,
}

impl From<Record> for RejectedRow {
    fn from(r: Record) -> RejectedRow {
        RejectedRow {
            id: r.id,
            channel: r.channel,
            reason: r.reason,
            detail: r.detail,
            raw: r.raw,
            received_at: from_db(r.received_at),
        }
    }
}

/// Keeps input that could not be processed, raw, so nothing is lost.
pub fn reject_input(
    conn: &mut AnyConnection,
    channel: &str,
    reason: &str,
    detail: &str,
    raw: &[u8],
    now: DateTime<Utc>,
) -> Result<()> {
    diesel::insert_into(rejected_input::table)
        .values((
            rejected_input::channel.eq(channel),
            rejected_input::reason.eq(reason),
            rejected_input::detail.eq(text(detail)),
            rejected_input::raw.eq(raw),
            rejected_input::received_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn rejected_inputs(conn: &mut AnyConnection, limit: i64) -> Result<Vec<RejectedRow>> {
    Ok(rejected_input::table
        .order(rejected_input::id.desc())
        .limit(limit)
        .select(Record::as_select())
        .load(conn)?
        .into_iter()
        .map(RejectedRow::from)
        .collect())
}

pub fn rejected_input(conn: &mut AnyConnection, id: i64) -> Result<Option<RejectedRow>> {
    Ok(rejected_input::table
        .find(id)
        .select(Record::as_select())
        .first::<Record>(conn)
        .optional()?
        .map(RejectedRow::from))
}
