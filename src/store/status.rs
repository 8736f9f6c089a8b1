//! Status links: the hash of each conversation's status-page token (SPEC 12).

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::*;
use super::{AnyConnection, StoreError, to_db};
use crate::on_backend;

type Result<T> = std::result::Result<T, StoreError>;

/// Stores the token hash of a conversation once; `false` when it already
/// has one (a concurrent opener won), so the caller's token opens nothing.
pub fn insert_status_link(
    conn: &mut AnyConnection,
    conversation_id: i64,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let n = on_backend!(conn, |c| diesel::insert_into(status_links::table)
        .values((
            status_links::token_hash.eq(token_hash),
            status_links::conversation_id.eq(conversation_id),
            status_links::created_at.eq(to_db(now)),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

/// The conversation a token hash opens. An index lookup by the hash: the
/// database never sees the token, and nothing secret is compared byte by
/// byte in a way that depends on it (the hash of a guess shares no prefix
/// with the stored hash that the guesser could steer).
pub fn conversation_by_status_hash(
    conn: &mut AnyConnection,
    token_hash: &str,
) -> Result<Option<(i64, String)>> {
    Ok(status_links::table
        .find(token_hash)
        .select((status_links::conversation_id, status_links::token_hash))
        .first(conn)
        .optional()?)
}
