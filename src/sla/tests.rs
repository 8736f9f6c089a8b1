//! The rules of the module doc, one by one, on a Berlin office calendar
//! (Mon–Thu 09:00–17:00, Fri 09:00–12:30 + 13:30–17:00) and a 24x7 one.
//! 2026-11-02 is a Monday; Berlin is +01:00 in November.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

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

fn berlin() -> Calendar {
    let mut week = weekdays(&[OpenInterval::hm(9, 0, 17, 0)]);
    week[4] = vec![
        OpenInterval::hm(9, 0, 12, 30),
        OpenInterval::hm(13, 30, 17, 0),
    ];
    let holidays: BTreeSet<NaiveDate> = ["2026-12-24", "2026-12-25", "2026-12-26"]
        .iter()
        .map(|d| d.parse().unwrap())
        .collect();
    Calendar::new(BERLIN, week, holidays).unwrap()
}

fn d(s: &str) -> BusinessDuration {
    s.parse().unwrap()
}

fn at(p: u8, notify: &str) -> EscalationStep {
    EscalationStep {
        trigger: EscalationTrigger::At(Percent::new(p).unwrap()),
        notify: vec![notify.to_string()],
        page: false,
    }
}

fn after(due: &str, notify: &str) -> EscalationStep {
    EscalationStep {
        trigger: EscalationTrigger::AfterDue(d(due)),
        notify: vec![notify.to_string()],
        page: false,
    }
}

/// question-like: 4h / 8h / 5d, warn at 75%.
fn office() -> Policy {
    Policy::new(
        berlin(),
        [Some(d("4h")), Some(d("8h")), Some(d("5d"))],
        vec![at(75, "lead")],
    )
}

fn urgent() -> Policy {
    Policy::new(
        Calendar::always(BERLIN),
        [Some(d("30m")), Some(d("1h")), Some(d("8h"))],
        vec![at(50, "oncall"), at(100, "lead"), after("30m", "head")],
    )
}

fn inbound(s: &str) -> Event {
    Event::message(t(s), Direction::Inbound)
}
fn outbound(s: &str) -> Event {
    Event::message(t(s), Direction::Outbound)
}
fn question(s: &str) -> Event {
    Event::question(t(s))
}
fn status(s: &str, st: TicketStatus) -> Event {
    Event::status(t(s), st)
}

fn timer(state: &ConversationState, timer: Timer, seq: u32) -> &TimerState {
    state
        .timers
        .iter()
        .find(|x| x.timer == timer && x.seq == seq)
        .unwrap_or_else(|| panic!("no {timer}/{seq} in {state:#?}"))
}

fn keys(state: &ConversationState) -> Vec<&str> {
    state.actions.iter().map(|a| a.key.as_str()).collect()
}

#[test]
fn names_round_trip() {
    for x in [
        Direction::Inbound,
        Direction::Outbound,
        Direction::Internal,
        Direction::Auto,
    ] {
        assert_eq!(x.as_str().parse::<Direction>(), Ok(x));
    }
    for x in [
        TicketStatus::Open,
        TicketStatus::Pending,
        TicketStatus::Solved,
    ] {
        assert_eq!(x.as_str().parse::<TicketStatus>(), Ok(x));
    }
    let statuses = [
        (TimerStatus::Running, "running"),
        (TimerStatus::Paused, "paused"),
        (TimerStatus::Met, "met"),
        (TimerStatus::Breached, "breached"),
        (TimerStatus::Missed, "missed"),
    ];
    for (s, name) in statuses {
        assert_eq!(s.as_str(), name);
    }
    assert_eq!(Health::AtRisk.as_str(), "at_risk");
    assert!("Inbound".parse::<Direction>().is_err());
}

