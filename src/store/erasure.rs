//! Erasure of a person or a client (README, "Erasure"): their bodies, raw
//! mail, addresses and names go from every table; the anonymous SLA facts
//! (conversations, timers, fired steps, message instants and directions)
//! stay.
//!
//! Two layers. [`STEPS`] is the policy, one entry per place personal data
//! is kept, each saying what goes there (a body is emptied, an
//! acknowledgement to the person deleted, a status link withdrawn); a
//! channel that keeps data of its own adds a step. Then [`sweep`] replaces
//! any occurrence of the addresses left in any text column of any table,
//! found from the database's own catalog: a table added later is covered
//! without a change here.

use std::collections::{BTreeMap, BTreeSet};

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};

use super::messages::BodyRemoved;
use super::schema::*;
use super::{AnyConnection, StoreError};

type Result<T> = std::result::Result<T, StoreError>;

/// What an erased address becomes where a row keeps its place.
pub const ERASED: &str = "[erased]";

/// Tables the sweep leaves alone: the contract's own text (the operator
/// edits the file; [`mentions_in_contracts`] says so), and bookkeeping that
/// holds no personal data.
const NOT_SWEPT: &[&str] = &[
    "contract_versions",
    "erasures",
    "retention_progress",
    "__diesel_schema_migrations",
    "sqlite_sequence",
];

/// Whom an erasure is about.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// Lower-case addresses (and other identifiers a channel stores as a
    /// sender, such as a chat user id).
    pub addresses: Vec<String>,
    /// Conversations that are theirs as a whole: every body goes, and the
    /// client's status links.
    pub conversations: Vec<i64>,
    /// A client erased as a whole: its stored name goes too.
    pub client: Option<String>,
}

/// Rows changed per `table` (or `table.column` for the sweep).
pub type Counts = BTreeMap<String, usize>;

/// One place personal data is kept, and what erasing removes there.
pub struct Step {
    pub name: &'static str,
    pub run: fn(&mut AnyConnection, &Subject) -> Result<usize>,
}

/// The policy, in order: bodies before the sweep, so that the sweep does
/// not rewrite text that is about to go whole.
pub const STEPS: &[Step] = &[
    Step {
        name: "message_bodies",
        run: empty_bodies,
    },
    Step {
        name: "rejected_input",
        run: delete_rejected,
    },
    Step {
        name: "outbox",
        run: delete_mail_to_them,
    },
    Step {
        name: "status_links",
        run: withdraw_status_links,
    },
    Step {
        name: "conversations",
        run: clear_openers,
    },
    Step {
        name: "clients",
        run: clear_client_name,
    },
];

/// Runs every step, then the sweep.
pub fn erase(conn: &mut AnyConnection, subject: &Subject) -> Result<Counts> {
    let mut counts = Counts::new();
    for step in STEPS {
        let n = (step.run)(conn, subject)?;
        if n > 0 {
            counts.insert(step.name.to_string(), n);
        }
    }
    for (column, n) in sweep(conn, &subject.addresses)? {
        *counts.entry(column).or_default() += n;
    }
    Ok(counts)
}

/// Where `needle` (lower-case) occurs in `hay` as a whole address, ignoring
/// ASCII case: not inside a longer one (`ann@x.test` is not in
/// `joann@x.test` nor in `ann@x.tests`).
fn occurrences(hay: &[u8], needle: &str) -> Vec<usize> {
    let n = needle.as_bytes();
    if n.is_empty() || hay.len() < n.len() {
        return Vec::new();
    }
    let part_before = |b: u8| b.is_ascii_alphanumeric() || b"._%+-".contains(&b);
    let part_after = |b: u8| b.is_ascii_alphanumeric() || b"-_".contains(&b);
    let mut out = Vec::new();
    let mut at = 0;
    while at + n.len() <= hay.len() {
        if hay[at..at + n.len()].eq_ignore_ascii_case(n)
            && (at == 0 || !part_before(hay[at - 1]))
            && hay.get(at + n.len()).is_none_or(|&b| !part_after(b))
        {
            out.push(at);
            at += n.len();
        } else {
            at += 1;
        }
    }
    out
}

