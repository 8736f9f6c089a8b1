//! Contract versions: every version in force once is kept, with its source, so
//! each conversation keeps the windows it opened under.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::*;
use super::{AnyConnection, StoreError, to_db};
use crate::on_backend;

type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = contract_versions)]
pub struct ContractVersionRow {
    pub version: String,
    pub name: String,
    pub source: String,
    pub first_loaded_at: NaiveDateTime,
}

/// Keeps a contract version (its source text) once; returns whether it was new.
/// Conversations reference the version they opened under, so past versions
/// stay in the database after the contract changes.
pub fn record_contract_version(
    conn: &mut AnyConnection,
    version: &str,
    name: &str,
    source: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let row = ContractVersionRow {
        version: version.into(),
        name: name.into(),
        source: source.into(),
        first_loaded_at: to_db(now),
    };
    let n = on_backend!(conn, |c| diesel::insert_into(contract_versions::table)
        .values(&row)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

pub fn contract_version(conn: &mut AnyConnection, v: &str) -> Result<Option<ContractVersionRow>> {
    Ok(contract_versions::table
        .find(v)
        .select(ContractVersionRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn contract_versions_list(conn: &mut AnyConnection) -> Result<Vec<ContractVersionRow>> {
    Ok(contract_versions::table
        .order(contract_versions::first_loaded_at.asc())
        .select(ContractVersionRow::as_select())
        .load(conn)?)
}
