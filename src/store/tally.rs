//! The compliance report's figures counted in SQL (README, "A year of
//! history"): per request type, client and timer, how many conversations,
//! how many timers met, missed and breached, and the percentiles of the
//! replies' stored business seconds; and the conversations behind one of
//! those figures. A year is a few hundred groups on the wire instead of
//! millions of rows. The in-process tally (`Reads::tally`) is the
//! reference these must equal (tests/storage/compliance.rs).
//!
//! Also the walk that measures the timers stored before
//! `timers.business_seconds` existed, and whether it is through: until it
//! is, the percentiles here would miss those timers, and the reports tally
//! rows instead.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};

use super::schema::*;
use super::{AnyConnection, StoreError, from_db, parse_stored, to_db};
use crate::contract::Timer;
use crate::sla::TimerStatus;

type Result<T> = std::result::Result<T, StoreError>;

/// The walk's progress and its end in `retention_progress` (migration
/// `2026-12-07-000052_timer_business_seconds` sets the end).
const WALK: &str = "business_seconds";
const WALK_END: &str = "business_seconds_until";

/// One group's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallyCount {
    pub request_type: String,
    pub client_id: String,
    pub kind: Timer,
    /// Conversations with at least one timer of this kind.
    pub conversations: i64,
    pub met: i64,
    pub missed: i64,
    pub breached: i64,
}

/// One group's nearest-rank percentiles of the replies' business seconds
/// (`backtest::percentile`'s rule: the value at rank ⌈p·n⌉).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallyPercentiles {
    pub request_type: String,
    pub client_id: String,
    pub kind: Timer,
    pub p50: i64,
    pub p90: i64,
}

/// Which conversations of a period a figure stands for: `None` is any.
#[derive(Debug, Clone, Default)]
pub struct TallyCell<'a> {
    pub request_type: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub kind: Option<Timer>,
    /// A timer of that kind with this outcome; `None`: any timer.
    pub status: Option<TimerStatus>,
}

#[derive(QueryableByName)]
struct CountRecord {
    #[diesel(sql_type = Text)]
    request_type: String,
    #[diesel(sql_type = Text)]
    client_id: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    conversations: i64,
    #[diesel(sql_type = BigInt)]
    met: i64,
    #[diesel(sql_type = BigInt)]
    missed: i64,
    #[diesel(sql_type = BigInt)]
    breached: i64,
}

#[derive(QueryableByName)]
struct PercentileRecord {
    #[diesel(sql_type = Text)]
    request_type: String,
    #[diesel(sql_type = Text)]
    client_id: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    p50: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    p90: Option<i64>,
}

/// `?N` placeholders as the backend writes them (`$N` on PostgreSQL).
fn placeholders(conn: &AnyConnection, sql: &str) -> String {
    match conn {
        AnyConnection::Sqlite(_) => sql.to_string(),
        AnyConnection::Postgresql(_) => sql.replace('?', "$"),
    }
}

/// The period's conversations (optionally one client's) as `c` joined to
/// those of their timers that `timers` (a condition on `t`, or `TRUE`)
/// admits as `t`. Binds: ?1 from, ?2 to, ?3 the client when `client` is
/// set.
fn period_join(client: bool, timers: &str) -> String {
    let client = if client { " AND c.client_id = ?3" } else { "" };
    format!(
        "FROM conversations c JOIN timers t ON t.conversation_id = c.id \
         WHERE c.opened_at >= ?1 AND c.opened_at < ?2{client} AND {timers}"
    )
}

/// More memory for the sorts and hashes of a report's statements than a
/// page's (PostgreSQL's default is 4 MB): a year's join hashes 2 million
/// conversations, which spilled to disk in 64 batches. For the report's
/// transaction only.
fn report_memory(conn: &mut AnyConnection) -> Result<()> {
    if let AnyConnection::Postgresql(c) = conn {
        diesel::sql_query("SET LOCAL work_mem = '128MB'").execute(c)?;
    }
    Ok(())
}

/// Runs `sql` with the period's binds on either backend (raw SQL is never
/// in diesel's statement cache: planned with the values, as a period's
/// bounds need).
macro_rules! period_query {
    ($conn:expr, $sql:expr, $from:expr, $to:expr, $client:expr, $row:ty) => {{
        let sql = placeholders($conn, &$sql);
        let (from, to) = (to_db($from), to_db($to));
        crate::on_backend!($conn, |c| match $client {
            Some(client) => diesel::sql_query(sql)
                .bind::<Timestamp, _>(from)
                .bind::<Timestamp, _>(to)
                .bind::<Text, _>(client)
                .load::<$row>(c),
            None => diesel::sql_query(sql)
                .bind::<Timestamp, _>(from)
                .bind::<Timestamp, _>(to)
                .load::<$row>(c),
        })
    }};
}

