//! "Why is it due then?": the open time a timer counted between its start
//! and its due, day by day — the intervals counted, the days skipped
//! (holidays, closed days) and the open time not counted because the timer
//! was paused. Pure: the timeline renders it, a property test checks that
//! the counted spans add up to what the engine counted.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use super::Calendar;

/// An instant range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Span {
    pub fn length(&self) -> TimeDelta {
        self.end - self.start
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Holiday,
    /// A weekday without open hours (or swallowed by a DST change).
    Closed,
}

/// One local date of the explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    pub date: NaiveDate,
    /// `None`: the day has open time.
    pub skipped: Option<Skip>,
    /// Open time counted (the timer ran).
    pub counted: Vec<Span>,
    /// Open time not counted: the timer was paused.
    pub paused: Vec<Span>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub start: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub days: Vec<Day>,
    /// The sum of every counted span.
    pub counted: TimeDelta,
    /// The sum of every paused span (open time subtracted).
    pub paused: TimeDelta,
    /// More than [`MAX_DAYS`] local dates lie between start and due: the
    /// days listed are the first ones.
    pub truncated: bool,
}

/// The most local dates one explanation lists (a year and a bit: a longer
/// stretch is a pause nobody reads day by day).
pub const MAX_DAYS: usize = 400;

/// Explains the business time counted from the first segment's start to
/// `until` by a timer that ran during `segments` (`[start, end)`, the last
/// one open-ended while it runs).
pub fn explain(
    calendar: &Calendar,
    segments: &[(DateTime<Utc>, Option<DateTime<Utc>>)],
    until: DateTime<Utc>,
) -> Explanation {
    let start = segments.first().map_or(until, |s| s.0);
    let tz = calendar.timezone();
    let first = start.with_timezone(&tz).date_naive();
    let last = until.with_timezone(&tz).date_naive();
    let holidays = calendar.holidays();
    let mut out = Explanation {
        start,
        until,
        days: Vec::new(),
        counted: TimeDelta::zero(),
        paused: TimeDelta::zero(),
        truncated: false,
    };
    // A local date's open intervals may start before it in UTC; a day
    // either side covers every interval that can touch [start, until).
    let mut date = first.pred_opt().unwrap_or(first);
    let end_date = last.succ_opt().unwrap_or(last);
    while date <= end_date && until > start {
        if out.days.len() >= MAX_DAYS {
            out.truncated = true;
            break;
        }
        let intervals = calendar.open_intervals_on(date);
        let in_range = date >= first && date <= last;
        if intervals.is_empty() {
            if in_range {
                let holiday = holidays.is_some_and(|h| h.contains(&date));
                out.days.push(Day {
                    date,
                    skipped: Some(if holiday { Skip::Holiday } else { Skip::Closed }),
                    counted: Vec::new(),
                    paused: Vec::new(),
                });
            }
        } else {
            let mut day = Day {
                date,
                skipped: None,
                counted: Vec::new(),
                paused: Vec::new(),
            };
            for (s, e) in intervals {
                let (s, e) = (s.max(start), e.min(until));
                if s >= e {
                    continue;
                }
                split(Span { start: s, end: e }, segments, &mut day);
            }
            if !day.counted.is_empty() || !day.paused.is_empty() {
                for c in &day.counted {
                    out.counted += c.length();
                }
                for p in &day.paused {
                    out.paused += p.length();
                }
                out.days.push(day);
            }
        }
        match date.succ_opt() {
            Some(d) => date = d,
            None => break,
        }
    }
    out
}

/// Splits one open interval into the parts the timer ran (counted) and the
/// parts it did not (paused).
fn split(open: Span, segments: &[(DateTime<Utc>, Option<DateTime<Utc>>)], day: &mut Day) {
    let mut cursor = open.start;
    for &(s, e) in segments {
        let e = e.unwrap_or(open.end);
        let (cs, ce) = (s.max(cursor), e.min(open.end));
        if cs >= ce {
            continue;
        }
        if cs > cursor {
            day.paused.push(Span {
                start: cursor,
                end: cs,
            });
        }
        day.counted.push(Span { start: cs, end: ce });
        cursor = ce;
    }
    if cursor < open.end {
        day.paused.push(Span {
            start: cursor,
            end: open.end,
        });
    }
}
