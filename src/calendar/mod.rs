//! Business time: the open intervals of a calendar, and `add` / `between` over them.
//!
//! INTERFACE STUB — the calendar helper replaces the bodies; the signatures are
//! what the rest of the crate calls.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

/// Seconds since local midnight; `end` may be 86_400 (`24:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpenInterval {
    pub start: u32,
    pub end: u32,
}

/// Weekly open hours, index 0 = Monday … 6 = Sunday.
pub type Week = [Vec<OpenInterval>; 7];

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CalendarError {
    #[error("instant {0} is outside the supported range (years 1900..=2199)")]
    OutOfRange(DateTime<Utc>),
    #[error("calendar has no open time at all")]
    NeverOpen,
    #[error("{0}")]
    Invalid(String),
}

/// A window of business time: whole business days plus a business duration.
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

impl FromStr for BusinessDuration {
    type Err = DurationParseError;
    fn from_str(_s: &str) -> Result<Self, Self::Err> {
        Err(DurationParseError {
            input: _s.into(),
            reason: "stub".into(),
        })
    }
}

impl fmt::Display for BusinessDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}d{}s", self.days, self.seconds)
    }
}

#[derive(Debug, Clone)]
pub struct Calendar {
    tz: Tz,
}

impl Calendar {
    pub fn new(tz: Tz, _week: Week, _holidays: BTreeSet<NaiveDate>) -> Result<Self, CalendarError> {
        Ok(Calendar { tz })
    }
    pub fn always(tz: Tz) -> Self {
        Calendar { tz }
    }
    pub fn timezone(&self) -> Tz {
        self.tz
    }
    pub fn add(
        &self,
        t: DateTime<Utc>,
        _d: BusinessDuration,
    ) -> Result<DateTime<Utc>, CalendarError> {
        Ok(t)
    }
    pub fn between(
        &self,
        _a: DateTime<Utc>,
        _b: DateTime<Utc>,
    ) -> Result<chrono::Duration, CalendarError> {
        Ok(chrono::Duration::zero())
    }
}