#[test]
fn opens_on_first_inbound_only() {
    let events = [
        outbound("2026-11-02 09:30"),
        status("2026-11-02 09:40", TicketStatus::Pending),
        Event::message(t("2026-11-02 09:50"), Direction::Auto),
    ];
    let s = evaluate(&office(), &events, t("2026-11-09 10:00"));
    assert_eq!(s.opened_at, None);
    assert!(s.timers.is_empty() && s.actions.is_empty() && s.next_change.is_none());

    let mut events = events.to_vec();
    events.push(inbound("2026-11-02 10:00"));
    let s = evaluate(&office(), &events, t("2026-11-02 10:30"));
    assert_eq!(s.opened_at, Some(t("2026-11-02 10:00")));
    assert_eq!(s.status, TicketStatus::Open);
    let timers: Vec<_> = s.timers.iter().map(|x| (x.timer, x.seq)).collect();
    assert_eq!(timers, [(Timer::FirstResponse, 0), (Timer::Resolution, 0)]);
    let fr = timer(&s, Timer::FirstResponse, 0);
    assert_eq!(fr.status, TimerStatus::Running);
    assert_eq!(fr.due_at, Some(t("2026-11-02 14:00")));
    assert_eq!(fr.warn_at, Some(t("2026-11-02 13:00")));
    assert_eq!(fr.elapsed, TimeDelta::minutes(30));
}

#[test]
fn first_response_met_or_missed_at_first_outbound() {
    let open = inbound("2026-11-02 15:00"); // 2h today, 2h tomorrow: due Tue 11:00
    let s = evaluate(
        &office(),
        &[open, outbound("2026-11-03 11:00")],
        t("2026-11-04 12:00"),
    );
    let fr = timer(&s, Timer::FirstResponse, 0);
    assert_eq!(fr.status, TimerStatus::Met, "stopping at the due is met");
    assert_eq!(fr.due_at, Some(t("2026-11-03 11:00")));
    assert_eq!(fr.stopped_at, Some(t("2026-11-03 11:00")));
    assert!(!keys(&s).contains(&"first_response/0/breach"));

    let late = [
        open,
        outbound("2026-11-03 11:00:01"),
        outbound("2026-11-03 12:00"),
    ];
    let s = evaluate(&office(), &late, t("2026-11-04 12:00"));
    let fr = timer(&s, Timer::FirstResponse, 0);
    assert_eq!(fr.status, TimerStatus::Missed);
    assert_eq!(fr.stopped_at, Some(t("2026-11-03 11:00:01")));
    assert_eq!(fr.elapsed, TimeDelta::seconds(4 * 3600 + 1));
    assert!(keys(&s).contains(&"first_response/0/breach"));
}

#[test]
fn breached_exactly_at_the_due_and_health_moves() {
    let events = [inbound("2026-11-06 11:00")]; // Friday: 1.5h + 2.5h after lunch → 16:00
    let due = t("2026-11-06 16:00");
    let warn = t("2026-11-06 15:00");
    let s = evaluate(&office(), &events, warn - TimeDelta::seconds(1));
    assert_eq!(s.health, Health::OnTrack);
    assert_eq!(s.next_change, Some(warn));
    let s = evaluate(&office(), &events, warn);
    assert_eq!(s.health, Health::AtRisk);
    assert_eq!(keys(&s), ["first_response/0/at:75%"]);
    assert_eq!(s.next_change, Some(due));
    let s = evaluate(&office(), &events, due - TimeDelta::seconds(1));
    assert_eq!(
        timer(&s, Timer::FirstResponse, 0).status,
        TimerStatus::Running
    );
    let s = evaluate(&office(), &events, due);
    assert_eq!(
        timer(&s, Timer::FirstResponse, 0).status,
        TimerStatus::Breached
    );
    assert_eq!(s.health, Health::Breached);
    let breach = s
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::Breach)
        .unwrap();
    assert_eq!(
        (breach.key.as_str(), breach.at),
        ("first_response/0/breach", due)
    );
}