/// `text` with every occurrence of `addresses` (see [`occurrences`])
/// replaced by [`ERASED`]; `None` when none occurs.
pub fn without(text: &str, addresses: &[String]) -> Option<String> {
    let mut out = text.to_string();
    let mut changed = false;
    for a in addresses {
        let found = occurrences(out.as_bytes(), a);
        if found.is_empty() {
            continue;
        }
        // A match is ASCII-case-equal to an ASCII-or-UTF-8 needle, so it
        // starts and ends on character boundaries.
        let mut next = String::with_capacity(out.len());
        let mut from = 0;
        for at in found {
            next.push_str(&out[from..at]);
            next.push_str(ERASED);
            from = at + a.len();
        }
        next.push_str(&out[from..]);
        out = next;
        changed = true;
    }
    changed.then_some(out)
}

/// Whether `bytes` name any of `addresses` (see [`occurrences`]).
pub fn mentions(bytes: &[u8], addresses: &[String]) -> bool {
    addresses.iter().any(|a| !occurrences(bytes, a).is_empty())
}

/// The messages that are the subject's: in their conversations, or sent
/// by or to one of their addresses.
fn their_messages(conn: &mut AnyConnection, subject: &Subject) -> Result<BTreeSet<i64>> {
    let mut ids = BTreeSet::new();
    for chunk in subject.conversations.chunks(5_000) {
        let found: Vec<i64> = messages::table
            .filter(messages::conversation_id.eq_any(chunk))
            .select(messages::id)
            .load(conn)?;
        ids.extend(found);
    }
    let filter = like_any(&["sender", "recipients"], &subject.addresses);
    if let Some(filter) = filter {
        let rows: Vec<(i64, String, String)> = messages::table
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(&filter))
            .select((messages::id, messages::sender, messages::recipients))
            .load(conn)?;
        ids.extend(
            rows.into_iter()
                .filter(|(_, s, r)| {
                    mentions(s.as_bytes(), &subject.addresses)
                        || mentions(r.as_bytes(), &subject.addresses)
                })
                .map(|(id, _, _)| id),
        );
    }
    Ok(ids)
}

/// Bodies and raw mail of their messages, and of any message whose text
/// or raw mail names them (a Cc: header, a forwarded signature), emptied;
/// the row stays with `removed = 'erasure'` so the timeline says why.
fn empty_bodies(conn: &mut AnyConnection, subject: &Subject) -> Result<usize> {
    let mut ids = their_messages(conn, subject)?;
    // Every kept body is read once, a page at a time: raw mail is bytes
    // in any case and encoding, which no portable SQL searches.
    let mut after = 0i64;
    loop {
        let page: Vec<(i64, String, Option<Vec<u8>>)> = message_bodies::table
            .filter(message_bodies::message_id.gt(after))
            .filter(message_bodies::removed.is_null())
            .order(message_bodies::message_id.asc())
            .limit(500)
            .select((
                message_bodies::message_id,
                message_bodies::body,
                message_bodies::raw,
            ))
            .load(conn)?;
        let Some(last) = page.last().map(|p| p.0) else {
            break;
        };
        after = last;
        ids.extend(page.into_iter().filter_map(|(id, body, raw)| {
            let named = mentions(body.as_bytes(), &subject.addresses)
                // Raw mail that cannot be read goes too: nobody can say
                // whom it names.
                || raw.is_some_and(|r| match super::messages::unpack_raw(r) {
                    Ok(r) => mentions(&r, &subject.addresses),
                    Err(_) => true,
                });
            named.then_some(id)
        }));
    }
    let ids: Vec<i64> = ids.into_iter().collect();
    let mut n = 0;
    for chunk in ids.chunks(5_000) {
        n += diesel::update(
            message_bodies::table
                .filter(message_bodies::message_id.eq_any(chunk))
                .filter(
                    message_bodies::removed
                        .is_null()
                        .or(message_bodies::removed.ne(BodyRemoved::Erasure.as_stored()))
                        .or(message_bodies::body.ne(""))
                        .or(message_bodies::raw.is_not_null()),
                ),
        )
        .set((
            message_bodies::body.eq(""),
            message_bodies::raw.eq(None::<Vec<u8>>),
            message_bodies::removed.eq(BodyRemoved::Erasure.as_stored()),
        ))
        .execute(conn)?;
    }
    Ok(n)
}

