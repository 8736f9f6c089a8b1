//! The compliance report from per-day summaries (README, "A year of
//! history"). A day's summary is what [`Reads::count`] — the one tally —
//! gives for the conversations opened that UTC day, kept in `tally_days`;
//! a day whose summary is missing or out of date is in `tally_stale`
//! (triggers mark it with every write that changes what it counts) and is
//! counted from its rows until the rebuild job ([`crate::tally`]) has
//! replaced its summary. The report is therefore exactly the row tally,
//! whenever it is read.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use super::dashboard::{Calendars, finish};
use super::*;
use crate::service::ComplianceRow;
use crate::store::tally::{self as days, DaySummary};

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// The version of the counting rules and the business-time code that make
/// a day's summaries (`Reads::count`, `count_conversation` of the client's
/// record, `response_time`, `Calendar::between`):
/// raise it with any change to what they give for the same rows, and every
/// summary is made anew at the next start.
pub const TALLY_RULES: u32 = 1;

/// [`TALLY_RULES`] and the time-zone database the calendars read.
pub fn tally_rules() -> String {
    format!("rules {TALLY_RULES}, tzdb {}", chrono_tz::IANA_TZDB_VERSION)
}

/// What a tally's row is keyed by: request type, client, timer kind.
type Key = (String, String, &'static str);

impl Reads {
    /// Compliance over conversations opened in `[from, to)`: per request
    /// type, client and timer. `% met` is met / (met + missed) — the
    /// backtest's rule, so the same mail gives the same figure in both.
    ///
    /// Whole days are read from their summaries; stale days and the parts
    /// of days at either end of a period that does not start or end at
    /// midnight are counted from their rows, all in one snapshot. The rows
    /// carry no [`ComplianceRow::ids`] (see [`Self::compliance_with_ids`]).
    pub fn compliance(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ComplianceRow>, ServiceError> {
        // The whole days inside the period: `[first, end)`.
        let first = match from.date_naive() {
            d if midnight(d) == from => d,
            d => d + TimeDelta::days(1),
        };
        let end = to.date_naive().max(first);
        let (summaries, convs, timers) = self.store().snapshot(|conn| {
            let (mut spans, mut summaries) = (Vec::new(), Vec::new());
            if first >= end {
                spans.push((from, to));
            } else {
                if from < midnight(first) {
                    spans.push((from, midnight(first)));
                }
                let stale = days::stale_days_between(conn, first, end)?;
                // Neighbouring stale days read as one span.
                for day in &stale {
                    match spans.last_mut() {
                        Some((_, until)) if *until == midnight(*day) => {
                            *until = midnight(*day + TimeDelta::days(1));
                        }
                        _ => spans.push((midnight(*day), midnight(*day + TimeDelta::days(1)))),
                    }
                }
                if midnight(end) < to {
                    spans.push((midnight(end), to));
                }
                let stale: HashSet<NaiveDate> = stale.into_iter().collect();
                summaries = days::summaries_between(conn, None, first, end)?;
                summaries.retain(|s| !stale.contains(&s.day));
            }
            let (mut convs, mut timers) = (Vec::new(), HashMap::new());
            for (a, b) in spans {
                let some = store::tallied_between(conn, None, a, b)?;
                let ids: Vec<i64> = some.iter().map(|c| c.id).collect();
                timers.extend(store::timers_of_many(conn, &ids)?);
                convs.extend(some);
            }
            Ok::<_, ServiceError>((summaries, convs, timers))
        })?;
        let mut calendars = Calendars::default();
        let counted = self.count(&convs, &timers, &mut calendars, false);
        self.with_summaries(counted, summaries)
    }

    /// The rows [`Self::count`] gave for the days read from rows, with the
    /// day summaries of the others added, finished (percentiles, `% met`):
    /// the compliance report's and the client's record's one merge.
    pub(crate) fn with_summaries(
        &self,
        counted: BTreeMap<(&str, &str, &'static str), (ComplianceRow, Vec<i64>)>,
        summaries: Vec<DaySummary>,
    ) -> Result<Vec<ComplianceRow>, ServiceError> {
        let mut rows: BTreeMap<Key, (ComplianceRow, Vec<i64>)> = counted
            .into_iter()
            .map(|((request_type, client_id, kind), v)| {
                ((request_type.to_string(), client_id.to_string(), kind), v)
            })
            .collect();
        let current = self.contract().current();
        for s in summaries {
            let kind: Timer = s
                .timer
                .parse()
                .map_err(|e: crate::contract::TimerParseError| {
                    ServiceError::Store(StoreError::Corrupt(format!("tally_days.timer: {e}")))
                })?;
            let (row, times) = rows
                .entry((s.request_type, s.client_id, kind.as_str()))
                .or_insert_with_key(|(request_type, client_id, _)| {
                    (
                        ComplianceRow {
                            request_type: request_type.clone(),
                            client_id: client_id.clone(),
                            client: current.contract.client_name(client_id),
                            timer: kind.words().into(),
                            ..ComplianceRow::default()
                        },
                        Vec::new(),
                    )
                });
            row.conversations += count(s.conversations)?;
            row.met += count(s.met)?;
            row.missed += count(s.missed)?;
            row.breached += count(s.breached)?;
            days::decode_times(&s.times, times)?;
        }
        Ok(rows
            .into_values()
            .map(|(row, times)| finish(row, times))
            .collect())
    }
}

fn count(n: i64) -> Result<usize, ServiceError> {
    usize::try_from(n)
        .map_err(|_| ServiceError::Store(StoreError::Corrupt(format!("tally_days: count {n}"))))
}

/// What one round of the rebuild did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TallyRebuild {
    /// Stale days the round found (at most its limit).
    pub found: usize,
    /// Of those, the days it rebuilt (another process may take some).
    pub rebuilt: usize,
}

impl Deadlines {
    /// Rebuilds up to `limit` stale days, newest first, each in its own
    /// transaction ([`Self::rebuild_tally_day`]).
    pub fn rebuild_tally_days(&self, limit: i64) -> Result<TallyRebuild, ServiceError> {
        let stale = self.store().with(|c| days::stale_days(c, limit))?;
        let mut round = TallyRebuild {
            found: stale.len(),
            rebuilt: 0,
        };
        for day in stale {
            if self.rebuild_tally_day(day)? {
                round.rebuilt += 1;
            }
        }
        Ok(round)
    }

    /// One day's summary made anew: in one transaction its stale mark is
    /// cleared, its conversations and timers read and tallied, its rows
    /// replaced. False when the day was not marked (any more).
    ///
    /// A write that lands meanwhile marks the day again. On SQLite none
    /// can: this is the one writer until it commits. On PostgreSQL (READ
    /// COMMITTED) clearing the mark waits for the writers that marked the
    /// day and have not committed (the migration's `tally_mark`), so the
    /// reads after it see their writes; a writer that marks it afterwards
    /// waits for this commit and leaves the day marked.
    pub fn rebuild_tally_day(&self, day: NaiveDate) -> Result<bool, ServiceError> {
        self.store().transaction(|conn| {
            // Another keepword's rules recorded (a newer one started beside
            // this one): its summaries are not this process's to make.
            if days::rules(conn)?.is_some_and(|r| r != tally_rules()) {
                return Ok(false);
            }
            if !days::take_stale(conn, day)? {
                return Ok(false);
            }
            let (from, to) = (midnight(day), midnight(day + TimeDelta::days(1)));
            let convs = store::tallied_between(conn, None, from, to)?;
            let ids: Vec<i64> = convs.iter().map(|c| c.id).collect();
            let timers = store::timers_of_many(conn, &ids)?;
            let mut calendars = Calendars::default();
            calendars.preload(&self.core, conn, &convs);
            let rows: Vec<DaySummary> = self
                .reads
                .count(&convs, &timers, &mut calendars, false)
                .into_iter()
                .map(|((request_type, client_id, kind), (row, mut times))| {
                    times.sort_unstable();
                    DaySummary {
                        day,
                        request_type: request_type.to_string(),
                        client_id: client_id.to_string(),
                        timer: kind.to_string(),
                        conversations: row.conversations as i64,
                        met: row.met as i64,
                        missed: row.missed as i64,
                        breached: row.breached as i64,
                        times: days::encode_times(&times),
                    }
                })
                .collect();
            days::replace_day(conn, day, &rows)?;
            super::record::rebuild_record_day(
                &self.reads,
                conn,
                day,
                &convs,
                &timers,
                &mut calendars,
            )?;
            Ok::<_, ServiceError>(true)
        })
    }

    /// Marks every day stale when the summaries were made by other rules
    /// than [`TALLY_RULES`] (or this time-zone database): a keepword that
    /// counts or measures business time differently must not merge its
    /// figures with summaries an older one made. True when it marked.
    pub fn remake_tally_if_rules_changed(&self) -> Result<bool, ServiceError> {
        let ours = tally_rules();
        Ok(self.store().transaction(|conn| {
            if days::rules(conn)?.as_deref() == Some(ours.as_str()) {
                return Ok::<_, StoreError>(false);
            }
            days::remake_all(conn, &ours)?;
            Ok(true)
        })?)
    }

    /// How many days wait for their summary.
    pub fn tally_stale_days(&self) -> Result<i64, ServiceError> {
        Ok(self.store().with(days::stale_count)?)
    }
}
