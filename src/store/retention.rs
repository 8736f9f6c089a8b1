//! Retention: older message bodies, raw mail and rejected input removed in
//! small batches, each its own short transaction (the caller's), so that
//! ingest and pages wait at most one batch for the writer. The SLA record —
//! messages' rows, conversations, timers, fired steps — is never touched.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::messages::BodyRemoved;
use super::schema::*;
use super::{AnyConnection, StoreError, to_db};

type Result<T> = std::result::Result<T, StoreError>;

/// The progress key of the bodies' walk in `retention_progress`.
const BODIES: &str = "message_bodies";

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionBatch {
    /// Bodies (with their raw mail) or rejected inputs removed.
    pub removed: usize,
    /// Nothing older than the cutoff is left after this batch.
    pub done: bool,
}

/// The last message id whose body the walk has dealt with. On PostgreSQL
/// the row stays locked until the batch commits: two processes running the
/// job take turns instead of emptying the same rows twice.
fn progress(conn: &mut AnyConnection, what: &str) -> Result<i64> {
    let q = retention_progress::table
        .find(what)
        .select(retention_progress::last_id);
    let last = match conn {
        AnyConnection::Postgresql(c) => q.for_update().first::<i64>(c).optional()?,
        AnyConnection::Sqlite(c) => q.first::<i64>(c).optional()?,
    };
    Ok(last.unwrap_or(0))
}

fn save_progress(
    conn: &mut AnyConnection,
    what: &str,
    last_id: i64,
    now: DateTime<Utc>,
) -> Result<()> {
    let row = (
        retention_progress::what.eq(what),
        retention_progress::last_id.eq(last_id),
        retention_progress::updated_at.eq(to_db(now)),
    );
    crate::on_backend!(conn, |c| diesel::insert_into(retention_progress::table)
        .values(row)
        .on_conflict(retention_progress::what)
        .do_update()
        .set((
            retention_progress::last_id.eq(last_id),
            retention_progress::updated_at.eq(to_db(now)),
        ))
        .execute(c))?;
    Ok(())
}

/// Empties the bodies and raw mail of the next `batch` messages received
/// before `cutoff`, in id order from where the last batch stopped.
///
/// Ids follow arrival (a message's `received_at` is when keepword stored
/// it), so the messages before the cutoff are a prefix of the walk: it
/// stops at the first younger message and resumes there the next day. The
/// walk reads the primary key only; no index on `received_at` is kept
/// for a job that runs once a day.
pub fn remove_old_bodies(
    conn: &mut AnyConnection,
    cutoff: DateTime<Utc>,
    days: u32,
    batch: i64,
    now: DateTime<Utc>,
) -> Result<RetentionBatch> {
    let after = progress(conn, BODIES)?;
    let next: Vec<(i64, chrono::NaiveDateTime)> = messages::table
        .filter(messages::id.gt(after))
        .order(messages::id.asc())
        .limit(batch)
        .select((messages::id, messages::received_at))
        .load(conn)?;
    let fetched = next.len();
    let old: Vec<i64> = next
        .iter()
        .take_while(|(_, at)| *at < to_db(cutoff))
        .map(|(id, _)| *id)
        .collect();
    let Some(&last) = old.last() else {
        return Ok(RetentionBatch {
            removed: 0,
            done: true,
        });
    };
    let removed = diesel::update(
        message_bodies::table
            .filter(message_bodies::message_id.eq_any(&old))
            .filter(message_bodies::removed.is_null()),
    )
    .set((
        message_bodies::body.eq(""),
        message_bodies::raw.eq(None::<Vec<u8>>),
        message_bodies::removed.eq(BodyRemoved::Retention { days }.as_stored()),
    ))
    .execute(conn)?;
    save_progress(conn, BODIES, last, now)?;
    Ok(RetentionBatch {
        removed,
        done: old.len() < fetched || fetched < usize::try_from(batch).unwrap_or(usize::MAX),
    })
}

/// Deletes up to `batch` of the rejected inputs received before `cutoff`,
/// oldest first. The table is small (what could not be read), so its
/// primary key walk needs no progress row.
pub fn remove_old_rejected(
    conn: &mut AnyConnection,
    cutoff: DateTime<Utc>,
    batch: i64,
) -> Result<RetentionBatch> {
    let ids: Vec<i64> = rejected_input::table
        .filter(rejected_input::received_at.lt(to_db(cutoff)))
        .order(rejected_input::id.asc())
        .limit(batch)
        .select(rejected_input::id)
        .load(conn)?;
    let removed = if ids.is_empty() {
        0
    } else {
        diesel::delete(rejected_input::table.filter(rejected_input::id.eq_any(&ids)))
            .execute(conn)?
    };
    Ok(RetentionBatch {
        removed,
        done: ids.len() < usize::try_from(batch).unwrap_or(usize::MAX),
    })
}