#[test]
fn next_response_cycles() {
    let events = [
        inbound("2026-11-02 09:00"),
        outbound("2026-11-02 10:00"),
        inbound("2026-11-02 11:00"),
        inbound("2026-11-02 12:00"), // same cycle
        outbound("2026-11-02 13:00"),
        inbound("2026-11-02 16:00"),
    ];
    let s = evaluate(&office(), &events, t("2026-11-03 09:30"));
    let n0 = timer(&s, Timer::NextResponse, 0);
    assert_eq!(n0.started_at, t("2026-11-02 11:00"));
    assert_eq!(n0.status, TimerStatus::Met);
    assert_eq!(n0.stopped_at, Some(t("2026-11-02 13:00")));
    let n1 = timer(&s, Timer::NextResponse, 1);
    assert_eq!(n1.status, TimerStatus::Running);
    assert_eq!(n1.due_at, Some(t("2026-11-03 16:00")));
    assert_eq!(n1.elapsed, TimeDelta::minutes(90));
    assert_eq!(s.timers.len(), 4);
}

#[test]
fn resolution_pauses_while_waiting_on_the_client() {
    let policy = Policy::new(berlin(), [Some(d("4h")), None, Some(d("8h"))], vec![]);
    let events = [
        inbound("2026-11-02 09:00"),
        question("2026-11-02 11:00"), // 2h used; pending
        inbound("2026-11-03 09:00"),  // resumes
        status("2026-11-03 10:00", TicketStatus::Pending), // 3h used
        status("2026-11-03 14:00", TicketStatus::Open),
    ];
    let paused_now = t("2026-11-02 16:00");
    let s = evaluate(&policy, &events, paused_now);
    assert_eq!(s.status, TicketStatus::Pending);
    let r = timer(&s, Timer::Resolution, 0);
    assert_eq!(r.status, TimerStatus::Paused);
    assert_eq!(r.due_at, None);
    assert_eq!(r.elapsed, TimeDelta::hours(2));
    // A paused timer does not wake the scheduler.
    assert_eq!(s.next_change, None);

    let s = evaluate(&policy, &events, t("2026-11-03 15:00"));
    assert_eq!(s.status, TicketStatus::Open);
    let r = timer(&s, Timer::Resolution, 0);
    assert_eq!(r.status, TimerStatus::Running);
    assert_eq!(r.elapsed, TimeDelta::hours(4));
    // 5h left from Tue 14:00: 3h Tue, 2h Wed → Wed 11:00.
    assert_eq!(r.due_at, Some(t("2026-11-04 11:00")));
    // warn at 75% = 6h: 3h more from Tue 14:00, at the close (not Wed 09:00).
    assert_eq!(r.warn_at, Some(t("2026-11-03 17:00")));
    // The outbound question also answered the first response.
    assert_eq!(timer(&s, Timer::FirstResponse, 0).status, TimerStatus::Met);
    // No next_response window: not tracked.
    assert!(s.timers.iter().all(|x| x.timer != Timer::NextResponse));
}

#[test]
fn solving_stops_everything_and_an_inbound_reopens() {
    let events = [
        inbound("2026-11-02 09:00"),
        status("2026-11-02 15:00", TicketStatus::Solved), // fr past due at 13:00
    ];
    let s = evaluate(&office(), &events, t("2026-11-03 09:00"));
    assert_eq!(s.status, TicketStatus::Solved);
    assert_eq!(s.health, Health::OnTrack);
    assert_eq!(
        timer(&s, Timer::FirstResponse, 0).status,
        TimerStatus::Missed
    );
    let r = timer(&s, Timer::Resolution, 0);
    assert_eq!(r.status, TimerStatus::Met);
    assert_eq!(r.due_at, Some(t("2026-11-06 17:00")), "5d from Mon 09:00");
    assert_eq!(s.next_change, None);

    let mut events = events.to_vec();
    events.push(inbound("2026-11-03 10:00"));
    let s = evaluate(&office(), &events, t("2026-11-03 11:00"));
    assert_eq!(s.status, TicketStatus::Open);
    let r = timer(&s, Timer::Resolution, 0);
    assert_eq!(r.status, TimerStatus::Running);
    assert_eq!(r.stopped_at, None);
    assert_eq!(r.elapsed, TimeDelta::hours(7));
    let n = timer(&s, Timer::NextResponse, 0);
    assert_eq!(
        (n.status, n.started_at),
        (TimerStatus::Running, t("2026-11-03 10:00"))
    );
    assert_eq!(s.health, Health::OnTrack);

    // Solving also stops a running next_response, met before its due.
    events.push(status("2026-11-03 12:00", TicketStatus::Solved));
    let s = evaluate(&office(), &events, t("2026-11-03 12:00"));
    assert_eq!(timer(&s, Timer::NextResponse, 0).status, TimerStatus::Met);
}