/// Input kept raw because it could not be read, that names them: deleted
/// whole (it is nothing but their mail).
fn delete_rejected(conn: &mut AnyConnection, subject: &Subject) -> Result<usize> {
    let mut doomed = Vec::new();
    let mut after = 0i64;
    loop {
        let page: Vec<(i64, String, Vec<u8>)> = rejected_input::table
            .filter(rejected_input::id.gt(after))
            .order(rejected_input::id.asc())
            .limit(500)
            .select((
                rejected_input::id,
                rejected_input::detail,
                rejected_input::raw,
            ))
            .load(conn)?;
        let Some(last) = page.last().map(|p| p.0) else {
            break;
        };
        after = last;
        doomed.extend(
            page.into_iter()
                .filter(|(_, detail, raw)| {
                    mentions(detail.as_bytes(), &subject.addresses)
                        || mentions(raw, &subject.addresses)
                })
                .map(|(id, _, _)| id),
        );
    }
    let mut n = 0;
    for chunk in doomed.chunks(5_000) {
        n += diesel::delete(rejected_input::table.filter(rejected_input::id.eq_any(chunk)))
            .execute(conn)?;
    }
    Ok(n)
}

/// Notifications addressed to them (acknowledgements), sent or waiting:
/// deleted; nobody is to write to an erased person. Alerts to the team
/// that mention them keep their place and lose the address in the sweep.
fn delete_mail_to_them(conn: &mut AnyConnection, subject: &Subject) -> Result<usize> {
    let Some(filter) = like_any(&["target"], &subject.addresses) else {
        return Ok(0);
    };
    let rows: Vec<(i64, String)> = outbox::table
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(&filter))
        .select((outbox::id, outbox::target))
        .load(conn)?;
    let ids: Vec<i64> = rows
        .into_iter()
        .filter(|(_, t)| mentions(t.as_bytes(), &subject.addresses))
        .map(|(id, _)| id)
        .collect();
    let mut n = 0;
    for chunk in ids.chunks(5_000) {
        n += diesel::delete(outbox::table.filter(outbox::id.eq_any(chunk))).execute(conn)?;
    }
    Ok(n)
}

/// The status-page links of their conversations stop opening.
fn withdraw_status_links(conn: &mut AnyConnection, subject: &Subject) -> Result<usize> {
    let mut n = 0;
    for chunk in subject.conversations.chunks(5_000) {
        n +=
            diesel::delete(status_links::table.filter(status_links::conversation_id.eq_any(chunk)))
                .execute(conn)?;
    }
    Ok(n)
}

/// A conversation's opener is the address threading by subject looks for:
/// emptied, so no later mail threads in by it.
fn clear_openers(conn: &mut AnyConnection, subject: &Subject) -> Result<usize> {
    let mut n = 0;
    for chunk in subject.addresses.chunks(5_000) {
        n += diesel::update(conversations::table.filter(conversations::opener.eq_any(chunk)))
            .set(conversations::opener.eq(""))
            .execute(conn)?;
    }
    Ok(n)
}

/// An erased client keeps its id (the contract's key, which the SLA facts
/// are counted under) and loses its stored name.
fn clear_client_name(conn: &mut AnyConnection, subject: &Subject) -> Result<usize> {
    let Some(client) = &subject.client else {
        return Ok(0);
    };
    Ok(diesel::update(
        clients::table
            .filter(clients::id.eq(client))
            .filter(clients::name.ne(client)),
    )
    .set(clients::name.eq(client))
    .execute(conn)?)
}

