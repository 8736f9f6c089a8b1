//! Status links: the hash of each conversation's status-page token (README, "HTTP API").

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

/// [`insert_status_link`] for several conversations (one statement on
/// PostgreSQL): the conversations whose link was stored.
pub fn insert_status_links(
    conn: &mut AnyConnection,
    links: &[(i64, String)],
    now: DateTime<Utc>,
) -> Result<std::collections::HashSet<i64>> {
    let at = to_db(now);
    let rows: Vec<_> = links
        .iter()
        .map(|(id, hash)| {
            (
                status_links::token_hash.eq(hash.as_str()),
                status_links::conversation_id.eq(*id),
                status_links::created_at.eq(at),
            )
        })
        .collect();
    let mut stored = std::collections::HashSet::new();
    match conn {
        AnyConnection::Sqlite(c) => {
            for (row, (id, _)) in rows.iter().zip(links) {
                let inserted: Option<i64> = super::Cached(
                    diesel::insert_into(status_links::table)
                        .values(*row)
                        .on_conflict_do_nothing()
                        .returning(status_links::conversation_id),
                )
                .get_result(c)
                .optional()?;
                if inserted.is_some() {
                    stored.insert(*id);
                }
            }
        }
        AnyConnection::Postgresql(c) => {
            for chunk in rows.chunks(1_000) {
                let ids: Vec<i64> = crate::pg_cached!(
                    chunk.len(),
                    diesel::insert_into(status_links::table)
                        .values(chunk)
                        .on_conflict_do_nothing()
                        .returning(status_links::conversation_id),
                    |q| q.get_results(c)
                )?;
                stored.extend(ids);
            }
        }
    }
    Ok(stored)
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

/// `text` with every status-page token replaced by `…`: a token is the 40
/// hex digits after `status/` (or `status&#x2f;`, as HTML escaping writes
/// the slash).
pub(crate) fn redact_status_tokens(text: &str) -> String {
    const TOKEN: usize = 40;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("status") {
        let after = &rest[i + "status".len()..];
        let sep = ["/", "&#x2f;", "&#x2F;"]
            .into_iter()
            .find(|s| after.starts_with(s));
        let Some(sep) = sep else {
            out.push_str(&rest[..i + "status".len()]);
            rest = after;
            continue;
        };
        let tail = &after[sep.len()..];
        let hex = tail
            .bytes()
            .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            .count();
        out.push_str(&rest[..i + "status".len() + sep.len()]);
        if hex == TOKEN {
            out.push('…');
            rest = &tail[TOKEN..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// Once an acknowledgement is delivered its status token has no business
/// in the database: the outbox row keeps the mail with the link redacted.
/// One query finds the acknowledgements among the delivered rows; only
/// those are rewritten.
pub(crate) fn forget_delivered_tokens_of(conn: &mut AnyConnection, ids: &[i64]) -> Result<()> {
    let acks: Vec<(i64, String)> = outbox::table
        .filter(outbox::id.eq_any(ids))
        .filter(outbox::dedupe_key.like("ack:%"))
        .select((outbox::id, outbox::payload))
        .load(conn)?;
    for (id, payload) in acks {
        let redacted = redact_status_tokens(&payload);
        if redacted != payload {
            diesel::update(outbox::table.find(id))
                .set(outbox::payload.eq(redacted))
                .execute(conn)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_in_text_and_escaped_html() {
        let t = "0123456789abcdef0123456789abcdef01234567";
        let text = format!(
            "see http://x/status/{t} and <a href=\"http:&#x2f;&#x2f;x&#x2f;status&#x2f;{t}\">; status/short, status: fine"
        );
        let r = redact_status_tokens(&text);
        assert!(!r.contains(t), "{r}");
        assert!(r.contains("http://x/status/… and"), "{r}");
        assert!(r.contains("status&#x2f;…\""), "{r}");
        assert!(r.contains("status/short, status: fine"), "{r}");
        assert_eq!(redact_status_tokens("no links"), "no links");
    }
}
