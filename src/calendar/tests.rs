//! The tricky cases, each with instants worked out by hand (UTC offsets noted).

use super::*;
use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

/// A local wall time that exists unambiguously.
fn at(tz: Tz, s: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    tz.from_local_datetime(&naive)
        .single()
        .unwrap_or_else(|| panic!("{s} is not a unique local time in {tz}"))
        .with_timezone(&Utc)
}

fn dur(s: &str) -> BusinessDuration {
    s.parse().unwrap()
}

fn hours(h: i64) -> TimeDelta {
    TimeDelta::hours(h)
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

const BERLIN: Tz = chrono_tz::Europe::Berlin;

/// Mon–Thu 09:00–17:00, Fri 09:00–12:30 and 13:30–17:00 (7 h), Berlin.
fn berlin_split_friday(holidays: &[&str]) -> Calendar {
    let mut week = weekdays(&[OpenInterval::hm(9, 0, 17, 0)]);
    week[4] = vec![
        OpenInterval::hm(9, 0, 12, 30),
        OpenInterval::hm(13, 30, 17, 0),
    ];
    Calendar::new(BERLIN, week, holidays.iter().map(|d| date(d)).collect()).unwrap()
}

fn nine_to_five(tz: Tz) -> Calendar {
    Calendar::new(
        tz,
        weekdays(&[OpenInterval::hm(9, 0, 17, 0)]),
        BTreeSet::new(),
    )
    .unwrap()
}

fn daily(tz: Tz, hours: &[OpenInterval]) -> Calendar {
    Calendar::new(tz, every_day(hours), BTreeSet::new()).unwrap()
}

// 2024-03-04 is a Monday; Berlin is +01:00 until 2024-03-31.

#[test]
fn count_ending_at_close_is_due_at_close() {
    let cal = nine_to_five(BERLIN);
    let mon = |hm: &str| at(BERLIN, &format!("2024-03-04 {hm}"));
    let tue = |hm: &str| at(BERLIN, &format!("2024-03-05 {hm}"));
    assert_eq!(cal.add(mon("16:00"), dur("1h")).unwrap(), mon("17:00"));
    assert_eq!(cal.add(mon("09:00"), dur("8h")).unwrap(), mon("17:00"));
    assert_eq!(cal.add(mon("16:00"), dur("61m")).unwrap(), tue("09:01"));
    // Counting starts at the next opening.
    assert_eq!(cal.add(mon("17:00"), dur("0m")).unwrap(), tue("09:00"));
    assert_eq!(cal.add(mon("18:30"), dur("30m")).unwrap(), tue("09:30"));
    assert_eq!(cal.add(mon("07:00"), dur("8h")).unwrap(), mon("17:00"));
    assert_eq!(cal.add(mon("10:15"), dur("0m")).unwrap(), mon("10:15"));
    assert!(cal.is_open(mon("09:00")).unwrap());
    assert!(!cal.is_open(mon("17:00")).unwrap());
    assert_eq!(cal.next_open(mon("17:00")).unwrap(), tue("09:00"));
    assert_eq!(cal.between(mon("16:00"), tue("10:00")).unwrap(), hours(2));
    assert_eq!(
        cal.between(tue("10:00"), mon("16:00")).unwrap(),
        TimeDelta::zero()
    );
}

#[test]
fn split_days_weekends_and_holidays() {
    let cal = berlin_split_friday(&[]);
    let fri = |hm: &str| at(BERLIN, &format!("2024-03-08 {hm}"));
    let mon = |hm: &str| at(BERLIN, &format!("2024-03-11 {hm}"));
    assert_eq!(cal.add(fri("12:00"), dur("30m")).unwrap(), fri("12:30"));
    assert_eq!(cal.add(fri("12:00"), dur("31m")).unwrap(), fri("13:31"));
    assert_eq!(cal.add(fri("12:45"), dur("0m")).unwrap(), fri("13:30"));
    assert_eq!(cal.between(fri("00:00"), fri("23:59")).unwrap(), hours(7));
    // Over the weekend.
    assert_eq!(cal.add(fri("16:00"), dur("2h")).unwrap(), mon("10:00"));
    let sat = at(BERLIN, "2024-03-09 10:00");
    assert_eq!(cal.add(sat, dur("30m")).unwrap(), mon("09:30"));
    assert_eq!(
        cal.between(sat, at(BERLIN, "2024-03-10 23:00")).unwrap(),
        TimeDelta::zero()
    );
    // A week: 4 × 8 h + 7 h.
    assert_eq!(
        cal.between(at(BERLIN, "2024-03-04 00:00"), mon("00:00"))
            .unwrap(),
        hours(39)
    );

    // Monday 2024-03-11 a holiday.
    let cal = berlin_split_friday(&["2024-03-11"]);
    let tue = at(BERLIN, "2024-03-12 10:00");
    assert_eq!(cal.add(fri("16:00"), dur("2h")).unwrap(), tue);
    assert!(cal.open_intervals_on(date("2024-03-11")).is_empty());
    assert_eq!(cal.between(fri("00:00"), tue).unwrap(), hours(8));
}

#[test]
fn intervals_ending_at_midnight() {
    // 22:00–24:00 and 00:00–02:00 every day: the night shift touches across days.
    let cal = daily(
        BERLIN,
        &[OpenInterval::hm(0, 0, 2, 0), OpenInterval::hm(22, 0, 24, 0)],
    );
    let d = |s: &str| at(BERLIN, s);
    assert_eq!(
        cal.add(d("2024-03-04 23:00"), dur("1h")).unwrap(),
        d("2024-03-05 00:00")
    );
    assert_eq!(
        cal.add(d("2024-03-04 23:00"), dur("2h")).unwrap(),
        d("2024-03-05 01:00")
    );
    assert_eq!(
        cal.add(d("2024-03-04 23:00"), dur("3h")).unwrap(),
        d("2024-03-05 02:00")
    );
    assert_eq!(
        cal.add(d("2024-03-04 23:00"), dur("3h1m")).unwrap(),
        d("2024-03-05 22:01")
    );
    assert_eq!(
        cal.between(d("2024-03-04 12:00"), d("2024-03-05 12:00"))
            .unwrap(),
        hours(4)
    );
    // 24:00 before a 23-hour day is that day's midnight, not 24 h after 00:00.
    let sat_midnight = cal.open_intervals_on(date("2024-03-30"))[1].1;
    assert_eq!(sat_midnight, utc("2024-03-30T23:00:00Z"));
    // New Year's Eve to New Year: the tables of two years meet at midnight.
    assert_eq!(
        cal.add(d("2024-12-31 23:30"), dur("1h")).unwrap(),
        d("2025-01-01 00:30")
    );
    assert_eq!(
        cal.between(d("2024-12-31 23:30"), d("2025-01-01 00:30"))
            .unwrap(),
        hours(1)
    );
}

#[test]
fn always_is_plain_time_and_days_keep_the_clock() {
    let cal = Calendar::always(BERLIN);
    let t = utc("2024-03-04T10:17:03.5Z");
    assert_eq!(
        cal.add(t, dur("1h30m")).unwrap(),
        t + TimeDelta::minutes(90)
    );
    assert_eq!(cal.add(t, dur("0m")).unwrap(), t);
    assert_eq!(cal.between(t, t + hours(100)).unwrap(), hours(100));
    assert!(cal.is_open(t).unwrap());
    // 1d = same local clock time on the next date: 23 h across spring forward…
    assert_eq!(
        cal.add(utc("2024-03-30T11:00:00Z"), dur("1d")).unwrap(),
        utc("2024-03-31T10:00:00Z")
    );
    // …25 h across fall back…
    assert_eq!(
        cal.add(utc("2024-10-26T10:00:00Z"), dur("1d")).unwrap(),
        utc("2024-10-27T11:00:00Z")
    );
    // …and 02:30 that does not exist moves to the transition (03:00 CEST).
    assert_eq!(
        cal.add(utc("2024-03-30T01:30:00.25Z"), dur("1d")).unwrap(),
        utc("2024-03-31T01:00:00Z")
    );
    assert_eq!(
        cal.add(utc("2024-03-30T11:00:00Z"), dur("1d2h")).unwrap(),
        utc("2024-03-31T12:00:00Z")
    );
}

#[test]
fn berlin_spring_forward() {
    // 2024-03-31: 02:00 CET jumps to 03:00 CEST (01:00Z).
    let d = date("2024-03-31");
    let cal = daily(BERLIN, &[OpenInterval::hm(1, 0, 4, 0)]);
    assert_eq!(
        cal.open_intervals_on(d),
        vec![(utc("2024-03-31T00:00:00Z"), utc("2024-03-31T02:00:00Z"))]
    );
    let one = utc("2024-03-31T00:00:00Z");
    assert_eq!(
        cal.add(one, dur("1h")).unwrap(),
        utc("2024-03-31T01:00:00Z")
    );
    assert_eq!(
        cal.add(one, dur("2h")).unwrap(),
        utc("2024-03-31T02:00:00Z")
    );
    assert_eq!(
        cal.add(one, dur("2h1m")).unwrap(),
        utc("2024-03-31T23:01:00Z")
    );
    // Starting inside the gap: start moves to the transition.
    let cal = daily(BERLIN, &[OpenInterval::hm(2, 30, 5, 0)]);
    assert_eq!(
        cal.open_intervals_on(d),
        vec![(utc("2024-03-31T01:00:00Z"), utc("2024-03-31T03:00:00Z"))]
    );
    // Entirely inside the gap: empty.
    let cal = daily(
        BERLIN,
        &[OpenInterval::hm(2, 0, 2, 59), OpenInterval::hm(9, 0, 10, 0)],
    );
    assert_eq!(
        cal.open_intervals_on(d),
        vec![(utc("2024-03-31T07:00:00Z"), utc("2024-03-31T08:00:00Z"))]
    );
    assert_eq!(
        cal.add(utc("2024-03-30T09:00:00Z"), dur("1h")).unwrap(),
        utc("2024-03-31T08:00:00Z")
    );
    // A whole day is 23 hours.
    let cal = daily(BERLIN, &[OpenInterval::hm(0, 0, 24, 0)]);
    assert_eq!(
        cal.between(utc("2024-03-30T23:00:00Z"), utc("2024-03-31T22:00:00Z"))
            .unwrap(),
        hours(23)
    );
}

#[test]
fn berlin_fall_back() {
    // 2024-10-27: 03:00 CEST goes back to 02:00 CET (01:00Z); 02:xx happens twice.
    let d = date("2024-10-27");
    let cal = daily(BERLIN, &[OpenInterval::hm(1, 0, 4, 0)]);
    assert_eq!(
        cal.open_intervals_on(d),
        vec![(utc("2024-10-26T23:00:00Z"), utc("2024-10-27T03:00:00Z"))]
    );
    // Ambiguous start and end take the earlier (CEST) instant.
    let cal = daily(
        BERLIN,
        &[OpenInterval::hm(2, 0, 2, 30), OpenInterval::hm(2, 45, 5, 0)],
    );
    assert_eq!(
        cal.open_intervals_on(d),
        vec![
            (utc("2024-10-27T00:00:00Z"), utc("2024-10-27T00:30:00Z")),
            (utc("2024-10-27T00:45:00Z"), utc("2024-10-27T04:00:00Z")),
        ]
    );
    // In the second 02:10 (CET, 01:10Z) the second interval is open.
    let second_pass = utc("2024-10-27T01:10:00Z");
    assert!(cal.is_open(second_pass).unwrap());
    assert_eq!(
        cal.add(second_pass, dur("2h50m")).unwrap(),
        utc("2024-10-27T04:00:00Z")
    );
    assert_eq!(
        cal.add(utc("2024-10-27T00:15:00Z"), dur("30m")).unwrap(),
        utc("2024-10-27T01:00:00Z")
    );
    let cal = daily(BERLIN, &[OpenInterval::hm(0, 0, 24, 0)]);
    assert_eq!(
        cal.between(utc("2024-10-26T22:00:00Z"), utc("2024-10-27T23:00:00Z"))
            .unwrap(),
        hours(25)
    );
}

#[test]
fn sao_paulo_day_starting_at_one() {
    // 2018-11-04: midnight (-03:00) jumps to 01:00 (-02:00) at 03:00Z.
    let tz = chrono_tz::America::Sao_Paulo;
    let d = date("2018-11-04");
    let cal = daily(tz, &[OpenInterval::hm(0, 0, 24, 0)]);
    assert_eq!(
        cal.open_intervals_on(d),
        vec![(utc("2018-11-04T03:00:00Z"), utc("2018-11-05T02:00:00Z"))]
    );
    // Saturday's 24:00 is the same transition instant.
    assert_eq!(
        cal.open_intervals_on(date("2018-11-03"))[0].1,
        utc("2018-11-04T03:00:00Z")
    );
    assert_eq!(
        cal.add(utc("2018-11-04T02:30:00Z"), dur("1h")).unwrap(),
        utc("2018-11-04T03:30:00Z")
    );
    let cal = daily(tz, &[OpenInterval::hm(0, 0, 9, 0)]);
    assert_eq!(
        cal.open_intervals_on(d),
        vec![(utc("2018-11-04T03:00:00Z"), utc("2018-11-04T11:00:00Z"))]
    );
    let cal = nine_to_five(tz);
    assert_eq!(
        cal.add(utc("2018-11-02T19:00:00Z"), dur("2h")).unwrap(),
        utc("2018-11-05T12:00:00Z")
    );
    let always = Calendar::always(tz);
    assert_eq!(
        always.add(utc("2018-11-03T03:00:00Z"), dur("1d")).unwrap(),
        utc("2018-11-04T03:00:00Z")
    );
    assert_eq!(
        always.add(utc("2018-11-03T03:00:00Z"), dur("2d")).unwrap(),
        utc("2018-11-05T02:00:00Z")
    );
}

#[test]
fn apia_missing_day() {
    // 2011-12-29 24:00 (-10:00) became 2011-12-31 00:00 (+14:00) at 10:00Z.
    let tz = chrono_tz::Pacific::Apia;
    let cal = daily(tz, &[OpenInterval::hm(9, 0, 17, 0)]);
    assert!(cal.open_intervals_on(date("2011-12-30")).is_empty());
    let thu = |hm: &str| utc(&format!("2011-12-29T{hm}:00Z"));
    assert_eq!(
        cal.open_intervals_on(date("2011-12-29")),
        vec![(thu("19:00"), utc("2011-12-30T03:00:00Z"))]
    );
    // Thursday 16:00 local (02:00Z Friday) + 2h = Saturday 10:00 local.
    assert_eq!(
        cal.add(utc("2011-12-30T02:00:00Z"), dur("2h")).unwrap(),
        utc("2011-12-30T20:00:00Z")
    );
    assert_eq!(
        cal.between(utc("2011-12-29T10:00:00Z"), utc("2011-12-31T10:00:00Z"))
            .unwrap(),
        hours(16)
    );
    // Business days skip the missing date.
    assert_eq!(
        cal.add(thu("19:00"), dur("1d")).unwrap(),
        utc("2011-12-30T03:00:00Z")
    );
    assert_eq!(
        cal.add(thu("20:00"), dur("1d")).unwrap(),
        utc("2011-12-30T20:00:00Z")
    );
    // A 24x7 calendar: a clock time on the missing date moves to the transition.
    let always = Calendar::always(tz);
    assert_eq!(
        always.add(thu("20:00"), dur("1d")).unwrap(),
        utc("2011-12-30T10:00:00Z")
    );
    assert_eq!(
        always.add(thu("20:00"), dur("2d")).unwrap(),
        utc("2011-12-30T20:00:00Z")
    );
    let whole = daily(tz, &[OpenInterval::hm(0, 0, 24, 0)]);
    assert_eq!(
        whole
            .between(utc("2011-12-29T00:00:00Z"), utc("2011-12-31T00:00:00Z"))
            .unwrap(),
        hours(48)
    );
}

#[test]
fn lord_howe_half_hour_dst() {
    let tz = chrono_tz::Australia::Lord_Howe;
    let cal = daily(tz, &[OpenInterval::hm(1, 0, 4, 0)]);
    // 2024-10-06: 02:00 (+10:30) jumps to 02:30 (+11:00).
    assert_eq!(
        cal.open_intervals_on(date("2024-10-06")),
        vec![(utc("2024-10-05T14:30:00Z"), utc("2024-10-05T17:00:00Z"))]
    );
    // 2024-04-07: 02:00 (+11:00) goes back to 01:30 (+10:30).
    assert_eq!(
        cal.open_intervals_on(date("2024-04-07")),
        vec![(utc("2024-04-06T14:00:00Z"), utc("2024-04-06T17:30:00Z"))]
    );
    let cal = daily(tz, &[OpenInterval::hm(1, 45, 2, 15)]);
    assert_eq!(
        cal.open_intervals_on(date("2024-04-07")),
        vec![(utc("2024-04-06T14:45:00Z"), utc("2024-04-06T15:45:00Z"))]
    );
    let cal = daily(tz, &[OpenInterval::hm(2, 10, 2, 20)]);
    assert!(cal.open_intervals_on(date("2024-10-06")).is_empty());
    let whole = daily(tz, &[OpenInterval::hm(0, 0, 24, 0)]);
    assert_eq!(
        whole
            .between(utc("2024-10-04T13:30:00Z"), utc("2024-10-06T13:00:00Z"))
            .unwrap(),
        TimeDelta::minutes(47 * 60 + 30)
    );
}

#[test]
fn kathmandu_quarter_hour_offset() {
    let tz = chrono_tz::Asia::Kathmandu;
    let cal = nine_to_five(tz);
    // Monday 2024-03-04 09:00 +05:45 = 03:15Z.
    assert_eq!(
        cal.add(utc("2024-03-04T03:15:00Z"), dur("4h")).unwrap(),
        utc("2024-03-04T07:15:00Z")
    );
    assert_eq!(
        cal.add(utc("2024-03-04T11:00:00Z"), dur("30m")).unwrap(),
        utc("2024-03-05T03:30:00Z")
    );
    assert_eq!(
        cal.between(utc("2024-03-03T00:00:00Z"), utc("2024-03-10T00:00:00Z"))
            .unwrap(),
        hours(40)
    );
}

#[test]
fn business_days() {
    let cal = berlin_split_friday(&[]);
    let d = |s: &str| at(BERLIN, s);
    // 2024-03-05 is a Tuesday.
    assert_eq!(
        cal.add(d("2024-03-05 09:00"), dur("1d")).unwrap(),
        d("2024-03-05 17:00")
    );
    assert_eq!(
        cal.add(d("2024-03-04 09:00"), dur("5d")).unwrap(),
        d("2024-03-08 17:00")
    );
    // Thursday 15:00 (p = 6 h): 3.5 h before lunch and 2.5 h after it on Friday.
    assert_eq!(
        cal.add(d("2024-03-07 15:00"), dur("1d")).unwrap(),
        d("2024-03-08 16:00")
    );
    assert_eq!(
        cal.add(d("2024-03-07 10:00"), dur("1d")).unwrap(),
        d("2024-03-08 10:00")
    );
    // p = 3.5 h lands exactly at Friday's lunch break: the end of that interval.
    assert_eq!(
        cal.add(d("2024-03-07 12:30"), dur("1d")).unwrap(),
        d("2024-03-08 12:30")
    );
    assert_eq!(
        cal.add(d("2024-03-07 16:30"), dur("1d")).unwrap(),
        d("2024-03-08 17:00")
    );
    assert_eq!(
        cal.add(d("2024-03-04 09:00"), dur("2d4h")).unwrap(),
        d("2024-03-06 13:00")
    );
    // Closed instants start at the next opening (p = 0).
    assert_eq!(
        cal.add(d("2024-03-09 10:00"), dur("1d")).unwrap(),
        d("2024-03-11 17:00")
    );
    assert_eq!(
        cal.add(d("2024-03-04 17:00"), dur("1d")).unwrap(),
        d("2024-03-05 17:00")
    );
    // Friday 16:00: p = 6 h of Friday; Monday + 6 h = 15:00.
    assert_eq!(
        cal.add(d("2024-03-08 16:00"), dur("1d")).unwrap(),
        d("2024-03-11 15:00")
    );
    assert_eq!(
        cal.add(d("2024-03-08 16:00"), dur("0d")).unwrap(),
        d("2024-03-08 16:00")
    );
    // Across New Year.
    assert_eq!(
        cal.add(d("2024-12-30 10:00"), dur("5d")).unwrap(),
        d("2025-01-06 10:00")
    );
    assert_eq!(
        cal.add(d("2024-12-23 09:00"), dur("10d")).unwrap(),
        d("2025-01-03 17:00")
    );

    // The spec's example: a 09:00–12:30 Friday clamps.
    let mut week = weekdays(&[OpenInterval::hm(9, 0, 17, 0)]);
    week[4] = vec![OpenInterval::hm(9, 0, 12, 30)];
    let short_friday = Calendar::new(BERLIN, week, BTreeSet::new()).unwrap();
    assert_eq!(
        short_friday.add(d("2024-03-07 15:00"), dur("1d")).unwrap(),
        d("2024-03-08 12:30")
    );
    assert_eq!(
        short_friday
            .add(d("2024-03-07 15:00"), dur("1d30m"))
            .unwrap(),
        d("2024-03-11 09:30")
    );
}

#[test]
fn multi_year_spans() {
    let cal = nine_to_five(BERLIN);
    let weekdays_count = date("2020-01-01")
        .iter_days()
        .take_while(|d| *d < date("2030-01-01"))
        .filter(|d| d.weekday().num_days_from_monday() < 5)
        .count() as i64;
    let from = at(BERLIN, "2020-01-01 09:00");
    let to = at(BERLIN, "2029-12-31 17:00");
    assert_eq!(cal.between(from, to).unwrap(), hours(8 * weekdays_count));
    let dur = BusinessDuration::from_hours(8 * weekdays_count as u64);
    assert_eq!(cal.add(from, dur).unwrap(), to);
    let dur = BusinessDuration::from_days(weekdays_count as u32);
    assert_eq!(cal.add(from, dur).unwrap(), to);
    let always = Calendar::always(BERLIN);
    assert_eq!(always.between(from, to).unwrap(), to - from);
}

#[test]
fn sub_second_parts_are_kept() {
    let cal = nine_to_five(BERLIN);
    let t = utc("2024-03-04T08:00:00.123456789Z");
    assert_eq!(
        cal.add(t, dur("1h")).unwrap(),
        utc("2024-03-04T09:00:00.123456789Z")
    );
    assert_eq!(
        cal.between(
            utc("2024-03-04T15:59:59.5Z"),
            utc("2024-03-05T08:00:00.25Z")
        )
        .unwrap(),
        TimeDelta::milliseconds(750)
    );
    assert_eq!(
        cal.add(utc("2024-03-04T15:59:59.5Z"), dur("1m")).unwrap(),
        utc("2024-03-05T08:00:59.5Z")
    );
}

#[test]
fn errors() {
    let cal = nine_to_five(BERLIN);
    let early = utc("1899-06-01T00:00:00Z");
    assert_eq!(
        cal.add(early, dur("1h")),
        Err(CalendarError::OutOfRange(early))
    );
    assert!(matches!(
        cal.add(utc("2199-12-30T10:00:00Z"), dur("5d")),
        Err(CalendarError::OutOfRange(_))
    ));
    assert!(matches!(
        cal.between(utc("2000-01-01T00:00:00Z"), utc("2200-06-01T00:00:00Z")),
        Err(CalendarError::OutOfRange(_))
    ));
    assert!(matches!(
        cal.add(
            utc("2024-01-01T00:00:00Z"),
            BusinessDuration::from_seconds(u64::MAX)
        ),
        Err(CalendarError::OutOfRange(_))
    ));
    let empty: Week = Default::default();
    assert_eq!(
        Calendar::new(BERLIN, empty, BTreeSet::new()).unwrap_err(),
        CalendarError::NeverOpen
    );
    let reversed = weekdays(&[OpenInterval::hm(17, 0, 9, 0)]);
    let err = Calendar::new(BERLIN, reversed, BTreeSet::new()).unwrap_err();
    assert_eq!(
        err,
        CalendarError::Invalid(
            "Monday: open interval 17:00–09:00 is empty, reversed or past 24:00".into()
        )
    );
    let past_midnight = weekdays(&[OpenInterval {
        start: 0,
        end: 86_401,
    }]);
    assert!(Calendar::new(BERLIN, past_midnight, BTreeSet::new()).is_err());
}

#[test]
fn overlapping_intervals_are_merged() {
    let week = weekdays(&[
        OpenInterval::hm(13, 0, 17, 0),
        OpenInterval::hm(9, 0, 12, 0),
        OpenInterval::hm(11, 0, 13, 0),
    ]);
    let cal = Calendar::new(BERLIN, week, BTreeSet::new()).unwrap();
    assert_eq!(cal.week().unwrap()[0], vec![OpenInterval::hm(9, 0, 17, 0)]);
    assert_eq!(
        cal.between(
            at(BERLIN, "2024-03-04 00:00"),
            at(BERLIN, "2024-03-05 00:00")
        )
        .unwrap(),
        hours(8)
    );
}

#[test]
fn shared_across_threads() {
    fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
    assert_shareable::<Calendar>();
    let cal = nine_to_five(BERLIN);
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let cal = cal.clone();
            std::thread::spawn(move || {
                let t = at(BERLIN, &format!("20{}-03-04 09:00", 24 + i));
                cal.between(t, cal.add(t, dur("3d")).unwrap()).unwrap()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), hours(24));
    }
}