/// `a LIKE …` for every column and address, as SQL (`None` without
/// addresses). Addresses are quoted as literals: they may hold `'`, `%`
/// or `_`, and the filter is only a pre-selection checked again exactly.
fn like_any(columns: &[&str], addresses: &[String]) -> Option<String> {
    let patterns: Vec<String> = addresses
        .iter()
        .filter(|a| !a.is_empty())
        .map(|a| {
            let escaped = a
                .replace('!', "!!")
                .replace('%', "!%")
                .replace('_', "!_")
                .replace('\'', "''");
            format!("'%{escaped}%'")
        })
        .collect();
    if patterns.is_empty() {
        return None;
    }
    let mut terms = Vec::new();
    for c in columns {
        for p in &patterns {
            terms.push(format!("lower({c}) LIKE {p} ESCAPE '!'"));
        }
    }
    Some(format!("({})", terms.join(" OR ")))
}

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
}

/// Every text column of every table, from the database's catalog.
pub fn text_columns(conn: &mut AnyConnection) -> Result<Vec<(String, String)>> {
    let columns: Vec<Column> = match conn {
        AnyConnection::Postgresql(c) => diesel::sql_query(
            "SELECT c.table_name::text AS table_name, c.column_name::text AS column_name \
             FROM information_schema.columns c JOIN information_schema.tables t \
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
               AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb') \
             ORDER BY 1, 2",
        )
        .load(c)?,
        AnyConnection::Sqlite(c) => diesel::sql_query(
            "SELECT m.name AS table_name, p.name AS column_name \
             FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND (upper(p.type) LIKE '%TEXT%' \
               OR upper(p.type) LIKE '%CHAR%' OR upper(p.type) LIKE '%CLOB%' OR p.type = '') \
             ORDER BY 1, 2",
        )
        .load(c)?,
    };
    Ok(columns
        .into_iter()
        .map(|c| (c.table_name, c.column_name))
        .collect())
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = Text)]
    rid: String,
    #[diesel(sql_type = Nullable<Text>)]
    value: Option<String>,
}

fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Replaces the addresses in every text column of every table but
/// [`NOT_SWEPT`]; rows changed per `table.column`.
pub fn sweep(conn: &mut AnyConnection, addresses: &[String]) -> Result<Counts> {
    let mut counts = Counts::new();
    let pg = matches!(conn, AnyConnection::Postgresql(_));
    // A row's address within its table: PostgreSQL's ctid, SQLite's rowid.
    let (rid, by_rid) = if pg {
        ("ctid::text", "ctid = CAST({} AS tid)")
    } else {
        ("CAST(rowid AS TEXT)", "rowid = CAST({} AS INTEGER)")
    };
    for (table, column) in text_columns(conn)? {
        if NOT_SWEPT.contains(&table.as_str()) {
            continue;
        }
        let as_text = format!("CAST({} AS TEXT)", quoted(&column));
        let Some(filter) = like_any(&[&as_text], addresses) else {
            return Ok(counts);
        };
        let found: Vec<Found> = diesel::sql_query(format!(
            "SELECT {rid} AS rid, CAST({c} AS TEXT) AS value FROM {t} WHERE {filter}",
            c = quoted(&column),
            t = quoted(&table),
        ))
        .load(conn)?;
        let mut n = 0;
        for f in found {
            let Some(replaced) = f.value.as_deref().and_then(|v| without(v, addresses)) else {
                continue;
            };
            let cast = if pg {
                // json/jsonb columns take their text back through a cast.
                format!(
                    "CAST({} AS {})",
                    literal(&replaced),
                    column_type_pg(conn, &table, &column)?
                )
            } else {
                literal(&replaced)
            };
            n += diesel::sql_query(format!(
                "UPDATE {t} SET {c} = {cast} WHERE {w}",
                t = quoted(&table),
                c = quoted(&column),
                w = by_rid.replace("{}", &literal(&f.rid)),
            ))
            .execute(conn)?;
        }
        if n > 0 {
            counts.insert(format!("{table}.{column}"), n);
        }
    }
    Ok(counts)
}

