//! Properties of the SLA engine over random conversations: random message
//! directions (auto and internal included), statuses, question flags and
//! instants over three weeks, on an office calendar and a 24x7 one.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use keepword::calendar::{BusinessDuration, Calendar, OpenInterval, weekdays};
use keepword::contract::{EscalationStep, EscalationTrigger, Percent, Timer};
use keepword::sla::{
    ConversationState, Direction, Event, EventKind, Policy, TicketStatus, TimerStatus, evaluate,
};
use proptest::prelude::*;

const BERLIN: chrono_tz::Tz = chrono_tz::Europe::Berlin;

fn d(s: &str) -> BusinessDuration {
    s.parse().unwrap()
}

fn step(trigger: EscalationTrigger) -> EscalationStep {
    EscalationStep {
        trigger,
        notify: vec!["lead".into()],
        page: false,
    }
}

fn policy(which: u8) -> Policy {
    match which {
        0 => {
            let mut week = weekdays(&[OpenInterval::hm(9, 0, 17, 0)]);
            week[4] = vec![
                OpenInterval::hm(9, 0, 12, 30),
                OpenInterval::hm(13, 30, 17, 0),
            ];
            let holidays: BTreeSet<_> = ["2026-11-11"].iter().map(|x| x.parse().unwrap()).collect();
            Policy::new(
                Calendar::new(BERLIN, week, holidays).unwrap(),
                [Some(d("2h")), Some(d("4h")), Some(d("3d"))],
                vec![
                    step(EscalationTrigger::At(Percent::new(75).unwrap())),
                    step(EscalationTrigger::AfterDue(d("2h"))),
                ],
            )
            .with_update_every(Some(d("1d")))
        }
        _ => Policy::new(
            Calendar::always(BERLIN),
            [Some(d("30m")), Some(d("1h")), Some(d("8h"))],
            vec![
                step(EscalationTrigger::At(Percent::new(50).unwrap())),
                step(EscalationTrigger::At(Percent::new(100).unwrap())),
                step(EscalationTrigger::AfterDue(d("30m"))),
            ],
        )
        .with_update_every(Some(d("2h"))),
    }
}

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 6, 0, 0).unwrap()
}

const SPAN_MINUTES: i64 = 21 * 24 * 60;

fn kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        4 => Just(EventKind::Message { direction: Direction::Inbound, awaiting_client: false }),
        3 => any::<bool>().prop_map(|awaiting_client| EventKind::Message {
            direction: Direction::Outbound,
            awaiting_client,
        }),
        1 => any::<bool>().prop_map(|awaiting_client| EventKind::Message {
            direction: Direction::Auto,
            awaiting_client,
        }),
        1 => Just(EventKind::Message { direction: Direction::Internal, awaiting_client: false }),
        1 => Just(EventKind::Status(TicketStatus::Open)),
        1 => Just(EventKind::Status(TicketStatus::Pending)),
        1 => Just(EventKind::Status(TicketStatus::Solved)),
    ]
}

/// Minutes (so equal instants happen), seconds sometimes.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0..SPAN_MINUTES, prop_oneof![3 => Just(0i64), 1 => 0..60i64])
        .prop_map(|(m, s)| base() + TimeDelta::minutes(m) + TimeDelta::seconds(s))
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec(
        (instant(), kind()).prop_map(|(at, kind)| Event { at, kind }),
        0..14,
    )
    .prop_map(|mut v| {
        v.sort_by_key(|e| e.at);
        v
    })
}

fn now_after(events: &[Event], extra: i64) -> DateTime<Utc> {
    events.last().map_or(base(), |e| e.at) + TimeDelta::minutes(extra)
}

