//! Business time: the open intervals of a calendar, and `add` / `between` over them.
//!
//! A [`Calendar`] is an IANA time zone plus weekly open hours per weekday
//! plus holidays (local dates), or [`Calendar::always`] (24x7).
//!
//! # Open time
//! For each local date that is not a holiday, the weekday's intervals
//! `[start, end)` in the calendar's zone are open. Local times become instants
//! like this:
//! - a local time that does not exist (a DST gap) moves forward to the first
//!   instant that exists, i.e. the transition;
//! - an ambiguous local time (a DST fold) is its earlier instant;
//! - `24:00` is the next local midnight, resolved the same way;
//! - an interval whose resolved start is not before its resolved end is empty.
//!
//! So a 09:00–17:00 day is 8 hours, except that 01:00–04:00 on the day
//! clocks go forward at 02:00 is 2 hours and on the day they go back 4 hours.
//! Days that start late (America/Sao_Paulo 2018-11-04 starts at 01:00) and
//! days that do not exist (Pacific/Apia 2011-12-30) are handled.
//!
//! # `add(t, d)`
//! The instant at which `d` of open time has elapsed, counting from `t`;
//! when `t` is outside open time, counting starts at the next opening. A
//! count that ends exactly at the end of an interval is due at that end
//! (17:00, not the next morning's 09:00). `add(t, 0)` is the instant counting
//! starts.
//!
//! # Business days (`Nd`)
//! Let `s` be the instant counting starts and `D0` the open day containing
//! it (an open day is a local date with some open time). Let `p` be the open
//! time of `D0` before `s`, and `D_N` the N-th open day after `D0`.
//! - If `p` is zero (counting starts at the day's opening), the days end at
//!   the close of `D_(N-1)`: `1d` from Tuesday 09:00 is Tuesday 17:00, and
//!   `5d` from Monday 09:00 is Friday 17:00.
//! - Otherwise they end when `p` of `D_N`'s open time has elapsed, or at the
//!   close of `D_N` if it is shorter: `1d` from Thursday 15:00 (09:00–17:00,
//!   so `p` = 6 h) is Friday 15:00, or Friday 12:30 if Friday is 09:00–12:30.
//!
//! The hours and minutes of `2d4h` are then added to that instant as above.
//! On an `always` calendar open days are the local dates, so `1d` is the
//! same local clock time on the next date (23 or 25 hours across a DST
//! change; a clock time that does not exist or is ambiguous that day
//! resolves as above).
//!
//! # `between(a, b)`
//! The open time inside `[a, b)`; zero when `b <= a`.
//!
//! # Exactness and cost
//! Instants keep their sub-second part; arithmetic is in integer
//! nanoseconds. Supported instants lie in local years 1900..=2199 of the
//! calendar's zone ([`CalendarError::OutOfRange`] otherwise). Each local
//! year's open intervals are built once, on first use, into a table of UTC
//! instants with running totals, so `add` and `between` are binary searches
//! plus one step per year crossed: their cost does not depend on the length
//! of the window in minutes.

mod duration;
pub mod explain;
mod table;
mod words;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;

pub use duration::{BusinessDuration, DurationParseError};
pub use explain::{Explanation, explain};
use table::{FIRST_YEAR, LAST_YEAR, NANOS, YearTable, day_intervals, resolve_day_seconds};
pub use words::business_words;

/// Seconds since local midnight; `end` may be 86_400 (`24:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpenInterval {
    pub start: u32,
    pub end: u32,
}

impl OpenInterval {
    /// From wall-clock hours and minutes: `OpenInterval::hm(9, 0, 17, 30)`;
    /// `hm(22, 0, 24, 0)` ends at midnight.
    pub const fn hm(start_h: u32, start_m: u32, end_h: u32, end_m: u32) -> Self {
        OpenInterval {
            start: start_h * 3600 + start_m * 60,
            end: end_h * 3600 + end_m * 60,
        }
    }
}

/// Weekly open hours, index 0 = Monday … 6 = Sunday.
pub type Week = [Vec<OpenInterval>; 7];

/// The same hours Monday to Friday, closed at the weekend.
pub fn weekdays(hours: &[OpenInterval]) -> Week {
    std::array::from_fn(|d| if d < 5 { hours.to_vec() } else { Vec::new() })
}

