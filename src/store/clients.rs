//! Clients: the organisations the team serves, recorded as they first appear.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::*;
use super::{AnyConnection, StoreError, to_db};
use crate::on_backend;

type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = clients)]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub created_at: NaiveDateTime,
}

/// Creates the client or updates its display name (the contract may rename it).
///
/// Looks first and writes only when something changes: an `ON CONFLICT DO
/// UPDATE` locks the client's row until commit even when the name is the same,
/// so on PostgreSQL every transaction opening a conversation for one client
/// waited for the previous one (BENCHMARKS.md, section a, `c11c34c`).
pub fn upsert_client(
    conn: &mut AnyConnection,
    id: &str,
    name: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    if client(conn, id)?.is_some_and(|c| c.name == name) {
        return Ok(());
    }
    let row = ClientRow {
        id: id.into(),
        name: name.into(),
        created_at: to_db(now),
    };
    on_backend!(conn, |c| diesel::insert_into(clients::table)
        .values(&row)
        .on_conflict(clients::id)
        .do_update()
        .set(clients::name.eq(name))
        .execute(c))?;
    Ok(())
}

pub fn client(conn: &mut AnyConnection, id: &str) -> Result<Option<ClientRow>> {
    Ok(clients::table
        .find(id)
        .select(ClientRow::as_select())
        .first(conn)
        .optional()?)
}
