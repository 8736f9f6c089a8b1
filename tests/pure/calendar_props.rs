//! Properties of `add` and `between` over random calendars, zones, holidays
//! and instants (2000–2040). The zones are chosen for their trouble: 30-minute
//! DST, +05:45, midnight gaps, a skipped day, abolished DST.
use crate::common;

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use keepword::calendar::{BusinessDuration, Calendar, OpenInterval, Week};
use proptest::prelude::*;

use common::ZONES;

const FROM: i64 = 946_684_800; // 2000-01-01
const TO: i64 = 2_240_524_800; // 2041-01-01

/// Intervals in minutes, often around 00:00–04:00 where DST changes happen,
/// sometimes ending at 24:00.
fn interval() -> impl Strategy<Value = OpenInterval> {
    prop_oneof![
        (0u32..1440, 1u32..=1440).prop_map(|(s, len)| (s, (s + len).min(1440))),
        (0u32..300, 1u32..=240).prop_map(|(s, len)| (s, s + len)),
        (1200u32..1440).prop_map(|s| (s, 1440)),
        Just((540, 1020)),
    ]
    .prop_map(|(s, e)| OpenInterval {
        start: s * 60,
        end: e * 60,
    })
}

fn week() -> impl Strategy<Value = Week> {
    proptest::array::uniform7(prop::collection::vec(interval(), 0..=3)).prop_map(|mut w| {
        if w.iter().all(Vec::is_empty) {
            w[0].push(OpenInterval {
                start: 9 * 3600,
                end: 17 * 3600,
            });
        }
        w
    })
}

fn holidays() -> impl Strategy<Value = BTreeSet<NaiveDate>> {
    let day = (0i64..(TO - FROM) / 86_400).prop_map(|d| {
        DateTime::from_timestamp(FROM + d * 86_400, 0)
            .unwrap()
            .date_naive()
    });
    prop::collection::btree_set(day, 0..40)
}

fn calendar() -> impl Strategy<Value = Calendar> {
    prop_oneof![
        8 => (prop::sample::select(ZONES), week(), holidays())
            .prop_map(|(tz, w, h)| Calendar::new(tz, w, h).unwrap()),
        1 => prop::sample::select(ZONES).prop_map(Calendar::always),
    ]
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        (FROM..TO).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
        (FROM / 60..TO / 60).prop_map(|m| DateTime::from_timestamp(m * 60, 0).unwrap()),
        (FROM..TO, 0u32..1_000_000_000).prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap()),
    ]
}

/// Up to 5 days of business seconds.
fn seconds() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        (0u64..=7200).prop_map(|m| m * 60),
        0u64..=5 * 86_400,
    ]
}

fn secs(s: u64) -> BusinessDuration {
    BusinessDuration::from_seconds(s)
}

fn td(s: u64) -> TimeDelta {
    TimeDelta::seconds(s as i64)
}

/// Open at `r`, or exactly at the end of an interval (open just before it).
fn open_or_at_end(cal: &Calendar, r: DateTime<Utc>) -> bool {
    cal.is_open(r).unwrap() || cal.is_open(r - TimeDelta::nanoseconds(1)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn between_undoes_add(cal in calendar(), t in instant(), d in seconds()) {
        let r = cal.add(t, secs(d)).unwrap();
        prop_assert!(r >= t);
        prop_assert_eq!(cal.between(t, r).unwrap(), td(d));
        // Nothing of `d` is left earlier: one nanosecond before `r` is short.
        if d > 0 {
            prop_assert!(cal.between(t, r - TimeDelta::nanoseconds(1)).unwrap() < td(d));
        }
    }

    #[test]
    fn add_lands_in_open_time_or_at_an_end(cal in calendar(), t in instant(), d in seconds()) {
        let r = cal.add(t, secs(d)).unwrap();
        if d == 0 {
            prop_assert!(cal.is_open(r).unwrap(), "add(t, 0) = {} must be open", r);
            prop_assert_eq!(cal.between(t, r).unwrap(), TimeDelta::zero());
            prop_assert_eq!(r, cal.next_open(t).unwrap());
        } else {
            prop_assert!(open_or_at_end(&cal, r), "{} is neither open nor an end", r);
        }
    }

    #[test]
    fn add_is_monotone(cal in calendar(), t1 in instant(), gap in 0i64..20 * 86_400,
                       d1 in seconds(), d2 in seconds()) {
        let t2 = t1 + TimeDelta::seconds(gap);
        let (d1, d2) = (d1.min(d2), d1.max(d2));
        prop_assert!(cal.add(t1, secs(d1)).unwrap() <= cal.add(t2, secs(d1)).unwrap());
        prop_assert!(cal.add(t1, secs(d1)).unwrap() <= cal.add(t1, secs(d2)).unwrap());
    }

    #[test]
    fn add_composes(cal in calendar(), t in instant(), a in seconds(), b in 1u64..=3 * 86_400) {
        // b > 0: `add(x, 0)` moves a closing instant to the next opening.
        let step = cal.add(cal.add(t, secs(a)).unwrap(), secs(b)).unwrap();
        prop_assert_eq!(step, cal.add(t, secs(a + b)).unwrap());
    }

    #[test]
    fn between_is_additive(cal in calendar(), a in instant(), gap1 in 0i64..40 * 86_400,
                           gap2 in 0i64..40 * 86_400) {
        let b = a + TimeDelta::seconds(gap1);
        let c = b + TimeDelta::seconds(gap2);
        let (ab, bc, ac) = (cal.between(a, b).unwrap(), cal.between(b, c).unwrap(), cal.between(a, c).unwrap());
        prop_assert_eq!(ab + bc, ac);
        prop_assert!(ac <= c - a);
        prop_assert_eq!(cal.between(c, a).unwrap(), TimeDelta::zero());
    }

    #[test]
    fn business_days_are_monotone_and_land_well(cal in calendar(), t in instant(),
                                                days in 0u32..=6, extra in seconds()) {
        let d = BusinessDuration { days, seconds: extra.min(86_400) };
        let r = cal.add(t, d).unwrap();
        prop_assert!(r >= t);
        prop_assert!(open_or_at_end(&cal, r), "{} is neither open nor an end", r);
        let more = BusinessDuration { days: days + 1, ..d };
        prop_assert!(cal.add(t, more).unwrap() >= r);
        if days > 0 && !cal.is_always() {
            // The days part spans at least the rest of the starting open day.
            let no_extra = cal.add(t, BusinessDuration { days, seconds: 0 }).unwrap();
            prop_assert!(no_extra > cal.next_open(t).unwrap());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Explaining `add(t, d)`: the counted spans sum to `d` exactly, lie in
    /// open time, and every local date skipped is a holiday or a day without
    /// open time.
    #[test]
    fn explanation_counts_exactly_the_window(cal in calendar(), t in instant(), s in seconds()) {
        let Ok(due) = cal.add(t, secs(s)) else { return Ok(()) };
        let e = keepword::calendar::explain(&cal, &[(t, None)], due);
        prop_assume!(!e.truncated);
        prop_assert_eq!(e.counted, TimeDelta::seconds(s as i64));
        prop_assert_eq!(e.paused, TimeDelta::zero());
        for day in &e.days {
            for c in &day.counted {
                prop_assert!(c.start >= t && c.end <= due);
                prop_assert!(cal.is_open(c.start).unwrap());
                prop_assert_eq!(cal.between(c.start, c.end).unwrap(), c.length());
            }
            if day.skipped.is_some() {
                prop_assert!(cal.open_intervals_on(day.date).is_empty());
            }
        }
    }
}