#[test]
fn havana_midnight_changes() {
    // 2024-03-10: midnight (-05:00) jumps to 01:00 (-04:00) at 05:00Z;
    // 2024-11-03: 01:00 (-04:00) goes back to midnight (-05:00) at 05:00Z.
    let tz = chrono_tz::America::Havana;
    let cal = daily(tz, &[OpenInterval::hm(0, 0, 24, 0)]);
    assert_eq!(
        cal.open_intervals_on(date("2024-03-10")),
        vec![(utc("2024-03-10T05:00:00Z"), utc("2024-03-11T04:00:00Z"))]
    );
    assert_eq!(
        cal.open_intervals_on(date("2024-03-09"))[0].1,
        utc("2024-03-10T05:00:00Z")
    );
    // The ambiguous midnight is the earlier one: a 25-hour day.
    assert_eq!(
        cal.open_intervals_on(date("2024-11-03")),
        vec![(utc("2024-11-03T04:00:00Z"), utc("2024-11-04T05:00:00Z"))]
    );
    let cal = nine_to_five(tz);
    // Friday 2024-03-08 16:00 (-05:00) + 2h = Monday 10:00 (-04:00).
    assert_eq!(
        cal.add(utc("2024-03-08T21:00:00Z"), dur("2h")).unwrap(),
        utc("2024-03-11T14:00:00Z")
    );
}
