//! When a notification to a contact goes out (README, "Urgency and focus"): true urgencies at
//! once at any hour; everything else in the contact's working hours, and
//! warnings of a contact with a digest at the next digest time.
//!
//! Pure: the service asks with `now` and stores the answer in the outbox row
//! (its `not_before`), so a restart delivers at the same instant.

use chrono::{DateTime, Days, NaiveTime, Timelike, Utc};

use super::{Contact, Contract};
use crate::calendar::{Calendar, local_instant};

/// How far ahead a digest time or an opening is looked for; a calendar closed
/// longer than this (a year of holidays) gets its alerts at once instead.
const HORIZON_DAYS: u64 = 400;

/// When one notification to one contact goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// At once: an urgency, a page, or the contact is in working hours.
    Now,
    /// At the next opening of the contact's calendar.
    Deferred(DateTime<Utc>),
    /// In the contact's digest at this instant, with the other warnings due
    /// for it then.
    Digest(DateTime<Utc>),
}

impl Delivery {
    /// The instant it is held until, if it is held at all.
    pub fn not_before(self) -> Option<DateTime<Utc>> {
        match self {
            Delivery::Now => None,
            Delivery::Deferred(t) | Delivery::Digest(t) => Some(t),
        }
    }
}

/// What is being notified, as far as the routing rule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Urgency {
    /// The request type is `urgent = true`, or the step is `page = true`.
    pub page: bool,
    /// A step before the due (a digest collects those); breaches and steps
    /// at or after the due are not warnings.
    pub warning: bool,
}

impl Contract {
    /// The routing rule (README, "Urgency and focus") for one contact at `now`.
    pub fn delivery(&self, contact: &Contact, what: Urgency, now: DateTime<Utc>) -> Delivery {
        if what.page {
            return Delivery::Now;
        }
        let calendar = self.contact_calendar(contact);
        if what.warning
            && !contact.digest.is_empty()
            && let Some(at) = next_digest(
                &contact.digest,
                calendar,
                calendar.map_or(self.info().timezone, Calendar::timezone),
                now,
            )
        {
            return Delivery::Digest(at);
        }
        match calendar {
            Some(c) if c.is_open(now) == Ok(false) => match c.next_open(now) {
                Ok(open) if open - now < chrono::Duration::days(HORIZON_DAYS as i64) => {
                    Delivery::Deferred(open)
                }
                _ => Delivery::Now,
            },
            _ => Delivery::Now,
        }
    }
}

/// The first digest time at or after `now` (local times in `tz`) at which
/// `calendar` (if any) is open: digests wait for the contact's working days.
pub fn next_digest(
    times: &[NaiveTime],
    calendar: Option<&Calendar>,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    // From the day before, so no time of `now`'s own local date is skipped
    // whatever the DST rules; the ones before `now` are passed over below.
    let start = now
        .with_timezone(&tz)
        .date_naive()
        .checked_sub_days(Days::new(1))?;
    for offset in 0..HORIZON_DAYS {
        let date = start.checked_add_days(Days::new(offset))?;
        for t in times {
            let at = local_instant(tz, date, t.num_seconds_from_midnight());
            // A time in a DST gap and the next time may resolve to one instant.
            if at < now {
                continue;
            }
            if calendar.is_none_or(|c| c.is_open(at) == Ok(true)) {
                return Some(at);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(extra_contact: &str) -> Contract {
        let text = format!(
            r#"
[contract]
name = "Focus"
effective = "2026-01-01"
timezone = "Europe/Berlin"

[calendars.business]
timezone = "Europe/Berlin"
mon = "09:00-17:00"
tue = "09:00-17:00"
wed = "09:00-17:00"
thu = "09:00-17:00"
fri = "09:00-17:00"
holidays = ["2026-12-24"]

[channels.email]
kind = "email"
address = "support@example.com"

[[request_types]]
id = "question"
name = "Questions"
definition = "Everything."
default = true
channels = ["email"]
calendar = "business"
first_response = "4h"

[contacts]
{extra_contact}
"#
        );
        crate::contract::parse(&text, "focus.toml").unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const WARNING: Urgency = Urgency {
        page: false,
        warning: true,
    };
    const BREACH: Urgency = Urgency {
        page: false,
        warning: false,
    };

    #[test]
    fn pages_go_out_at_once_and_the_rest_waits_for_the_opening() {
        let c = contract(r#"lead = { email = "lead@example.com", calendar = "business" }"#);
        let lead = c.contact("lead").unwrap();
        // Saturday 03:00 Berlin.
        let night = at("2026-12-05T02:00:00Z");
        let page = Urgency {
            page: true,
            warning: true,
        };
        assert_eq!(c.delivery(lead, page, night), Delivery::Now);
        assert_eq!(
            c.delivery(lead, BREACH, night),
            Delivery::Deferred(at("2026-12-07T08:00:00Z")),
            "Monday 09:00 Berlin"
        );
        let office = at("2026-12-07T10:00:00Z");
        assert_eq!(c.delivery(lead, WARNING, office), Delivery::Now);
    }

    #[test]
    fn digests_fall_on_open_days_only() {
        let c = contract(
            r#"lead = { email = "lead@example.com", calendar = "business", digest = ["14:00", "09:30"] }"#,
        );
        let lead = c.contact("lead").unwrap();
        assert_eq!(
            lead.digest,
            vec![
                NaiveTime::from_hms_opt(9, 30, 0).unwrap(),
                NaiveTime::from_hms_opt(14, 0, 0).unwrap()
            ]
        );
        // Wednesday 23 Dec 15:00: 24th is a holiday, so Friday 25th 09:30.
        assert_eq!(
            c.delivery(lead, WARNING, at("2026-12-23T14:00:00Z")),
            Delivery::Digest(at("2026-12-25T08:30:00Z"))
        );
        // At 09:30 exactly, that digest.
        assert_eq!(
            c.delivery(lead, WARNING, at("2026-12-07T08:30:00Z")),
            Delivery::Digest(at("2026-12-07T08:30:00Z"))
        );
        // A breach is not a warning: it goes out in working hours.
        assert_eq!(
            c.delivery(lead, BREACH, at("2026-12-07T10:00:00Z")),
            Delivery::Now
        );
    }

    #[test]
    fn a_contact_without_hours_is_reachable_at_any_hour() {
        let c = contract(r#"lead = "lead@example.com""#);
        let lead = c.contact("lead").unwrap();
        assert_eq!(
            lead.email.as_ref().and_then(|t| t.value()),
            Some("lead@example.com")
        );
        assert_eq!(
            c.delivery(lead, BREACH, at("2026-12-05T02:00:00Z")),
            Delivery::Now
        );
    }
}