/// The figures of the conversations opened in `[from, to)`, of one client
/// or all: per request type, client and timer kind, the counts, and the p50
/// and p90 of the stored business seconds of the replies given (met or
/// missed; groups without a measured reply have none).
pub fn tally(
    conn: &mut AnyConnection,
    client: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(Vec<TallyCount>, Vec<TallyPercentiles>)> {
    let pg = matches!(conn, AnyConnection::Postgresql(_));
    report_memory(conn)?;
    // A conversation counts once per kind however many timers of it it has
    // (next responses, updates): the engine numbers each kind's timers from
    // 0 and never deletes one, so the conversations with a kind are those
    // with its timer 0 — counted without the sort a DISTINCT needs.
    let counts = format!(
        "SELECT c.request_type AS request_type, c.client_id AS client_id, t.kind AS kind, \
           COUNT(CASE WHEN t.seq = 0 THEN 1 END) AS conversations, \
           COUNT(CASE WHEN t.status = 'met' THEN 1 END) AS met, \
           COUNT(CASE WHEN t.status = 'missed' THEN 1 END) AS missed, \
           COUNT(CASE WHEN t.status = 'breached' THEN 1 END) AS breached \
         {} GROUP BY c.request_type, c.client_id, t.kind",
        period_join(client.is_some(), "TRUE")
    );
    let replies = period_join(
        client.is_some(),
        "t.kind <> 'resolution' AND t.status IN ('met', 'missed') \
         AND t.business_seconds IS NOT NULL",
    );
    // Nearest rank, `percentile`'s rule: PostgreSQL's `percentile_disc`
    // takes the value at ⌈p·n⌉ computed in float8 as Rust's f64 does;
    // SQLite ranks in a window, ⌈n/2⌉ and ⌈9n/10⌉ in integers, which is
    // what `ceil(0.9 * n)` gives in f64 for any n below 2^53.
    let percentiles = if pg {
        format!(
            "SELECT c.request_type AS request_type, c.client_id AS client_id, t.kind AS kind, \
               percentile_disc(0.5) WITHIN GROUP (ORDER BY t.business_seconds) AS p50, \
               percentile_disc(0.9) WITHIN GROUP (ORDER BY t.business_seconds) AS p90 \
             {replies} GROUP BY c.request_type, c.client_id, t.kind"
        )
    } else {
        format!(
            "SELECT request_type, client_id, kind, \
               MAX(CASE WHEN rn = (n + 1) / 2 THEN s END) AS p50, \
               MAX(CASE WHEN rn = (9 * n + 9) / 10 THEN s END) AS p90 \
             FROM (SELECT c.request_type AS request_type, c.client_id AS client_id, t.kind AS kind, \
                     t.business_seconds AS s, \
                     ROW_NUMBER() OVER (PARTITION BY c.request_type, c.client_id, t.kind \
                                        ORDER BY t.business_seconds) AS rn, \
                     COUNT(*) OVER (PARTITION BY c.request_type, c.client_id, t.kind) AS n \
                   {replies}) v \
             WHERE rn = (n + 1) / 2 OR rn = (9 * n + 9) / 10 \
             GROUP BY request_type, client_id, kind"
        )
    };
    let counts = period_query!(conn, counts, from, to, client, CountRecord)?
        .into_iter()
        .map(|r| {
            Ok(TallyCount {
                kind: parse_stored("timers.kind", &r.kind)?,
                request_type: r.request_type,
                client_id: r.client_id,
                conversations: r.conversations,
                met: r.met,
                missed: r.missed,
                breached: r.breached,
            })
        })
        .collect::<Result<_>>()?;
    let percentiles = period_query!(conn, percentiles, from, to, client, PercentileRecord)?
        .into_iter()
        .filter_map(|r| {
            let (p50, p90) = (r.p50?, r.p90?);
            Some(
                parse_stored("timers.kind", &r.kind).map(|kind| TallyPercentiles {
                    request_type: r.request_type,
                    client_id: r.client_id,
                    kind,
                    p50,
                    p90,
                }),
            )
        })
        .collect::<Result<_>>()?;
    Ok((counts, percentiles))
}

/// Up to `limit` ids, lowest first, of the conversations opened in
/// `[from, to)` that one figure of the report counts.
pub fn tally_cell(
    conn: &mut AnyConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    cell: &TallyCell<'_>,
    limit: i64,
) -> Result<Vec<i64>> {
    let mut q = conversations::table
        .inner_join(timers::table)
        .filter(conversations::opened_at.ge(to_db(from)))
        .filter(conversations::opened_at.lt(to_db(to)))
        .select(conversations::id)
        .distinct()
        .order(conversations::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(t) = cell.request_type {
        q = q.filter(conversations::request_type.eq(t.to_string()));
    }
    if let Some(c) = cell.client_id {
        q = q.filter(conversations::client_id.eq(c.to_string()));
    }
    if let Some(k) = cell.kind {
        q = q.filter(timers::kind.eq(k.as_str()));
    }
    if let Some(s) = cell.status {
        q = q.filter(timers::status.eq(s.as_str()));
    }
    Ok(q.load(conn)?)
}

/// Whether timers stored before `timers.business_seconds` existed are
/// still to be measured.
pub fn business_seconds_pending(conn: &mut AnyConnection) -> Result<bool> {
    let (done, end) = walk(conn)?;
    Ok(done < end)
}

/// The walk's progress and end (both 0 where the migration found no timer).
fn walk(conn: &mut AnyConnection) -> Result<(i64, i64)> {
    let rows: Vec<(String, i64)> = retention_progress::table
        .filter(retention_progress::what.eq_any([WALK, WALK_END]))
        .select((retention_progress::what, retention_progress::last_id))
        .load(conn)?;
    let of = |what: &str| {
        rows.iter()
            .find(|(w, _)| w == what)
            .map_or(0, |(_, id)| *id)
    };
    Ok((of(WALK), of(WALK_END)))
}

/// A settled reply stored before its business time was: what measuring it
/// needs of its conversation.
#[derive(Debug, Clone)]
pub struct Unmeasured {
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub request_type: String,
    pub client_id: String,
    pub contract_version: String,
}

/// The next `batch` unmeasured settled replies in id order after the
/// walk's progress (up to its end), and the id the walk reaches with them:
/// the end itself once fewer than `batch` are left.
pub fn unmeasured_replies(conn: &mut AnyConnection, batch: i64) -> Result<(Vec<Unmeasured>, i64)> {
    let (after, end) = walk(conn)?;
    if after >= end {
        return Ok((Vec::new(), end));
    }
    let rows: Vec<(
        i64,
        NaiveDateTime,
        Option<NaiveDateTime>,
        String,
        String,
        String,
    )> = timers::table
        .inner_join(conversations::table)
        .filter(timers::id.gt(after))
        .filter(timers::id.le(end))
        .filter(timers::kind.ne(Timer::Resolution.as_str()))
        .filter(timers::status.eq_any([TimerStatus::Met.as_str(), TimerStatus::Missed.as_str()]))
        .filter(timers::business_seconds.is_null())
        .order(timers::id.asc())
        .limit(batch)
        .select((
            timers::id,
            timers::started_at,
            timers::stopped_at,
            conversations::request_type,
            conversations::client_id,
            conversations::contract_version,
        ))
        .load(conn)?;
    let reached = if (rows.len() as i64) < batch {
        end
    } else {
        rows.last().map_or(end, |r| r.0)
    };
    let rows = rows
        .into_iter()
        .map(
            |(id, started, stopped, request_type, client_id, contract_version)| Unmeasured {
                id,
                started_at: from_db(started),
                stopped_at: stopped.map(from_db),
                request_type,
                client_id,
                contract_version,
            },
        )
        .collect();
    Ok((rows, reached))
}

/// Stores the business seconds measured for timers (`None`: no calendar
/// could measure it, as the tally would not either) and moves the walk to
/// `reached`. A timer that has its seconds meanwhile keeps them: the
/// refresh that settled it again measured its new stop.
pub fn save_measured(
    conn: &mut AnyConnection,
    measured: &[(i64, Option<i64>)],
    reached: i64,
    now: DateTime<Utc>,
) -> Result<()> {
    let measured: Vec<(i64, i64)> = measured
        .iter()
        .filter_map(|(id, s)| s.map(|s| (*id, s)))
        .collect();
    match conn {
        AnyConnection::Sqlite(c) => {
            for (id, secs) in &measured {
                diesel::update(timers::table.find(*id))
                    .filter(timers::business_seconds.is_null())
                    .set(timers::business_seconds.eq(*secs))
                    .execute(c)?;
            }
        }
        // One statement per batch: a year's back-fill is millions of rows.
        AnyConnection::Postgresql(c) => {
            use diesel::sql_types::Array;
            diesel::sql_query(
                "UPDATE timers AS t SET business_seconds = v.s \
                 FROM unnest($1::bigint[], $2::bigint[]) AS v(id, s) \
                 WHERE t.id = v.id AND t.business_seconds IS NULL",
            )
            .bind::<Array<BigInt>, _>(measured.iter().map(|m| m.0).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(measured.iter().map(|m| m.1).collect::<Vec<_>>())
            .execute(c)?;
        }
    }
    super::retention::save_progress(conn, WALK, reached, now)
}

/// Sets the walk's end to the newest timer and its progress back to the
/// start: for a bulk load that wrote timers without their business time
/// (the benchmark's generator), which the walk then measures.
pub fn remeasure_all(conn: &mut AnyConnection, now: DateTime<Utc>) -> Result<()> {
    let newest: Option<i64> = timers::table
        .select(diesel::dsl::max(timers::id))
        .first(conn)?;
    super::retention::save_progress(conn, WALK_END, newest.unwrap_or(0), now)?;
    super::retention::save_progress(conn, WALK, 0, now)
}

/// A client's conversations opened in `[from, to)` per request type, the
/// type first opened first (ties, the same instant, by the lowest id).
pub fn client_requests(
    conn: &mut AnyConnection,
    client: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(String, i64)>> {
    use diesel::dsl::{count_star, min};
    let mut rows: Vec<(String, i64, Option<NaiveDateTime>, Option<i64>)> = conversations::table
        .filter(conversations::client_id.eq(client))
        .filter(conversations::opened_at.ge(to_db(from)))
        .filter(conversations::opened_at.lt(to_db(to)))
        .group_by(conversations::request_type)
        .select((
            conversations::request_type,
            count_star(),
            min(conversations::opened_at),
            min(conversations::id),
        ))
        .load(conn)?;
    rows.sort_by_key(|r| (r.2, r.3));
    Ok(rows.into_iter().map(|r| (r.0, r.1)).collect())
}

/// Kept and broken promises of one request type in one week.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeekCount {
    pub request_type: String,
    /// Whole weeks from `from` (before it negative, after the period past
    /// its last): the caller folds those into the first and last week.
    pub week: i64,
    pub kept: i64,
    pub broken: i64,
}

/// The median first response of one request type in one week.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeekMedian {
    pub request_type: String,
    /// In `0..weeks`.
    pub week: i64,
    pub median: i64,
}

#[derive(QueryableByName)]
struct WeekRecord {
    #[diesel(sql_type = Text)]
    request_type: String,
    #[diesel(sql_type = BigInt)]
    week: i64,
    #[diesel(sql_type = BigInt)]
    kept: i64,
    #[diesel(sql_type = BigInt)]
    broken: i64,
}

#[derive(QueryableByName)]
struct MedianRecord {
    #[diesel(sql_type = Text)]
    request_type: String,
    #[diesel(sql_type = BigInt)]
    week: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    median: Option<i64>,
}

/// Whole weeks from `?1` (the period's start, a midnight) to `instant`, as
/// the record's `(t - start).num_days() / 7` counts them for `t` after the
/// start (whole seconds: the start is one).
fn weeks_since_start(conn: &AnyConnection, instant: &str) -> String {
    match conn {
        AnyConnection::Postgresql(_) => {
            format!("FLOOR(EXTRACT(EPOCH FROM ({instant} - ?1)) / 604800)::BIGINT")
        }
        AnyConnection::Sqlite(_) => format!(
            "((CAST(strftime('%s', {instant}) AS INTEGER) - CAST(strftime('%s', ?1) AS INTEGER)) / 604800)"
        ),
    }
}

/// Each settled or overdue timer of a client's period counted in the week
/// it was settled: a kept promise when it was kept, a broken one when it
/// fell due.
pub fn client_weeks(
    conn: &mut AnyConnection,
    client: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<WeekCount>> {
    let settled = "CASE WHEN t.status = 'met' THEN COALESCE(t.stopped_at, t.started_at) \
                   ELSE COALESCE(t.due_at, t.started_at) END";
    let sql = format!(
        "SELECT c.request_type AS request_type, {} AS week, \
           COUNT(CASE WHEN t.status = 'met' THEN 1 END) AS kept, \
           COUNT(CASE WHEN t.status <> 'met' THEN 1 END) AS broken \
         {} GROUP BY 1, 2",
        weeks_since_start(conn, settled),
        period_join(true, "t.status IN ('met', 'missed', 'breached')")
    );
    let rows = period_query!(conn, sql, from, to, Some(client), WeekRecord)?;
    Ok(rows
        .into_iter()
        .map(|r| WeekCount {
            request_type: r.request_type,
            week: r.week,
            kept: r.kept,
            broken: r.broken,
        })
        .collect())
}

/// The median business seconds of the first responses given in each week
/// (by when given, the weeks before and after the period folded into its
/// first and last of `weeks`) of a client's period, per request type.
pub fn client_week_medians(
    conn: &mut AnyConnection,
    client: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    weeks: i64,
) -> Result<Vec<WeekMedian>> {
    let raw = weeks_since_start(conn, "t.stopped_at");
    let last = weeks - 1;
    let week = match conn {
        AnyConnection::Postgresql(_) => format!("LEAST(GREATEST({raw}, 0), {last})"),
        AnyConnection::Sqlite(_) => format!("MIN(MAX({raw}, 0), {last})"),
    };
    report_memory(conn)?;
    let replies = period_join(
        true,
        "t.kind = 'first_response' AND t.status IN ('met', 'missed') \
         AND t.business_seconds IS NOT NULL",
    );
    let sql = match conn {
        AnyConnection::Postgresql(_) => format!(
            "SELECT c.request_type AS request_type, {week} AS week, \
               percentile_disc(0.5) WITHIN GROUP (ORDER BY t.business_seconds) AS median \
             {replies} GROUP BY 1, 2"
        ),
        AnyConnection::Sqlite(_) => format!(
            "SELECT request_type, week, MAX(CASE WHEN rn = (n + 1) / 2 THEN s END) AS median \
             FROM (SELECT c.request_type AS request_type, {week} AS week, t.business_seconds AS s, \
                     ROW_NUMBER() OVER (PARTITION BY c.request_type, {week} ORDER BY t.business_seconds) AS rn, \
                     COUNT(*) OVER (PARTITION BY c.request_type, {week}) AS n \
                   {replies}) v \
             WHERE rn = (n + 1) / 2 GROUP BY request_type, week"
        ),
    };
    let rows = period_query!(conn, sql, from, to, Some(client), MedianRecord)?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(WeekMedian {
                median: r.median?,
                request_type: r.request_type,
                week: r.week,
            })
        })
        .collect())
}