/// The same hours every day of the week.
pub fn every_day(hours: &[OpenInterval]) -> Week {
    std::array::from_fn(|_| hours.to_vec())
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CalendarError {
    #[error("instant {0} is outside the supported range (years 1900..=2199)")]
    OutOfRange(DateTime<Utc>),
    #[error("calendar has no open time at all")]
    NeverOpen,
    #[error("{0}")]
    Invalid(String),
}

/// A business calendar. Cheap to clone and shareable across threads: the
/// year tables are built lazily, once, behind the shared `Arc`.
#[derive(Clone)]
pub struct Calendar {
    inner: Arc<Inner>,
}

struct Inner {
    tz: Tz,
    /// Supported instants: `[lo, hi)`, local 1900-01-01 to 2200-01-01.
    lo: i64,
    hi: i64,
    hours: Option<Hours>,
}

struct Hours {
    week: Week,
    holidays: BTreeSet<NaiveDate>,
    years: Box<[OnceLock<YearTable>]>,
}

impl fmt::Debug for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Calendar");
        s.field("tz", &self.inner.tz);
        match &self.inner.hours {
            None => s.field("always", &true),
            Some(h) => s.field("week", &h.week).field("holidays", &h.holidays),
        };
        s.finish()
    }
}

const WEEKDAY_NAMES: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn clock(secs: u32) -> String {
    format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60)
}

impl Calendar {
    /// A calendar open during `week` in `tz`, except on `holidays`.
    ///
    /// Each interval needs `start < end <= 86_400`; overlapping or touching
    /// intervals of a day are merged. A week without any open time is
    /// [`CalendarError::NeverOpen`].
    pub fn new(
        tz: Tz,
        week: Week,
        holidays: BTreeSet<NaiveDate>,
    ) -> Result<Calendar, CalendarError> {
        let mut normalized: Week = Default::default();
        for (d, intervals) in week.into_iter().enumerate() {
            let mut intervals = intervals;
            for iv in &intervals {
                if iv.start >= iv.end || iv.end > 86_400 {
                    return Err(CalendarError::Invalid(format!(
                        "{}: open interval {}–{} is empty, reversed or past 24:00",
                        WEEKDAY_NAMES[d],
                        clock(iv.start),
                        clock(iv.end)
                    )));
                }
            }
            intervals.sort();
            let mut merged: Vec<OpenInterval> = Vec::with_capacity(intervals.len());
            for iv in intervals {
                match merged.last_mut() {
                    Some(last) if iv.start <= last.end => last.end = last.end.max(iv.end),
                    _ => merged.push(iv),
                }
            }
            normalized[d] = merged;
        }
        if normalized.iter().all(Vec::is_empty) {
            return Err(CalendarError::NeverOpen);
        }
        let years = (FIRST_YEAR..=LAST_YEAR).map(|_| OnceLock::new()).collect();
        Ok(Calendar::with_hours(
            tz,
            Some(Hours {
                week: normalized,
                holidays,
                years,
            }),
        ))
    }

    /// Open around the clock, every day.
    pub fn always(tz: Tz) -> Calendar {
        Calendar::with_hours(tz, None)
    }

    fn with_hours(tz: Tz, hours: Option<Hours>) -> Calendar {
        let first = NaiveDate::from_ymd_opt(FIRST_YEAR, 1, 1).unwrap_or_default();
        let past_last = NaiveDate::from_ymd_opt(LAST_YEAR + 1, 1, 1).unwrap_or_default();
        Calendar {
            inner: Arc::new(Inner {
                tz,
                lo: resolve_day_seconds(tz, first, 0),
                hi: resolve_day_seconds(tz, past_last, 0),
                hours,
            }),
        }
    }

    pub fn timezone(&self) -> Tz {
        self.inner.tz
    }

    pub fn is_always(&self) -> bool {
        self.inner.hours.is_none()
    }

    /// The weekly hours (as normalized by [`Calendar::new`]); `None` for `always`.
    pub fn week(&self) -> Option<&Week> {
        self.inner.hours.as_ref().map(|h| &h.week)
    }

    /// The holidays; empty for `always`.
    pub fn holidays(&self) -> Option<&BTreeSet<NaiveDate>> {
        self.inner.hours.as_ref().map(|h| &h.holidays)
    }