fn column_type_pg(conn: &mut AnyConnection, table: &str, column: &str) -> Result<String> {
    #[derive(QueryableByName)]
    struct Type {
        #[diesel(sql_type = Text)]
        data_type: String,
    }
    let t: Type = diesel::sql_query(
        "SELECT data_type::text AS data_type FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2",
    )
    .bind::<Text, _>(table)
    .bind::<Text, _>(column)
    .get_result(conn)?;
    Ok(match t.data_type.as_str() {
        "json" => "json",
        "jsonb" => "jsonb",
        _ => "text",
    }
    .into())
}

/// Stored contract versions whose text names one of the addresses: the
/// sweep leaves them (a version's text is what its hash is of), and the
/// operator is told to edit the contract file.
pub fn mentions_in_contracts(conn: &mut AnyConnection, addresses: &[String]) -> Result<usize> {
    let sources: Vec<String> = contract_versions::table
        .select(contract_versions::source)
        .load(conn)?;
    Ok(sources
        .iter()
        .filter(|s| mentions(s.as_bytes(), addresses))
        .count())
}

/// Records that an erasure took place: when, of what kind (`address` or
/// `client`), and the rows changed per table. Never whom.
pub fn record(
    conn: &mut AnyConnection,
    at: chrono::DateTime<chrono::Utc>,
    kind: &str,
    counts: &Counts,
) -> Result<()> {
    let counts = serde_json::to_string(counts).expect("a map of counts serializes");
    diesel::insert_into(erasures::table)
        .values((
            erasures::erased_at.eq(super::to_db(at)),
            erasures::kind.eq(kind),
            erasures::counts.eq(counts),
        ))
        .execute(conn)?;
    Ok(())
}

/// A recorded erasure: when, kind, rows per table.
pub fn erasures_recorded(
    conn: &mut AnyConnection,
) -> Result<Vec<(chrono::DateTime<chrono::Utc>, String, Counts)>> {
    let rows: Vec<(chrono::NaiveDateTime, String, String)> = erasures::table
        .order(erasures::id.asc())
        .select((erasures::erased_at, erasures::kind, erasures::counts))
        .load(conn)?;
    rows.into_iter()
        .map(|(at, kind, counts)| {
            let counts = serde_json::from_str(&counts)
                .map_err(|e| StoreError::Corrupt(format!("erasures.counts: {e}")))?;
            Ok((super::from_db(at), kind, counts))
        })
        .collect()
}

/// The tables a sweep or a step may have changed, for the vacuum after
/// commit.
pub fn touched_tables(counts: &Counts) -> BTreeSet<String> {
    counts
        .keys()
        .map(|k| k.split('.').next().unwrap_or(k).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_replaced_whatever_their_case() {
        let a = vec!["ann@client.test".to_string()];
        assert_eq!(
            without("To: Ann <Ann@Client.TEST>, bob@x.test", &a).as_deref(),
            Some("To: Ann <[erased]>, bob@x.test")
        );
        assert_eq!(without("nothing here", &a), None);
        assert!(mentions(b"Cc: ANN@client.test", &a));
        assert!(!mentions(b"Cc: anne@client.test", &a));
        assert!(!mentions(b"Cc: joann@client.test", &a));
        assert!(!mentions(b"ann@client.tests", &a));
        assert!(mentions(b"write to ann@client.test.", &a));
    }

    #[test]
    fn like_patterns_quote_what_sql_would_read() {
        let f = like_any(&["sender"], &["o'neil_x%@c.test".into()]).unwrap();
        assert_eq!(f, "(lower(sender) LIKE '%o''neil!_x!%@c.test%' ESCAPE '!')");
    }
}
