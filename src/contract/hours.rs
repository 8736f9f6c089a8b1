//! Weekday open hours: reading `"09:00-12:30, 13:30-17:00"` into intervals,
//! and writing a week back the way a client reads it
//! ("Mon–Thu 09:00–17:00, Fri 09:00–12:30 and 13:30–17:00").

use crate::calendar::{OpenInterval, Week};

pub(crate) const DAY_KEYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_SHORT: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const FORMAT_HINT: &str = "write open hours as HH:MM-HH:MM, several separated by commas, e.g. \"09:00-17:00\" or \"09:00-12:30, 13:30-17:00\"";

/// Why a weekday value was rejected, worded for a contract author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HoursError {
    pub message: String,
    pub hint: String,
}

fn err(message: String, hint: &str) -> HoursError {
    HoursError {
        message,
        hint: hint.to_string(),
    }
}

/// Parses one weekday's value. The result is sorted, and touching intervals
/// are merged so that `"09:00-13:00, 13:00-17:00"` and `"09:00-17:00"` are
/// the same contract (and hash to the same version).
pub(crate) fn parse_day(value: &str) -> Result<Vec<OpenInterval>, HoursError> {
    if value.trim().is_empty() {
        return Err(err(
            "open hours are empty".into(),
            "leave the weekday out to close it, or write e.g. \"09:00-17:00\"",
        ));
    }
    let mut intervals = Vec::new();
    for part in value.split(',') {
        let part = part.trim();
        let Some((start, end)) = part.split_once('-') else {
            return Err(err(
                format!("open hours \"{part}\" are not a time range"),
                FORMAT_HINT,
            ));
        };
        let start = parse_time(start.trim(), part)?;
        let end = parse_time(end.trim(), part)?;
        if start == 86_400 {
            return Err(err(
                format!("interval \"{part}\" starts at 24:00"),
                "24:00 can only end an interval; the next day starts at 00:00",
            ));
        }
        if end <= start {
            return Err(err(
                format!("interval \"{part}\" ends before it starts"),
                "an interval cannot cross midnight: end this day at \"24:00\" and open the next day at \"00:00\"",
            ));
        }
        intervals.push((part, OpenInterval { start, end }));
    }
    intervals.sort_by_key(|(_, i)| i.start);
    for pair in intervals.windows(2) {
        let ((a_text, a), (b_text, b)) = (&pair[0], &pair[1]);
        if b.start < a.end {
            return Err(err(
                format!("intervals \"{a_text}\" and \"{b_text}\" overlap"),
                "open intervals of one day must not overlap; merge them into one",
            ));
        }
    }
    let mut merged: Vec<OpenInterval> = Vec::with_capacity(intervals.len());
    for (_, interval) in intervals {
        match merged.last_mut() {
            Some(last) if last.end == interval.start => last.end = interval.end,
            _ => merged.push(interval),
        }
    }
    Ok(merged)
}

/// `HH:MM` → seconds since midnight; `24:00` is accepted here and refused
/// as a start by the caller.
fn parse_time(text: &str, part: &str) -> Result<u32, HoursError> {
    let bytes = text.as_bytes();
    let well_formed = bytes.len() == 5
        && bytes[2] == b':'
        && [0, 1, 3, 4].iter().all(|&i| bytes[i].is_ascii_digit());
    if !well_formed {
        return Err(err(
            format!("\"{text}\" in \"{part}\" is not a time"),
            FORMAT_HINT,
        ));
    }
    let hours = u32::from(bytes[0] - b'0') * 10 + u32::from(bytes[1] - b'0');
    let minutes = u32::from(bytes[3] - b'0') * 10 + u32::from(bytes[4] - b'0');
    if minutes > 59 || hours > 24 || (hours == 24 && minutes > 0) {
        return Err(err(
            format!("\"{text}\" in \"{part}\" is past 24:00 or not a clock time"),
            "times run from 00:00 to 24:00",
        ));
    }
    Ok(hours * 3600 + minutes * 60)
}

