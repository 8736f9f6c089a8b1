//! Local days resolved to UTC instants, and the per-year tables built from them.

use std::collections::BTreeSet;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
};
use chrono_tz::Tz;

use super::{OpenInterval, Week};

pub(crate) const FIRST_YEAR: i32 = 1900;
pub(crate) const LAST_YEAR: i32 = 2199;
pub(crate) const NANOS: i64 = 1_000_000_000;

/// The instant (Unix nanoseconds) of a local wall time, by the module's rules:
/// a time in a gap is the transition instant that skipped it, a time in a
/// fold is its earlier instant.
pub(crate) fn resolve_local(tz: Tz, local: NaiveDateTime) -> i64 {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(dt) => nanos_of(&dt),
        LocalResult::Ambiguous(a, b) => nanos_of(&a).min(nanos_of(&b)),
        LocalResult::None => gap_end(tz, local.and_utc().timestamp()) * NANOS,
    }
}

/// `secs` since the local midnight that starts `date`; 86_400 is the next
/// midnight, resolved as a time of the next date (not as midnight + 24 h,
/// which would be wrong on 23- and 25-hour days).
pub(crate) fn resolve_day_seconds(tz: Tz, date: NaiveDate, secs: u32) -> i64 {
    let (date, secs) = if secs >= 86_400 {
        (date.succ_opt().unwrap_or(date), secs - 86_400)
    } else {
        (date, secs)
    };
    let time = NaiveTime::from_num_seconds_from_midnight_opt(secs, 0).unwrap_or(NaiveTime::MIN);
    resolve_local(tz, date.and_time(time))
}

fn nanos_of<T: TimeZone>(dt: &DateTime<T>) -> i64 {
    // Callers stay within 1900..=2200, well inside i64 nanoseconds (1677..2262).
    dt.timestamp() * NANOS + i64::from(dt.timestamp_subsec_nanos())
}

fn offset_at(tz: Tz, utc_secs: i64) -> i64 {
    let utc = DateTime::from_timestamp(utc_secs, 0)
        .unwrap_or_default()
        .naive_utc();
    i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc())
}

/// The transition instant (Unix seconds) that skipped the local wall time
/// `local` (written as if it were UTC seconds).
///
/// chrono-tz does not expose its transitions, so find it: the transition
/// lies within the largest possible UTC offsets around `local` (±16 h covers
/// every offset since 1900, including Apia's 24-hour jump). Sample offsets
/// every 30 minutes, bisect each change to the second, and keep the one
/// whose gap `[T + before, T + after)` contains `local`. Gaps are rare (a
/// few days a year), so this cost only appears while building a year table.
fn gap_end(tz: Tz, local: i64) -> i64 {
    const STEP: i64 = 1800;
    const REACH: i64 = 16 * 3600;
    let mut u = local - REACH;
    let mut before = offset_at(tz, u);
    while u < local + REACH {
        let next = u + STEP;
        let after_step = offset_at(tz, next);
        if after_step != before {
            let (mut lo, mut hi) = (u, next);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset_at(tz, mid) == before {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let after = offset_at(tz, hi);
            if after > before && hi + before <= local && local < hi + after {
                return hi;
            }
        }
        u = next;
        before = after_step;
    }
    // Unreachable with real zone data: read the wall time with the offset in
    // force just after it, which is where a forward gap ends.
    local - offset_at(tz, local + REACH)
}

/// One local year's open time, as sorted, non-overlapping UTC intervals
/// (nanoseconds) with running totals; intervals of consecutive days may touch.
#[derive(Debug)]
pub(crate) struct YearTable {
    /// Resolved local midnight of January 1: the table covers `[lo, hi)`.
    pub lo: i64,
    /// Resolved local midnight of the next January 1.
    pub hi: i64,
    pub starts: Vec<i64>,
    pub ends: Vec<i64>,
    /// Open time of this year up to the end of each interval.
    pub cum_end: Vec<i64>,
    /// Index into `days` of each interval.
    pub day_of: Vec<u16>,
    /// Open days of the year: first and last interval index.
    pub days: Vec<(u32, u32)>,
    pub total: i64,
}

impl YearTable {
    pub(crate) fn build(
        tz: Tz,
        week: &Week,
        holidays: &BTreeSet<NaiveDate>,
        year: i32,
    ) -> YearTable {
        let first = NaiveDate::from_ymd_opt(year, 1, 1).unwrap_or_default();
        let next_first = NaiveDate::from_ymd_opt(year + 1, 1, 1).unwrap_or_default();
        let mut t = YearTable {
            lo: resolve_day_seconds(tz, first, 0),
            hi: resolve_day_seconds(tz, next_first, 0),
            starts: Vec::with_capacity(600),
            ends: Vec::with_capacity(600),
            cum_end: Vec::with_capacity(600),
            day_of: Vec::with_capacity(600),
            days: Vec::with_capacity(366),
            total: 0,
        };
        let mut day = Vec::new();
        for date in first.iter_days().take_while(|d| d.year() == year) {
            day.clear();
            day_intervals(tz, week, holidays, date, &mut day);
            let Some(&(_, _)) = day.first() else { continue };
            let day_index = t.days.len() as u16;
            let first_iv = t.starts.len() as u32;
            for &(s, e) in &day {
                t.total += e - s;
                t.starts.push(s);
                t.ends.push(e);
                t.cum_end.push(t.total);
                t.day_of.push(day_index);
            }
            t.days.push((first_iv, t.starts.len() as u32 - 1));
        }
        t
    }

    /// Open time of this year before `t` (`t` within `[lo, hi]`).
    #[inline]
    pub(crate) fn cum(&self, t: i64) -> i64 {
        self.position(t).1
    }

    /// The index of the last interval starting at or before `t` (or 0), and
    /// the open time of this year before `t`.
    #[inline]
    pub(crate) fn position(&self, t: i64) -> (usize, i64) {
        let idx = self.starts.partition_point(|&s| s <= t);
        if idx == 0 {
            return (0, 0);
        }
        let i = idx - 1;
        (i, self.cum_end[i] - (self.ends[i] - t.min(self.ends[i])))
    }

    /// The instant at which this year's open time reaches `target`
    /// (`0 < target <= total`). A target reached exactly at an interval's end
    /// is that end, not the next opening.
    #[inline]
    pub(crate) fn instant_at(&self, target: i64, from: usize) -> i64 {
        let i = from + self.cum_end[from..].partition_point(|&c| c < target);
        self.ends[i] - (self.cum_end[i] - target)
    }

    /// Open time before the first interval of open day `d`.
    #[inline]
    pub(crate) fn day_start_cum(&self, d: usize) -> i64 {
        let f = self.days[d].0 as usize;
        self.cum_end[f] - (self.ends[f] - self.starts[f])
    }
}

/// The non-empty open intervals of a local date, as UTC nanoseconds.
pub(crate) fn day_intervals(
    tz: Tz,
    week: &Week,
    holidays: &BTreeSet<NaiveDate>,
    date: NaiveDate,
    out: &mut Vec<(i64, i64)>,
) {
    if holidays.contains(&date) {
        return;
    }
    let weekday = date.weekday().num_days_from_monday() as usize;
    for &OpenInterval { start, end } in &week[weekday] {
        let s = resolve_day_seconds(tz, date, start);
        let e = resolve_day_seconds(tz, date, end);
        // Resolution is monotone, so a later interval never starts before
        // this one ends; a gap can swallow an interval entirely.
        if s < e {
            out.push((s, e));
        }
    }
}