    /// The open intervals of a local date, as instants (empty on holidays,
    /// closed weekdays and dates swallowed by a DST gap).
    pub fn open_intervals_on(&self, date: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let tz = self.inner.tz;
        let mut out = Vec::new();
        match &self.inner.hours {
            None => {
                let s = resolve_day_seconds(tz, date, 0);
                let e = resolve_day_seconds(tz, date, 86_400);
                if s < e {
                    out.push((s, e));
                }
            }
            Some(h) => day_intervals(tz, &h.week, &h.holidays, date, &mut out),
        }
        out.into_iter()
            .map(|(s, e)| (from_nanos(s), from_nanos(e)))
            .collect()
    }

    /// Whether `t` lies in open time.
    pub fn is_open(&self, t: DateTime<Utc>) -> Result<bool, CalendarError> {
        let n = self.check(t)?;
        let Some(h) = &self.inner.hours else {
            return Ok(true);
        };
        let (_, table) = self.locate(h, n);
        let idx = table.starts.partition_point(|&s| s <= n);
        Ok(idx > 0 && n < table.ends[idx - 1])
    }

    /// `t` if open, else the next opening: the instant counting starts.
    pub fn next_open(&self, t: DateTime<Utc>) -> Result<DateTime<Utc>, CalendarError> {
        let n = self.check(t)?;
        self.next_open_nanos(n).map(from_nanos)
    }

    /// The instant at which `d` of open time has elapsed counting from `t`
    /// (see the module doc for the rules, including business days).
    ///
    /// When the result would lie past the supported range, the error carries
    /// the starting instant `t`.
    pub fn add(
        &self,
        t: DateTime<Utc>,
        d: BusinessDuration,
    ) -> Result<DateTime<Utc>, CalendarError> {
        let n = self.check(t)?;
        let out_of_range = || CalendarError::OutOfRange(t);
        let seconds = i64::try_from(d.seconds)
            .ok()
            .and_then(|s| s.checked_mul(NANOS))
            .ok_or_else(out_of_range)?;
        let after_days = if d.days == 0 {
            n
        } else {
            match self.inner.hours {
                None => self.always_add_days(n, d.days),
                Some(_) => self.add_days(n, d.days),
            }
            .ok_or_else(out_of_range)?
        };
        // A days-part ending at a close stays there unless more time follows
        // (`1d` is due at 17:00, not at the next opening).
        if d.days > 0 && seconds == 0 {
            return Ok(from_nanos(after_days));
        }
        self.add_nanos(after_days, seconds)
            .map(from_nanos)
            .ok_or_else(out_of_range)
    }

    /// The open time inside `[a, b)`; zero when `b <= a`.
    pub fn between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Result<TimeDelta, CalendarError> {
        let (na, nb) = (self.check(a)?, self.check(b)?);
        if nb <= na {
            return Ok(TimeDelta::zero());
        }
        let Some(h) = &self.inner.hours else {
            return Ok(delta_of(i128::from(nb) - i128::from(na)));
        };
        let (ya, ta) = self.locate(h, na);
        let (yb, tb) = self.locate(h, nb);
        let total = if ya == yb {
            i128::from(tb.cum(nb) - ta.cum(na))
        } else {
            let mut sum = i128::from(ta.total - ta.cum(na)) + i128::from(tb.cum(nb));
            for y in ya + 1..yb {
                sum += i128::from(self.table(h, y).total);
            }
            sum
        };
        Ok(delta_of(total))
    }

    fn check(&self, t: DateTime<Utc>) -> Result<i64, CalendarError> {
        t.timestamp_nanos_opt()
            .filter(|&n| n >= self.inner.lo && n < self.inner.hi)
            .ok_or(CalendarError::OutOfRange(t))
    }