/// `09:00`, `24:00`; seconds only when a calendar was built with them.
pub fn format_time(seconds: u32) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if s == 0 {
        format!("{h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// One day's intervals in words: `09:00–12:30 and 13:30–17:00`.
pub fn describe_day(intervals: &[OpenInterval]) -> String {
    let parts: Vec<String> = intervals
        .iter()
        .map(|i| format!("{}–{}", format_time(i.start), format_time(i.end)))
        .collect();
    match parts.len() {
        0 => "closed".to_string(),
        1 => parts[0].clone(),
        n => format!("{} and {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}

/// The open days of a week, consecutive days with the same hours grouped:
/// `Mon–Thu 09:00–17:00, Fri 09:00–12:30 and 13:30–17:00`. Closed days are
/// left out, as a client reading "Mon–Fri" expects.
pub fn describe_week(week: &Week) -> String {
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for day in 0..7 {
        if week[day].is_empty() {
            continue;
        }
        match groups.last_mut() {
            Some((_, last)) if *last + 1 == day && week[*last] == week[day] => *last = day,
            _ => groups.push((day, day)),
        }
    }
    groups
        .iter()
        .map(|&(first, last)| {
            let days = if first == last {
                DAY_SHORT[first].to_string()
            } else {
                format!("{}–{}", DAY_SHORT[first], DAY_SHORT[last])
            };
            format!("{days} {}", describe_day(&week[first]))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(start: u32, end: u32) -> OpenInterval {
        OpenInterval { start, end }
    }

    #[test]
    fn parses_one_and_several_intervals() {
        assert_eq!(parse_day("09:00-17:00").unwrap(), vec![iv(32_400, 61_200)]);
        assert_eq!(
            parse_day(" 13:30 - 17:00 ,09:00-12:30").unwrap(),
            vec![iv(32_400, 45_000), iv(48_600, 61_200)]
        );
        assert_eq!(parse_day("00:00-24:00").unwrap(), vec![iv(0, 86_400)]);
    }

    #[test]
    fn merges_touching_intervals() {
        assert_eq!(
            parse_day("09:00-13:00, 13:00-17:00").unwrap(),
            parse_day("09:00-17:00").unwrap()
        );
    }

    #[test]
    fn rejects_bad_values() {
        let cases = [
            ("17:00-09:00", "ends before it starts"),
            ("09:00-09:00", "ends before it starts"),
            ("09:00-13:00, 12:00-17:00", "overlap"),
            ("09:00-25:00", "past 24:00"),
            ("09:00-24:30", "past 24:00"),
            ("09:60-10:00", "past 24:00"),
            ("24:00-24:00", "starts at 24:00"),
            ("9-17", "is not a time"),
            ("9:00-17:00", "is not a time"),
            ("09:00", "not a time range"),
            ("", "empty"),
        ];
        for (input, expected) in cases {
            let e = parse_day(input).unwrap_err();
            assert!(
                e.message.contains(expected),
                "{input}: {} does not contain {expected}",
                e.message
            );
        }
    }

    #[test]
    fn describes_weeks() {
        let day = parse_day("09:00-17:00").unwrap();
        let fri = parse_day("09:00-12:30, 13:30-17:00").unwrap();
        let week: Week = [
            day.clone(),
            day.clone(),
            day.clone(),
            day.clone(),
            fri,
            vec![],
            vec![],
        ];
        assert_eq!(
            describe_week(&week),
            "Mon–Thu 09:00–17:00, Fri 09:00–12:30 and 13:30–17:00"
        );
        let split: Week = [
            day.clone(),
            vec![],
            day.clone(),
            vec![],
            vec![],
            vec![],
            day,
        ];
        assert_eq!(
            describe_week(&split),
            "Mon 09:00–17:00, Wed 09:00–17:00, Sun 09:00–17:00"
        );
    }
}