#[test]
fn auto_and_internal_never_move_a_timer() {
    let base = [
        inbound("2026-11-02 09:00"),
        outbound("2026-11-02 10:00"),
        inbound("2026-11-02 11:00"),
    ];
    let now = t("2026-11-04 09:00");
    let plain = evaluate(&office(), &base, now);
    for direction in [Direction::Auto, Direction::Internal] {
        for when in [
            "2026-11-02 08:00",
            "2026-11-02 09:30",
            "2026-11-02 10:30",
            "2026-11-02 12:00",
        ] {
            for awaiting_client in [false, true] {
                let mut events = base.to_vec();
                events.push(Event {
                    at: t(when),
                    kind: EventKind::Message {
                        direction,
                        awaiting_client,
                    },
                });
                assert_eq!(
                    evaluate(&office(), &events, now),
                    plain,
                    "{direction} at {when}"
                );
            }
        }
    }
}

#[test]
fn days_window_uses_the_business_day_rule_then_seconds_after_a_pause() {
    let policy = Policy::new(berlin(), [Some(d("4h")), None, Some(d("1d"))], vec![]);
    // Thursday 15:00 + 1d: p = 6h into Friday's split day = Friday 16:00.
    let s = evaluate(
        &policy,
        &[inbound("2026-11-05 15:00")],
        t("2026-11-05 15:00"),
    );
    assert_eq!(
        timer(&s, Timer::Resolution, 0).due_at,
        Some(t("2026-11-06 16:00"))
    );
    // W = 2h Thu + 6h Fri = 8h. Pause Thu 16:00 (1h used), resume Mon 09:00:
    // 7h left → Mon 16:00.
    let events = [
        inbound("2026-11-05 15:00"),
        status("2026-11-05 16:00", TicketStatus::Pending),
        status("2026-11-09 09:00", TicketStatus::Open),
    ];
    let s = evaluate(&policy, &events, t("2026-11-09 09:00"));
    let r = timer(&s, Timer::Resolution, 0);
    assert_eq!(r.due_at, Some(t("2026-11-09 16:00")));
    assert_eq!(r.window, d("1d"));
}

#[test]
fn escalation_steps_and_keys() {
    let events = [inbound("2026-11-02 22:00")];
    let s = evaluate(&urgent(), &events, t("2026-11-02 23:00"));
    let fired: Vec<_> = s.actions.iter().map(|a| (a.key.as_str(), a.at)).collect();
    assert_eq!(
        fired,
        [
            ("first_response/0/at:50%", t("2026-11-02 22:15")),
            ("first_response/0/at:100%", t("2026-11-02 22:30")),
            ("first_response/0/breach", t("2026-11-02 22:30")),
            ("first_response/0/after_due:30m", t("2026-11-02 23:00")),
        ]
    );
    let step = &s.actions[3];
    assert_eq!(
        step.kind,
        ActionKind::Step {
            index: 2,
            notify: vec!["head".into()]
        }
    );
    // resolution 8h: 50% at 02:00 next day.
    assert_eq!(s.next_change, Some(t("2026-11-03 02:00")));

    // A step whose instant falls while the timer is paused or stopped does not apply.
    let events = [
        inbound("2026-11-02 22:00"),
        outbound("2026-11-02 22:20"),
        status("2026-11-02 22:20", TicketStatus::Pending),
        inbound("2026-11-03 10:00"),
        status("2026-11-03 10:01", TicketStatus::Solved),
    ];
    let s = evaluate(&urgent(), &events, t("2026-11-05 00:00"));
    assert_eq!(keys(&s), ["first_response/0/at:50%"]);
}

