//! `BusinessDuration`: the `30m` / `4h` / `1h30m` / `5d` / `2d4h` windows written in contracts.

use std::fmt;
use std::str::FromStr;

/// A window of business time: whole business days plus business seconds.
///
/// Written `Nd`, `Nh`, `Nm` or a combination in descending order (`1d4h30m`).
/// Days are counted with the open-day rule of the module doc, not as 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BusinessDuration {
    pub days: u32,
    pub seconds: u64,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("`{input}` is not a duration: {reason} (write e.g. `30m`, `4h`, `1h30m`, `5d`)")]
pub struct DurationParseError {
    pub input: String,
    pub reason: String,
}

impl BusinessDuration {
    pub const ZERO: BusinessDuration = BusinessDuration {
        days: 0,
        seconds: 0,
    };

    /// A duration of business seconds only (no day part).
    pub const fn from_seconds(seconds: u64) -> Self {
        BusinessDuration { days: 0, seconds }
    }

    pub const fn from_minutes(minutes: u64) -> Self {
        BusinessDuration {
            days: 0,
            seconds: minutes * 60,
        }
    }

    pub const fn from_hours(hours: u64) -> Self {
        BusinessDuration {
            days: 0,
            seconds: hours * 3600,
        }
    }

    pub const fn from_days(days: u32) -> Self {
        BusinessDuration { days, seconds: 0 }
    }

    pub const fn is_zero(&self) -> bool {
        self.days == 0 && self.seconds == 0
    }

    /// Plain English for people: "4 business hours", "1 hour 30 minutes",
    /// "5 business days", "2 business days, 4 hours".
    ///
    /// "business" is said once: on a lone unit, or on the days when there are
    /// days; a compound time part like "1 hour 30 minutes" reads clearly as is.
    pub fn in_words(&self) -> String {
        let (h, m, s) = split_seconds(self.seconds);
        let mut time_parts: Vec<String> = Vec::new();
        for (n, unit) in [(h, "hour"), (m, "minute"), (s, "second")] {
            if n > 0 {
                time_parts.push(plural(n, unit));
            }
        }
        match (self.days, time_parts.len()) {
            (0, 0) => "0 minutes".to_string(),
            (0, 1) => {
                let n = [h, m, s].into_iter().find(|&n| n > 0).unwrap_or(0);
                let unit = if h > 0 {
                    "hour"
                } else if m > 0 {
                    "minute"
                } else {
                    "second"
                };
                plural(n, &format!("business {unit}"))
            }
            (0, _) => time_parts.join(" "),
            (d, 0) => plural(u64::from(d), "business day"),
            (d, _) => format!(
                "{}, {}",
                plural(u64::from(d), "business day"),
                time_parts.join(" ")
            ),
        }
    }
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

fn split_seconds(seconds: u64) -> (u64, u64, u64) {
    (seconds / 3600, seconds % 3600 / 60, seconds % 60)
}

impl fmt::Display for BusinessDuration {
    /// The canonical form (`1h30m`, `5d`, `2d4h`, `0m` for zero). Seconds that
    /// are not whole minutes (only reachable through the fields or
    /// `from_seconds`) print as a trailing `Ns`, which the parser rejects: the
    /// contract language deliberately has no seconds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m, s) = split_seconds(self.seconds);
        if self.is_zero() {
            return f.write_str("0m");
        }
        if self.days > 0 {
            write!(f, "{}d", self.days)?;
        }
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}

impl FromStr for BusinessDuration {
    type Err = DurationParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| DurationParseError {
            input: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(fail("it is empty".into()));
        }
        if input.trim() != input || input.contains(char::is_whitespace) {
            return Err(fail(
                "it contains spaces; write units as one letter right after the number".into(),
            ));
        }
        if input.starts_with('-') {
            return Err(fail("negative durations are not allowed".into()));
        }