    fn table<'a>(&self, h: &'a Hours, year: i32) -> &'a YearTable {
        h.years[(year - FIRST_YEAR) as usize]
            .get_or_init(|| YearTable::build(self.inner.tz, &h.week, &h.holidays, year))
    }

    /// The local year whose table covers `n` (which must be in range).
    #[inline]
    fn locate<'a>(&self, h: &'a Hours, n: i64) -> (i32, &'a YearTable) {
        // The UTC year is at most one off the local year.
        let y = from_nanos(n).year().clamp(FIRST_YEAR, LAST_YEAR);
        let t = self.table(h, y);
        if n < t.lo && y > FIRST_YEAR {
            (y - 1, self.table(h, y - 1))
        } else if n >= t.hi && y < LAST_YEAR {
            (y + 1, self.table(h, y + 1))
        } else {
            (y, t)
        }
    }

    fn next_open_nanos(&self, n: i64) -> Result<i64, CalendarError> {
        let Some(h) = &self.inner.hours else {
            return Ok(n);
        };
        let (mut y, t) = self.locate(h, n);
        let idx = t.starts.partition_point(|&s| s <= n);
        if idx > 0 && n < t.ends[idx - 1] {
            return Ok(n);
        }
        if idx < t.starts.len() {
            return Ok(t.starts[idx]);
        }
        while y < LAST_YEAR {
            y += 1;
            if let Some(&s) = self.table(h, y).starts.first() {
                return Ok(s);
            }
        }
        Err(CalendarError::OutOfRange(from_nanos(n)))
    }

    /// `n` plus `d` nanoseconds of open time; `None` past the supported range.
    fn add_nanos(&self, n: i64, d: i64) -> Option<i64> {
        let Some(h) = &self.inner.hours else {
            return n.checked_add(d).filter(|&r| r < self.inner.hi);
        };
        if d == 0 {
            return self.next_open_nanos(n).ok();
        }
        let (mut y, mut t) = self.locate(h, n);
        // The answer is in the interval holding `n` or a later one.
        let (mut from, mut c) = t.position(n);
        let mut rest = d;
        while rest > t.total - c {
            rest -= t.total - c;
            if y == LAST_YEAR {
                return None;
            }
            y += 1;
            t = self.table(h, y);
            c = 0;
            from = 0;
        }
        Some(t.instant_at(c + rest, from))
    }

    /// The end of the days part of a business duration (module doc, "Business days").
    fn add_days(&self, n: i64, days: u32) -> Option<i64> {
        let h = self.inner.hours.as_ref()?;
        let s = self.next_open_nanos(n).ok()?;
        let (mut y, mut t) = self.locate(h, s);
        let i = t.starts.partition_point(|&x| x <= s) - 1;
        let d0 = usize::from(t.day_of[i]);
        let p = t.cum(s) - t.day_start_cum(d0);
        let mut k = d0 as u64 + u64::from(days) - u64::from(p == 0);
        while k >= t.days.len() as u64 {
            k -= t.days.len() as u64;
            if y == LAST_YEAR {
                return None;
            }
            y += 1;
            t = self.table(h, y);
        }
        let k = k as usize;
        let (first, last) = (t.days[k].0 as usize, t.days[k].1 as usize);
        let day_start = t.day_start_cum(k);
        let day_len = t.cum_end[last] - day_start;
        if p == 0 || p >= day_len {
            Some(t.ends[last])
        } else {
            Some(t.instant_at(day_start + p, first))
        }
    }

    /// Days on an `always` calendar: the same local clock time `days` dates later.
    fn always_add_days(&self, n: i64, days: u32) -> Option<i64> {
        let tz = self.inner.tz;
        let local = from_nanos(n).with_timezone(&tz).naive_local();
        let later = local.checked_add_days(chrono::Days::new(u64::from(days)))?;
        if later.year() > LAST_YEAR {
            return None;
        }
        Some(table::resolve_local(tz, later)).filter(|&r| r < self.inner.hi)
    }
}

/// The instant of local clock time `secs` (seconds since midnight) on `date`
/// in `tz`, by the calendar's rules: a time in a DST gap moves forward to the
/// transition, an ambiguous one is its earlier instant.
pub fn local_instant(tz: Tz, date: NaiveDate, secs: u32) -> DateTime<Utc> {
    from_nanos(resolve_day_seconds(tz, date, secs))
}

fn from_nanos(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(n)
}

fn delta_of(nanos: i128) -> TimeDelta {
    let secs = (nanos.div_euclid(i128::from(NANOS))) as i64;
    let sub = (nanos.rem_euclid(i128::from(NANOS))) as u32;
    TimeDelta::new(secs, sub).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests;