#[test]
fn at_steps_move_with_pauses() {
    let policy = Policy::new(berlin(), [None, None, Some(d("8h"))], vec![at(50, "lead")]);
    let events = [
        inbound("2026-11-02 09:00"),
        question("2026-11-02 11:00"),
        inbound("2026-11-02 15:00"),
    ];
    let s = evaluate(&policy, &events, t("2026-11-02 17:00"));
    assert_eq!(
        s.actions[0].at,
        t("2026-11-02 17:00"),
        "4h of running time: 2h + 2h"
    );
    assert_eq!(s.actions[0].key, "resolution/0/at:50%");
}

#[test]
fn duplicate_triggers_get_distinct_keys() {
    let policy = Policy::new(
        Calendar::always(BERLIN),
        [Some(d("1h")), None, None],
        vec![at(50, "a"), at(50, "b")],
    );
    let s = evaluate(
        &policy,
        &[inbound("2026-11-02 10:00")],
        t("2026-11-02 10:30"),
    );
    assert_eq!(
        keys(&s),
        ["first_response/0/at:50%", "first_response/0/at:50%#1"]
    );
}

#[test]
fn unsorted_input_and_future_events() {
    let events = [
        outbound("2026-11-02 10:00"),
        inbound("2026-11-02 09:00"),
        status("2026-11-02 12:00", TicketStatus::Solved),
    ];
    let s = evaluate(&office(), &events, t("2026-11-02 11:00"));
    assert_eq!(s.status, TicketStatus::Open, "the solve lies after now");
    assert_eq!(timer(&s, Timer::FirstResponse, 0).status, TimerStatus::Met);
    assert_eq!(timer(&s, Timer::Resolution, 0).status, TimerStatus::Running);
}

#[test]
fn always_calendar_runs_through_the_night_and_dst() {
    // Berlin falls back 2026-10-25 03:00 → 02:00: 8h from 23:00 (UTC+2) is
    // 06:00 local (UTC+1).
    let s = evaluate(
        &urgent(),
        &[inbound("2026-10-24 23:00")],
        t("2026-10-24 23:00"),
    );
    assert_eq!(
        timer(&s, Timer::Resolution, 0).due_at,
        Some(t("2026-10-25 06:00"))
    );
}

#[test]
fn policy_from_the_shipped_contract() {
    let c = crate::contract::parse(
        include_str!("../../config/contract.toml"),
        "config/contract.toml",
    )
    .unwrap();
    let p = Policy::from_contract(&c, "question", Some("acme")).unwrap();
    assert_eq!(p.window(Timer::FirstResponse), Some(d("2h")));
    assert_eq!(p.window(Timer::Resolution), Some(d("5d")));
    assert_eq!(p.warn_percent(), 75);
    let p = Policy::from_contract(&c, "urgent", None).unwrap();
    assert_eq!(p.warn_percent(), 50);
    assert!(p.calendar().is_always());
    assert!(Policy::from_contract(&c, "nope", None).is_none());
}

mod classification {
    use super::*;
    use crate::contract::Contract;

    fn shipped() -> Contract {
        crate::contract::parse(
            include_str!("../../config/contract.toml"),
            "config/contract.toml",
        )
        .unwrap()
    }