        // Rank of the last unit seen: d = 0, h = 1, m = 2; units must strictly increase.
        let mut last: Option<(usize, char)> = None;
        let mut days: u32 = 0;
        let mut seconds: u64 = 0;
        let mut rest = input;
        while !rest.is_empty() {
            let digits_len = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let (digits, after) = rest.split_at(digits_len);
            let unit_len = after
                .find(|c: char| !c.is_alphabetic())
                .unwrap_or(after.len());
            let (unit, after_unit) = after.split_at(unit_len);

            if digits.is_empty() {
                return Err(fail(match after.chars().next() {
                    Some(c) if c.is_alphabetic() => {
                        format!("unit `{unit}` has no number before it")
                    }
                    Some('+') => "a sign is not allowed".into(),
                    Some(c) => format!("unexpected `{c}`"),
                    None => "it is empty".into(),
                }));
            }
            if unit.is_empty() {
                return Err(fail(match after.chars().next() {
                    Some('.') | Some(',') => {
                        "fractions are not allowed; write `1h30m` instead of `1.5h`".into()
                    }
                    Some(c) => format!("unexpected `{c}` after `{digits}`"),
                    None => format!("the number `{digits}` has no unit (d, h or m)"),
                }));
            }
            let (rank, unit_char) = match unit {
                "d" => (0, 'd'),
                "h" => (1, 'h'),
                "m" => (2, 'm'),
                other => {
                    return Err(fail(format!("unknown unit `{other}` (use d, h or m)")));
                }
            };
            if let Some((last_rank, last_char)) = last {
                if last_rank == rank {
                    return Err(fail(format!("unit `{unit_char}` appears more than once")));
                }
                if last_rank > rank {
                    return Err(fail(format!(
                        "units must come in the order d, h, m (`{unit_char}` after `{last_char}`)"
                    )));
                }
            }
            last = Some((rank, unit_char));

            let too_large = || fail(format!("`{digits}{unit}` is too large"));
            let n: u64 = digits.parse().map_err(|_| too_large())?;
            match rank {
                0 => days = u32::try_from(n).map_err(|_| too_large())?,
                _ => {
                    let unit_seconds = if rank == 1 { 3600 } else { 60 };
                    seconds = n
                        .checked_mul(unit_seconds)
                        .and_then(|s| s.checked_add(seconds))
                        // Keep every duration representable as i64 nanoseconds.
                        .filter(|&s| s <= MAX_SECONDS)
                        .ok_or_else(too_large)?;
                }
            }
            rest = after_unit;
        }
        Ok(BusinessDuration { days, seconds })
    }
}

/// Largest business-seconds part accepted by the parser: about 290 years, the
/// most that fits in i64 nanoseconds (the calendar only spans 1900..=2199 anyway).
pub const MAX_SECONDS: u64 = (i64::MAX / 1_000_000_000) as u64;

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> BusinessDuration {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn accepts() {
        let table: &[(&str, u32, u64, &str)] = &[
            ("30m", 0, 1800, "30m"),
            ("4h", 0, 14_400, "4h"),
            ("5d", 5, 0, "5d"),
            ("1h30m", 0, 5400, "1h30m"),
            ("2d4h", 2, 14_400, "2d4h"),
            ("1d4h30m", 1, 16_200, "1d4h30m"),
            ("1d30m", 1, 1800, "1d30m"),
            ("90m", 0, 5400, "1h30m"),
            ("0m", 0, 0, "0m"),
            ("0d", 0, 0, "0m"),
            ("0h", 0, 0, "0m"),
            ("2d0h", 2, 0, "2d"),
            ("007m", 0, 420, "7m"),
            ("48h", 0, 172_800, "48h"),
        ];
        for &(input, days, seconds, canonical) in table {
            let d = ok(input);
            assert_eq!(d, BusinessDuration { days, seconds }, "{input}");
            assert_eq!(d.to_string(), canonical, "{input}");
            assert_eq!(ok(canonical), d, "canonical form of {input} parses back");
        }
    }

    #[test]
    fn rejects_with_reason() {
        let table: &[(&str, &str)] = &[
            ("", "empty"),
            ("0", "has no unit"),
            ("15", "has no unit"),
            ("-1h", "negative"),
            ("4 hours", "spaces"),
            (" 4h", "spaces"),
            ("4h ", "spaces"),
            ("4hours", "unknown unit `hours`"),
            ("1.5h", "fractions"),
            ("h", "has no number"),
            ("1hm", "unknown unit `hm`"),
            ("1h2h", "more than once"),
            ("30m1h", "order"),
            ("1h2d", "order"),
            ("10s", "unknown unit `s`"),
            ("1w", "unknown unit `w`"),
            ("+1h", "sign"),
            ("1h-", "unexpected `-`"),
            ("99999999999999999999999h", "too large"),
            ("5000000000d", "too large"),
            ("9999999999999999h", "too large"),
            ("1h_30m", "unexpected `_`"),
        ];
        for &(input, reason) in table {
            let err = input
                .parse::<BusinessDuration>()
                .expect_err(&format!("`{input}` must be rejected"));
            assert_eq!(err.input, input);
            assert!(
                err.reason.contains(reason),
                "`{input}`: reason `{}` should mention `{reason}`",
                err.reason
            );
        }
    }

    #[test]
    fn display_and_words() {
        let d = BusinessDuration::from_seconds(3661);
        assert_eq!(d.to_string(), "1h1m1s");
        assert_eq!(ok("4h").in_words(), "4 business hours");
        assert_eq!(ok("1h").in_words(), "1 business hour");
        assert_eq!(ok("1h30m").in_words(), "1 hour 30 minutes");
        assert_eq!(ok("5d").in_words(), "5 business days");
        assert_eq!(ok("1d").in_words(), "1 business day");
        assert_eq!(ok("30m").in_words(), "30 business minutes");
        assert_eq!(ok("2d4h").in_words(), "2 business days, 4 hours");
        assert_eq!(ok("0m").in_words(), "0 minutes");
    }
}