/// A promise broken in a client's period: a timer missed or still overdue,
/// with what the page says of its conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokenRow {
    pub id: i64,
    pub subject: String,
    pub request_type: String,
    pub client_id: String,
    pub contract_version: String,
    pub kind: Timer,
    pub due_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
}

/// The promises broken in a client's conversations opened in `[from, to)`,
/// by due, then conversation, then timer.
pub fn client_broken(
    conn: &mut AnyConnection,
    client: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<BrokenRow>> {
    let sql = format!(
        "SELECT c.id AS id, c.subject AS subject, c.request_type AS request_type, \
           c.client_id AS client_id, c.contract_version AS contract_version, t.kind AS kind, \
           t.due_at AS due_at, t.stopped_at AS stopped_at \
         {} ORDER BY t.due_at, c.id, t.kind, t.seq",
        period_join(
            true,
            "t.status IN ('missed', 'breached') AND t.due_at IS NOT NULL"
        )
    );
    period_query!(conn, sql, from, to, Some(client), BrokenRecord)?
        .into_iter()
        .map(|r| {
            Ok(BrokenRow {
                kind: parse_stored("timers.kind", &r.kind)?,
                id: r.id,
                subject: r.subject,
                request_type: r.request_type,
                client_id: r.client_id,
                contract_version: r.contract_version,
                due_at: from_db(r.due_at),
                stopped_at: r.stopped_at.map(from_db),
            })
        })
        .collect()
}

#[derive(QueryableByName)]
struct BrokenRecord {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = Text)]
    request_type: String,
    #[diesel(sql_type = Text)]
    client_id: String,
    #[diesel(sql_type = Text)]
    contract_version: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Timestamp)]
    due_at: NaiveDateTime,
    #[diesel(sql_type = Nullable<Timestamp>)]
    stopped_at: Option<NaiveDateTime>,
}