    fn input<'a>(channel: &'a str, subject: &'a str, body: &'a str) -> ClassifyInput<'a> {
        ClassifyInput {
            channel,
            subject,
            body,
            priority: None,
            recipients: &[],
            client_id: None,
        }
    }

    fn rule(c: &Contract, i: &ClassifyInput) -> (String, String, bool) {
        let x = classify(c, i);
        (x.request_type, x.rule, x.channel_mismatch)
    }

    #[test]
    fn keywords_in_subject_then_body_whole_words() {
        let c = shipped();
        assert_eq!(
            rule(&c, &input("email", "Outage on the shop!", "")),
            (
                "urgent".into(),
                "urgent: keyword `outage` in subject".into(),
                true
            )
        );
        assert_eq!(
            rule(
                &c,
                &input("tickets", "hello", "we have a Security\n incident")
            ),
            (
                "urgent".into(),
                "urgent: keyword `security incident` in body".into(),
                false
            )
        );
        // "download" and "errors" are not the words "down" and "error".
        assert_eq!(
            rule(&c, &input("email", "Download link", "no errors")),
            ("question".into(), "question: default".into(), false)
        );
        // Contract order: urgent's keywords win over bug's.
        assert_eq!(
            rule(&c, &input("email", "bug", "site is down")).1,
            "urgent: keyword `down` in body"
        );
        // Subject before body within a type.
        assert_eq!(
            rule(&c, &input("email", "broken form", "bug")).1,
            "bug: keyword `broken` in subject"
        );
    }

    #[test]
    fn priority_first_and_case_insensitive() {
        let c = shipped();
        let mut i = input("tickets", "bug", "");
        i.priority = Some("URGENT");
        assert_eq!(rule(&c, &i).1, "urgent: priority `urgent`");
        i.priority = Some("High");
        assert_eq!(rule(&c, &i).1, "bug: priority `high`");
    }

    #[test]
    fn recipients_and_clients() {
        let source = r#"
[contract]
name = "t"
effective = "2026-11-01"
timezone = "Europe/Berlin"

[calendars.always]
always = true

[channels.email]
kind = "email"
address = "support@example.com"

[[request_types]]
id = "vip"
name = "VIP"
definition = "d"
channels = ["email"]
match = { recipients = ["VIP@example.com"], clients = ["acme"] }
calendar = "always"
first_response = "1h"

[[request_types]]
id = "other"
name = "Other"
definition = "d"
default = true
channels = ["email"]
calendar = "always"
first_response = "4h"

[contacts]
lead = { email = "lead@example.com" }

[[clients]]
id = "acme"
name = "ACME"
domains = ["acme.com"]
"#;
        let c = crate::contract::parse(source, "t.toml").unwrap();
        let to = vec![
            "Support <support@example.com>".to_string(),
            "Team <vip@Example.com>".into(),
        ];
        let mut i = input("email", "hi", "");
        i.recipients = &to;
        assert_eq!(rule(&c, &i).1, "vip: recipient `vip@example.com`");
        let mut i = input("email", "hi", "");
        i.client_id = Some("acme");
        assert_eq!(rule(&c, &i).1, "vip: client `acme`");
        i.client_id = Some("globex");
        assert_eq!(
            rule(&c, &i),
            ("other".into(), "other: default".into(), false)
        );
        assert!(rule(&c, &input("pager", "", "")).2);
    }
}

#[test]
fn breach_contacts_follow_the_full_step_or_everyone_named() {
    // An `at = 100%` step fires at the due: it says who hears of the breach.
    let with_full = [at(50, "oncall"), at(100, "lead"), after("30m", "head")];
    assert!(breach_contacts(&with_full).is_empty());
    // Without one, everyone the escalation names, once each, in order.
    let without = [at(50, "oncall"), after("30m", "head"), at(75, "oncall")];
    assert_eq!(breach_contacts(&without), vec!["head", "oncall"]);
    assert!(breach_contacts(&[]).is_empty());
}

#[test]
fn due_actions_carry_their_step_label_and_recipients() {
    let state = evaluate(
        &urgent(),
        &[inbound("2026-11-30 10:00")],
        t("2026-11-30 12:00"),
    );
    for a in &state.actions {
        assert!(
            a.key.ends_with(&a.step.to_string()),
            "{} / {}",
            a.key,
            a.step
        );
        match a.kind {
            ActionKind::Breach => {
                assert_eq!(a.step, ActionStep::Breach);
                assert_eq!(a.notify, breach_contacts(urgent().escalation()));
            }
            ActionKind::Step { index, .. } => {
                assert_eq!(a.notify, urgent().escalation()[index].notify)
            }
        }
    }
    assert!(state.actions.iter().any(|a| a.kind == ActionKind::Breach));
}

