//! The compliance report kept per day (README, "A year of history"):
//! `tally_days` holds, per UTC day of the conversations' `opened_at`,
//! request type, client and timer kind, the counts and the day's sorted
//! reply times; `tally_stale` the days whose summary is missing or out of
//! date. Triggers on `timers` and `conversations` (migration
//! `2026-12-07-000060_tally_days`) mark a day whenever anything it counts
//! changes; the rebuild (`Deadlines::rebuild_tally_day`) clears the mark and
//! replaces the day's rows in one transaction.

use chrono::NaiveDate;
use diesel::prelude::*;

use super::schema::{tally_days, tally_rules, tally_stale};
use super::{AnyConnection, StoreError};

type Result<T> = std::result::Result<T, StoreError>;

/// One day's figures for one request type, client and timer kind.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = tally_days)]
pub struct DaySummary {
    pub day: NaiveDate,
    pub request_type: String,
    pub client_id: String,
    /// The timer kind's stored name (`first_response`, …).
    pub timer: String,
    pub conversations: i64,
    pub met: i64,
    pub missed: i64,
    pub breached: i64,
    /// The reply times, sorted: [`encode_times`].
    pub times: Vec<u8>,
}

/// The stale days in `[from, to)`, oldest first.
pub fn stale_days_between(
    conn: &mut AnyConnection,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<NaiveDate>> {
    Ok(tally_stale::table
        .filter(tally_stale::day.ge(from))
        .filter(tally_stale::day.lt(to))
        .order(tally_stale::day.asc())
        .select(tally_stale::day)
        .distinct()
        .load(conn)?)
}

/// Up to `limit` stale days, newest first: today's and yesterday's change
/// most and are read most.
pub fn stale_days(conn: &mut AnyConnection, limit: i64) -> Result<Vec<NaiveDate>> {
    Ok(tally_stale::table
        .order(tally_stale::day.desc())
        .limit(limit)
        .select(tally_stale::day)
        .distinct()
        .load(conn)?)
}

/// How many days are stale.
pub fn stale_count(conn: &mut AnyConnection) -> Result<i64> {
    Ok(tally_stale::table
        .select(diesel::dsl::count(tally_stale::day).aggregate_distinct())
        .get_result(conn)?)
}

/// Clears `day`'s marks; false when it was not marked (another rebuild took
/// it). On PostgreSQL it first takes the day's advisory lock exclusive (see
/// migration `000060`): that waits for every writer that marked the day and
/// has not committed, so what the caller reads after it includes their
/// writes, and a writer that marks the day meanwhile waits for the
/// caller's commit and leaves the day marked.
pub fn take_stale(conn: &mut AnyConnection, day: NaiveDate) -> Result<bool> {
    if let AnyConnection::Postgresql(c) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock(27511, $1 - DATE '1970-01-01')")
            .bind::<diesel::sql_types::Date, _>(day)
            .execute(c)?;
    }
    Ok(diesel::delete(tally_stale::table.filter(tally_stale::day.eq(day))).execute(conn)? > 0)
}

/// The rules the summaries were made by; `None` before any were recorded.
pub fn rules(conn: &mut AnyConnection) -> Result<Option<String>> {
    Ok(tally_rules::table
        .select(tally_rules::rules)
        .first(conn)
        .optional()?)
}

/// Marks every day that has conversations stale and records `rules` as
/// what the summaries will be made by: the caller's rules differ from
/// those that made them. Run in one transaction.
pub fn remake_all(conn: &mut AnyConnection, rules: &str) -> Result<()> {
    let mark = match conn {
        AnyConnection::Postgresql(_) => {
            "INSERT INTO tally_stale (day) SELECT DISTINCT c.day \
             FROM (SELECT opened_at::date AS day FROM conversations) c \
             WHERE NOT EXISTS (SELECT 1 FROM tally_stale s WHERE s.day = c.day)"
        }
        AnyConnection::Sqlite(_) => {
            "INSERT OR IGNORE INTO tally_stale (day) SELECT DISTINCT date(opened_at) FROM conversations"
        }
    };
    diesel::sql_query(mark).execute(conn)?;
    crate::on_backend!(conn, |c| diesel::insert_into(tally_rules::table)
        .values((tally_rules::id.eq(1), tally_rules::rules.eq(rules)))
        .on_conflict(tally_rules::id)
        .do_update()
        .set(tally_rules::rules.eq(rules))
        .execute(c))?;
    Ok(())
}

/// The summaries of the days in `[from, to)`, of one client or all,
/// stale ones included (the caller leaves those out).
pub fn summaries_between(
    conn: &mut AnyConnection,
    client: Option<&str>,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DaySummary>> {
    let mut q = tally_days::table
        .filter(tally_days::day.ge(from))
        .filter(tally_days::day.lt(to))
        .select(DaySummary::as_select())
        .into_boxed();
    if let Some(client) = client {
        q = q.filter(tally_days::client_id.eq(client.to_string()));
    }
    Ok(q.load(conn)?)
}

/// Replaces `day`'s summary rows with `rows`.
pub fn replace_day(conn: &mut AnyConnection, day: NaiveDate, rows: &[DaySummary]) -> Result<()> {
    diesel::delete(tally_days::table.filter(tally_days::day.eq(day))).execute(conn)?;
    // Nine columns a row: far below either backend's limit of parameters.
    for chunk in rows.chunks(1_000) {
        crate::on_backend!(conn, |c| diesel::insert_into(tally_days::table)
            .values(chunk)
            .execute(c))?;
    }
    Ok(())
}

/// Sorted times, compactly: the first as a zig-zag varint, then each
/// difference to the one before (never negative) as a varint, so a day's
/// thousands of replies take two or three bytes each.
pub fn encode_times(sorted: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sorted.len() * 3);
    let mut prev = 0i64;
    for (i, &t) in sorted.iter().enumerate() {
        let v = if i == 0 {
            ((t << 1) ^ (t >> 63)) as u64
        } else {
            t.wrapping_sub(prev) as u64
        };
        prev = t;
        let mut v = v;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

/// The times [`encode_times`] wrote, appended to `out`.
pub fn decode_times(bytes: &[u8], out: &mut Vec<i64>) -> Result<()> {
    let mut prev = 0i64;
    let mut first = true;
    let (mut v, mut shift) = (0u64, 0u32);
    for &b in bytes {
        if shift >= 64 {
            return Err(StoreError::Corrupt(
                "tally_days.times: a varint too long".into(),
            ));
        }
        v |= u64::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 != 0 {
            continue;
        }
        let t = if first {
            first = false;
            ((v >> 1) as i64) ^ -((v & 1) as i64)
        } else {
            prev.wrapping_add(v as i64)
        };
        out.push(t);
        prev = t;
        (v, shift) = (0, 0);
    }
    if shift != 0 {
        return Err(StoreError::Corrupt("tally_days.times: cut short".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_back_as_written() {
        for times in [
            vec![],
            vec![0],
            vec![-5],
            vec![i64::MIN, -1, 0, 1, i64::MAX],
            vec![60, 60, 61, 3_600, 86_400 * 30],
            (0..1000).map(|i| i * 37 - 500).collect(),
        ] {
            let bytes = encode_times(&times);
            let mut back = Vec::new();
            decode_times(&bytes, &mut back).unwrap();
            assert_eq!(back, times);
        }
        assert!(decode_times(&[0x80], &mut Vec::new()).is_err());
    }
}
