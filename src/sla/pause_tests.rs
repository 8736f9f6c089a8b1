//! Pause governance (`max_pause`, README, "Urgency and focus"): the resolution timer resumes by
//! itself once a conversation has spent that much business time waiting on
//! the client — exactly at the limit, across pauses, never earlier.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::*;
use crate::calendar::{BusinessDuration, Calendar, OpenInterval, weekdays};
use crate::contract::{EscalationStep, EscalationTrigger, Percent, Timer};

const BERLIN: Tz = chrono_tz::Europe::Berlin;

fn t(s: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
        .unwrap();
    BERLIN
        .from_local_datetime(&naive)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

fn d(s: &str) -> BusinessDuration {
    s.parse().unwrap()
}

/// Mon–Thu 09:00–17:00, Fri 09:00–12:30 + 13:30–17:00, Berlin.
fn berlin() -> Calendar {
    let mut week = weekdays(&[OpenInterval::hm(9, 0, 17, 0)]);
    week[4] = vec![
        OpenInterval::hm(9, 0, 12, 30),
        OpenInterval::hm(13, 30, 17, 0),
    ];
    Calendar::new(BERLIN, week, BTreeSet::new()).unwrap()
}

fn policy(max_pause: &str) -> Policy {
    Policy::new(
        berlin(),
        [Some(d("4h")), None, Some(d("5d"))],
        vec![EscalationStep {
            trigger: EscalationTrigger::At(Percent::new(75).unwrap()),
            notify: vec!["lead".into()],
            page: false,
        }],
    )
    .with_max_pause(Some(d(max_pause)))
}

fn resolution(s: &ConversationState) -> &TimerState {
    s.timers
        .iter()
        .find(|x| x.timer == Timer::Resolution)
        .expect("a resolution timer")
}

#[test]
fn a_days_budget_resumes_exactly_at_the_business_day_rule() {
    let p = policy("3d");
    // Monday 2 November 09:00 a request; 10:00 we ask the client something.
    let events = [
        Event::message(t("2026-11-02 09:00"), Direction::Inbound),
        Event::question(t("2026-11-02 10:00")),
    ];
    // 3 business days from Monday 10:00 is Thursday 10:00.
    let limit = t("2026-11-05 10:00");
    let before = evaluate(&p, &events, limit - TimeDelta::seconds(1));
    assert_eq!(resolution(&before).status, TimerStatus::Paused);
    assert_eq!(before.next_change, Some(limit), "the scheduler looks then");
    assert_eq!(before.pause_limit_resumed_at, None);
    assert_eq!(before.paused, TimeDelta::hours(24) - TimeDelta::seconds(1));

    let at = evaluate(&p, &events, limit);
    let r = resolution(&at);
    assert_eq!(r.status, TimerStatus::Running);
    assert_eq!(at.pause_limit_resumed_at, Some(limit));
    assert_eq!(at.paused, TimeDelta::hours(24), "3 x 8 business hours");
    assert_eq!(
        at.status,
        TicketStatus::Pending,
        "still waiting on the client"
    );
    // 5d from Monday 09:00 is 39 business hours; 1 h ran before the pause,
    // so 38 h from Thursday 10:00: Thu 7 h, Fri 7 h, Mon–Wed 24 h.
    assert_eq!(r.due_at, Some(t("2026-11-11 17:00")));

    // Later the paused figure stops growing.
    let later = evaluate(&p, &events, t("2026-11-09 12:00"));
    assert_eq!(later.paused, TimeDelta::hours(24));
}

#[test]
fn an_hours_budget_spans_pauses_and_then_pending_no_longer_stops_the_clock() {
    let p = policy("4h");
    let events = [
        Event::message(t("2026-11-02 09:00"), Direction::Inbound),
        Event::question(t("2026-11-02 10:00")),
        // The client answers at 12:00: 2 h of the budget used.
        Event::message(t("2026-11-02 12:00"), Direction::Inbound),
        Event::status(t("2026-11-03 09:00"), TicketStatus::Pending),
    ];
    let limit = t("2026-11-03 11:00");
    let before = evaluate(&p, &events, limit - TimeDelta::seconds(1));
    assert_eq!(resolution(&before).status, TimerStatus::Paused);
    assert_eq!(before.next_change, Some(limit));
    let at = evaluate(&p, &events, limit);
    assert_eq!(resolution(&at).status, TimerStatus::Running);
    assert_eq!(at.paused, TimeDelta::hours(4));

    let mut more = events.to_vec();
    more.push(Event::message(t("2026-11-03 13:00"), Direction::Inbound));
    more.push(Event::question(t("2026-11-03 14:00")));
    let s = evaluate(&p, &more, t("2026-11-03 16:00"));
    assert_eq!(
        resolution(&s).status,
        TimerStatus::Running,
        "the budget is spent: asking the client again pauses nothing"
    );
    assert_eq!(s.paused, TimeDelta::hours(4));
}

#[test]
fn a_pause_over_the_weekend_counts_business_time_only() {
    let p = policy("8h");
    // Friday 16:00 the team asks; the weekend does not count.
    let events = [
        Event::message(t("2026-11-06 15:00"), Direction::Inbound),
        Event::question(t("2026-11-06 16:00")),
    ];
    // Fri 16:00–17:00 is 1 h; Monday 09:00 + 7 h = 16:00.
    let s = evaluate(&p, &events, t("2026-11-09 15:59:59"));
    assert_eq!(resolution(&s).status, TimerStatus::Paused);
    let s = evaluate(&p, &events, t("2026-11-09 16:00"));
    assert_eq!(resolution(&s).status, TimerStatus::Running);
    assert_eq!(s.pause_limit_resumed_at, Some(t("2026-11-09 16:00")));
}

#[test]
fn without_max_pause_nothing_changes() {
    let p = policy("1h").with_max_pause(None);
    let events = [
        Event::message(t("2026-11-02 09:00"), Direction::Inbound),
        Event::question(t("2026-11-02 10:00")),
    ];
    let s = evaluate(&p, &events, t("2026-11-20 10:00"));
    assert_eq!(resolution(&s).status, TimerStatus::Paused);
    assert_eq!(s.next_change, None);
    assert_eq!(s.pause_limit_resumed_at, None);
    // The paused time is reported all the same.
    // Mon 2nd 10:00 to Fri 20th 10:00: 7 + 24 + 7 + 39 + 32 + 1 hours.
    assert_eq!(s.paused, TimeDelta::hours(110));
}

// ---- properties -------------------------------------------------------------

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 6, 0, 0).unwrap()
}