#[test]
fn periodic_updates_rearm_pause_stop_and_restart() {
    let policy = office().with_update_every(Some(d("1d")));
    let mut events = vec![inbound("2026-11-02 09:00")];
    let s = evaluate(&policy, &events, t("2026-11-02 10:00"));
    let u = timer(&s, Timer::PeriodicUpdate, 0);
    assert_eq!(u.status, TimerStatus::Running);
    assert_eq!(u.due_at, Some(t("2026-11-02 17:00")), "1d from Mon 09:00");

    // Every outbound message is an update: the cycle is met and the next starts.
    events.push(outbound("2026-11-02 15:00"));
    let s = evaluate(&policy, &events, t("2026-11-02 16:00"));
    assert_eq!(timer(&s, Timer::PeriodicUpdate, 0).status, TimerStatus::Met);
    let u = timer(&s, Timer::PeriodicUpdate, 1);
    assert_eq!(
        (u.status, u.started_at, u.due_at),
        (
            TimerStatus::Running,
            t("2026-11-02 15:00"),
            Some(t("2026-11-03 15:00"))
        )
    );

    // A question to the client starts the next cycle paused.
    events.push(question("2026-11-03 10:00"));
    let s = evaluate(&policy, &events, t("2026-11-03 16:00"));
    assert_eq!(timer(&s, Timer::PeriodicUpdate, 1).status, TimerStatus::Met);
    let u = timer(&s, Timer::PeriodicUpdate, 2);
    assert_eq!((u.status, u.due_at), (TimerStatus::Paused, None));
    assert_eq!(u.elapsed, TimeDelta::zero());
    assert_eq!(s.next_change, None, "nothing is owed while the client is");

    // The client answers Wed 11:00: 8 business hours from then, Thu 11:00.
    events.push(inbound("2026-11-04 11:00"));
    let s = evaluate(&policy, &events, t("2026-11-05 12:00"));
    let u = timer(&s, Timer::PeriodicUpdate, 2);
    assert_eq!(
        (u.status, u.due_at),
        (TimerStatus::Breached, Some(t("2026-11-05 11:00")))
    );
    assert_eq!(s.health, Health::Breached);
    let k = keys(&s);
    assert!(k.contains(&"periodic_update/2/at:75%"), "{k:?}");
    assert!(k.contains(&"periodic_update/2/breach"), "{k:?}");
    let step = s
        .actions
        .iter()
        .find(|a| a.key == "periodic_update/2/at:75%")
        .unwrap();
    assert_eq!(step.at, t("2026-11-04 17:00"), "6 of 8 hours");

    // Solving stops it (late: missed); a reopen starts a new cycle.
    events.push(status("2026-11-05 13:00", TicketStatus::Solved));
    let s = evaluate(&policy, &events, t("2026-11-05 14:00"));
    assert_eq!(
        timer(&s, Timer::PeriodicUpdate, 2).status,
        TimerStatus::Missed
    );
    assert!(
        s.timers
            .iter()
            .all(|x| x.timer != Timer::PeriodicUpdate || x.seq <= 2)
    );
    events.push(inbound("2026-11-06 09:00"));
    let s = evaluate(&policy, &events, t("2026-11-06 10:00"));
    let u = timer(&s, Timer::PeriodicUpdate, 3);
    assert_eq!(
        (u.status, u.started_at),
        (TimerStatus::Running, t("2026-11-06 09:00"))
    );
}

#[test]
fn no_update_every_no_periodic_timer() {
    let s = evaluate(
        &office(),
        &[inbound("2026-11-02 09:00"), outbound("2026-11-02 10:00")],
        t("2026-11-02 11:00"),
    );
    assert!(s.timers.iter().all(|x| x.timer != Timer::PeriodicUpdate));
}