/// What changes observably: statuses, health, due actions.
fn observable(s: &ConversationState) -> (Vec<TimerStatus>, keepword::sla::Health, Vec<String>) {
    (
        s.timers.iter().map(|t| t.status).collect(),
        s.health,
        s.actions.iter().map(|a| a.key.clone()).collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn replaying_is_deterministic(which in 0u8..2, events in events(), extra in 0i64..5000) {
        let p = policy(which);
        let now = now_after(&events, extra);
        let a = evaluate(&p, &events, now);
        prop_assert_eq!(&a, &evaluate(&p, &events, now));
        // Events after `now` are ignored, whatever they are.
        let mut later = events.clone();
        later.push(Event { at: now + TimeDelta::seconds(1), kind: EventKind::Status(TicketStatus::Solved) });
        prop_assert_eq!(&a, &evaluate(&p, &later, now));
    }

    #[test]
    fn paused_and_stopped_timers_consume_nothing(
        which in 0u8..2, events in events(), extra in 0i64..3000, wait in 1i64..20_000,
    ) {
        let p = policy(which);
        let now = now_after(&events, extra);
        let a = evaluate(&p, &events, now);
        let b = evaluate(&p, &events, now + TimeDelta::minutes(wait));
        prop_assert_eq!(a.timers.len(), b.timers.len());
        for (x, y) in a.timers.iter().zip(&b.timers) {
            if x.status != TimerStatus::Running && x.status != TimerStatus::Breached {
                prop_assert_eq!(x, y);
            } else {
                prop_assert!(y.elapsed >= x.elapsed);
            }
        }
    }

    #[test]
    fn met_iff_stopped_at_or_before_due(which in 0u8..2, events in events(), extra in 0i64..3000) {
        let p = policy(which);
        let s = evaluate(&p, &events, now_after(&events, extra));
        for t in &s.timers {
            match t.status {
                TimerStatus::Met => {
                    let stopped = t.stopped_at.unwrap();
                    if let Some(due) = t.due_at {
                        prop_assert!(stopped <= due, "{:?}", t);
                    }
                    prop_assert!(t.elapsed.num_seconds() <= window_seconds(&p, t), "{:?}", t);
                }
                TimerStatus::Missed => {
                    prop_assert!(t.due_at.unwrap() < t.stopped_at.unwrap(), "{:?}", t);
                    let breach = format!("{}/{}/breach", t.timer, t.seq);
                    prop_assert!(s.actions.iter().any(|a| a.key == breach), "{:?}", t);
                }
                TimerStatus::Paused => prop_assert!(t.due_at.is_none() && t.stopped_at.is_none()),
                TimerStatus::Running | TimerStatus::Breached => prop_assert!(t.due_at.is_some()),
            }
        }
    }

    #[test]
    fn breached_exactly_when_now_reaches_the_due(which in 0u8..2, events in events(), extra in 0i64..3000) {
        let p = policy(which);
        let now = now_after(&events, extra);
        let s = evaluate(&p, &events, now);
        for (i, t) in s.timers.iter().enumerate() {
            let Some(due) = t.due_at else { continue };
            if t.status != TimerStatus::Running {
                continue;
            }
            prop_assert!(due > now);
            let before = evaluate(&p, &events, due - TimeDelta::seconds(1));
            prop_assert_eq!(before.timers[i].status, TimerStatus::Running);
            let at = evaluate(&p, &events, due);
            prop_assert_eq!(at.timers[i].status, TimerStatus::Breached);
            prop_assert_eq!(at.health, keepword::sla::Health::Breached);
            let breach = format!("{}/{}/breach", t.timer, t.seq);
            prop_assert!(!before.actions.iter().any(|a| a.key == breach));
            prop_assert!(at.actions.iter().any(|a| a.key == breach && a.at == due));
        }
    }

    #[test]
    fn auto_and_internal_messages_change_nothing(
        which in 0u8..2, events in events(), extra in 0i64..3000,
        at in instant(), internal in any::<bool>(), awaiting_client in any::<bool>(), pos in any::<prop::sample::Index>(),
    ) {
        let p = policy(which);
        let now = now_after(&events, extra);
        let direction = if internal { Direction::Internal } else { Direction::Auto };
        let mut more = events.clone();
        // Anywhere in the slice, at any instant: the engine sorts.
        more.insert(pos.index(events.len() + 1), Event { at, kind: EventKind::Message { direction, awaiting_client } });
        prop_assert_eq!(evaluate(&p, &events, now), evaluate(&p, &more, now));
    }

    #[test]
    fn next_change_is_later_and_changes_something(which in 0u8..2, events in events(), extra in 0i64..3000) {
        let p = policy(which);
        let now = now_after(&events, extra);
        let s = evaluate(&p, &events, now);
        if let Some(next) = s.next_change {
            prop_assert!(next > now);
            let just_before = evaluate(&p, &events, next - TimeDelta::seconds(1));
            let then = evaluate(&p, &events, next);
            prop_assert_ne!(observable(&s), observable(&then));
            // Nothing changes earlier: the scheduler may sleep until then.
            prop_assert_eq!(observable(&s), observable(&just_before));
        } else {
            // Nothing pending: much later, the same.
            let later = evaluate(&p, &events, now + TimeDelta::days(60));
            prop_assert_eq!(observable(&s), observable(&later));
        }
        // Every due action lies at or before now, and keys are unique.
        let mut keys: Vec<_> = s.actions.iter().map(|a| a.key.clone()).collect();
        prop_assert!(s.actions.iter().all(|a| a.at <= now));
        keys.sort();
        keys.dedup();
        prop_assert_eq!(keys.len(), s.actions.len());
    }
}

/// The event instants as the engine counts them (whole seconds, rounded up).
fn ceil(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    let whole = t.trunc_subsecs(0);
    if whole == t {
        t
    } else {
        whole + TimeDelta::seconds(1)
    }
}

fn updates(s: &ConversationState) -> Vec<&keepword::sla::TimerState> {
    s.timers
        .iter()
        .filter(|t| t.timer == Timer::PeriodicUpdate)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// The update rhythm never lapses and never runs when nothing is owed:
    /// open → exactly one cycle counts (running or breached); waiting on
    /// the client → none counts and the last is paused; solved → all
    /// stopped. Cycles are numbered 0, 1, 2… without gaps.
    #[test]
    fn one_update_cycle_counts_exactly_while_the_team_owes_the_move(
        which in 0u8..2, events in events(), extra in 0i64..5000,
    ) {
        let p = policy(which);
        let s = evaluate(&p, &events, now_after(&events, extra));
        let u = updates(&s);
        if s.opened_at.is_none() {
            prop_assert!(u.is_empty());
            return Ok(());
        }
        prop_assert!(!u.is_empty());
        for (i, t) in u.iter().enumerate() {
            prop_assert_eq!(t.seq as usize, i);
        }
        let live = u.iter().filter(|t| matches!(t.status, TimerStatus::Running | TimerStatus::Breached)).count();
        let paused = u.iter().filter(|t| t.status == TimerStatus::Paused).count();
        match s.status {
            TicketStatus::Open => prop_assert_eq!((live, paused), (1, 0), "{:#?}", u),
            TicketStatus::Pending => prop_assert_eq!((live, paused), (0, 1), "{:#?}", u),
            TicketStatus::Solved => prop_assert_eq!((live, paused), (0, 0), "{:#?}", u),
        }
        // Only the last cycle may still count.
        for t in &u[..u.len() - 1] {
            prop_assert!(matches!(t.status, TimerStatus::Met | TimerStatus::Missed), "{:?}", t);
        }
    }

    /// Every outbound message to an open conversation re-arms the rhythm:
    /// a cycle starts at its instant, and the cycle before it stops there.
    #[test]
    fn every_outbound_message_rearms_the_update(
        which in 0u8..2, events in events(), extra in 0i64..5000,
    ) {
        let p = policy(which);
        let now = now_after(&events, extra);
        let s = evaluate(&p, &events, now);
        let u = updates(&s);
        for (i, e) in events.iter().enumerate() {
            let EventKind::Message { direction: Direction::Outbound, .. } = e.kind else { continue };
            // Where the conversation stood just before this message.
            let before = evaluate(&p, &events[..i], ceil(e.at));
            if before.opened_at.is_none() || before.status == TicketStatus::Solved {
                continue;
            }
            let at = ceil(e.at);
            prop_assert!(u.iter().any(|t| t.started_at == at), "no cycle at {} in {:#?}", at, u);
            prop_assert!(u.iter().any(|t| t.stopped_at == Some(at)), "no cycle stops at {} in {:#?}", at, u);
        }
    }
}

fn window_seconds(p: &Policy, t: &keepword::sla::TimerState) -> i64 {
    // Days windows: W is measured from the start on the calendar.
    let due = p.calendar().add(t.started_at, t.window).unwrap();
    p.calendar()
        .between(t.started_at, due)
        .unwrap()
        .num_seconds()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// "Why is it due then": the spans the explanation counts add up to the
    /// window exactly (for a timer with a due), and to what the timer
    /// consumed so far (for one without); counted and paused spans never
    /// overlap.
    #[test]
    fn explained_spans_add_up_to_the_window(which in 0u8..2, events in events(), extra in 0i64..3000) {
        let p = policy(which);
        let now = now_after(&events, extra);
        let s = evaluate(&p, &events, now);
        for t in &s.timers {
            let (until, expected) = match (t.status, t.due_at) {
                (TimerStatus::Running | TimerStatus::Breached | TimerStatus::Missed, Some(due)) => {
                    (due, window_seconds(&p, t))
                }
                (TimerStatus::Met, _) => (t.stopped_at.unwrap(), t.elapsed.num_seconds()),
                _ => (now, t.elapsed.num_seconds()),
            };
            let e = keepword::calendar::explain(p.calendar(), &t.segments, until);
            prop_assert_eq!(e.counted.num_seconds(), expected, "{:?} {:?}", t, e);
            let summed: i64 = e.days.iter().flat_map(|d| &d.counted).map(|c| c.length().num_seconds()).sum();
            prop_assert_eq!(summed, expected);
            let mut spans: Vec<_> = e.days.iter().flat_map(|d| d.counted.iter().chain(&d.paused)).collect();
            spans.sort_by_key(|x| x.start);
            for w in spans.windows(2) {
                prop_assert!(w[0].end <= w[1].start, "overlap {:?}", w);
            }
        }
    }
}