fn kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        3 => Just(EventKind::Message { direction: Direction::Inbound, awaiting_client: false }),
        3 => any::<bool>().prop_map(|awaiting_client| EventKind::Message {
            direction: Direction::Outbound,
            awaiting_client,
        }),
        2 => Just(EventKind::Status(TicketStatus::Pending)),
        1 => Just(EventKind::Status(TicketStatus::Open)),
        1 => Just(EventKind::Status(TicketStatus::Solved)),
    ]
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec(
        ((0..14 * 24 * 60i64), kind()).prop_map(|(m, kind)| Event {
            at: base() + TimeDelta::minutes(m),
            kind,
        }),
        1..12,
    )
    .prop_map(|mut v| {
        v.sort_by_key(|e| e.at);
        v
    })
}

fn budget() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("30m"),
        Just("2h"),
        Just("4h30m"),
        Just("1d"),
        Just("2d")
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A single pause started at any instant resumes exactly when the
    /// business time paused reaches the budget (the business-day rule for
    /// days), and not a second earlier.
    #[test]
    fn one_pause_resumes_exactly_at_the_limit(start in 0..14 * 24 * 60i64, secs in 0..60i64, max in budget()) {
        let p = policy(max);
        let opened = base();
        let asked = opened + TimeDelta::minutes(start) + TimeDelta::seconds(secs);
        let asked = asked.max(opened + TimeDelta::seconds(1));
        let events = [
            Event::message(opened, Direction::Inbound),
            Event::question(asked),
        ];
        let cal = berlin();
        let limit = cal.add(asked, d(max)).unwrap();
        let budget = cal.between(asked, limit).unwrap();
        if d(max).days == 0 {
            prop_assert_eq!(budget.num_seconds() as u64, d(max).seconds);
        }
        let before = evaluate(&p, &events, limit - TimeDelta::seconds(1));
        prop_assert_eq!(resolution(&before).status, TimerStatus::Paused);
        prop_assert!(before.next_change.is_some_and(|n| n <= limit));
        let at = evaluate(&p, &events, limit);
        // Running again (or breached, if the window ran out before the pause).
        prop_assert!(matches!(resolution(&at).status, TimerStatus::Running | TimerStatus::Breached));
        prop_assert_eq!(at.pause_limit_resumed_at, Some(limit));
        prop_assert_eq!(at.paused, budget);
    }

    /// Whatever the events, the time paused never exceeds the budget, and
    /// once it has run out the resolution timer is never paused again.
    #[test]
    fn the_budget_bounds_every_history(events in events(), extra in 0..20_000i64, max in budget()) {
        let p = policy(max);
        let now = events.last().map_or(base(), |e| e.at) + TimeDelta::minutes(extra);
        let s = evaluate(&p, &events, now);
        if let Some(limit) = s.pause_limit_resumed_at {
            prop_assert!(limit <= now);
            if s.status != TicketStatus::Solved {
                prop_assert_ne!(resolution(&s).status, TimerStatus::Paused);
            }
            // The first pause's start fixes a days budget; hours are exact.
            if d(max).days == 0 {
                prop_assert_eq!(s.paused.num_seconds() as u64, d(max).seconds);
            }
        } else if d(max).days == 0 {
            prop_assert!((s.paused.num_seconds() as u64) < d(max).seconds
                || resolution(&s).status != TimerStatus::Paused);
        }
        let unlimited = evaluate(&p.clone().with_max_pause(None), &events, now);
        prop_assert!(s.paused <= unlimited.paused);
    }

    /// Nothing observable changes before `next_change`: the scheduler may
    /// sleep until then, the automatic resume included.
    #[test]
    fn nothing_changes_before_next_change(events in events(), extra in 0..5_000i64, max in budget()) {
        let p = policy(max);
        let now = events.last().map_or(base(), |e| e.at) + TimeDelta::minutes(extra);
        let a = evaluate(&p, &events, now);
        if let Some(next) = a.next_change {
            let just_before = next - TimeDelta::seconds(1);
            if just_before > now {
                let b = evaluate(&p, &events, just_before);
                let statuses = |s: &ConversationState| s.timers.iter().map(|t| t.status).collect::<Vec<_>>();
                prop_assert_eq!(statuses(&a), statuses(&b));
                prop_assert_eq!(a.health, b.health);
                prop_assert_eq!(a.pause_limit_resumed_at, b.pause_limit_resumed_at);
            }
        }
    }
}
