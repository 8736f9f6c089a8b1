//! A conversation under the shipped contract, with a clock the test moves:
//! opened the day before Christmas, waiting on the client over New Year and
//! into March, answered again across Easter and the 2027-03-28 change to
//! summer time, then solved. Every due, status, health and due action is
//! worked out by hand from config/contract.toml.

use chrono::{DateTime, NaiveDateTime, TimeDelta, TimeZone, Utc};
use keepword::contract::Timer;
use keepword::sla::{
    ConversationState, Direction, Event, Health, Policy, TicketStatus, TimerState, TimerStatus,
    evaluate,
};

const BERLIN: chrono_tz::Tz = chrono_tz::Europe::Berlin;

fn berlin(s: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    BERLIN
        .from_local_datetime(&naive)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The conversation as the service would hold it: events so far and a clock.
struct Conversation {
    policy: Policy,
    events: Vec<Event>,
    now: DateTime<Utc>,
}

impl Conversation {
    fn at(&mut self, now: DateTime<Utc>) -> ConversationState {
        assert!(now >= self.now, "the clock only moves forward");
        self.now = now;
        evaluate(&self.policy, &self.events, now)
    }
    fn receive(&mut self, event: Event) -> ConversationState {
        self.events.push(event);
        self.at(event.at)
    }
}

fn timer(s: &ConversationState, timer: Timer, seq: u32) -> &TimerState {
    s.timers
        .iter()
        .find(|t| t.timer == timer && t.seq == seq)
        .unwrap_or_else(|| panic!("no {timer}/{seq}"))
}

fn keys(s: &ConversationState) -> Vec<&str> {
    s.actions.iter().map(|a| a.key.as_str()).collect()
}

fn contract() -> keepword::contract::Contract {
    keepword::contract::parse(
        include_str!("../../config/contract.toml"),
        "config/contract.toml",
    )
    .unwrap()
}

#[test]
fn a_question_across_christmas_new_year_easter_and_summer_time() {
    // question for initech (no overrides): 4h / 8h / 5d on `business`, lead at 75%.
    let mut c = Conversation {
        policy: Policy::from_contract(&contract(), "question", Some("initech")).unwrap(),
        events: Vec::new(),
        now: berlin("2026-12-23 15:00"),
    };

    // Wednesday 23 December, 15:00: the client writes. 24–26 are holidays,
    // 27 a Sunday: first_response = 2h today + 2h on Monday 28 → 11:00.
    // resolution 5d: p = 6h, the 5th open day after the 23rd is Tue 5 Jan
    // (28, 29, 30, then 31 and 1 are holidays, 4, 5) → 15:00; W = 40h.
    let s = c.receive(Event::message(
        berlin("2026-12-23 15:00"),
        Direction::Inbound,
    ));
    assert_eq!(s.opened_at, Some(berlin("2026-12-23 15:00")));
    let fr = timer(&s, Timer::FirstResponse, 0);
    assert_eq!(fr.due_at, Some(berlin("2026-12-28 11:00")));
    assert_eq!(fr.warn_at, Some(berlin("2026-12-28 10:00")));
    let r = timer(&s, Timer::Resolution, 0);
    assert_eq!(r.due_at, Some(berlin("2027-01-05 15:00")));
    // 30h: 2 + 8 + 8 + 8 + 4 on Monday 4 January.
    assert_eq!(r.warn_at, Some(berlin("2027-01-04 13:00")));
    assert_eq!((s.health, s.actions.len()), (Health::OnTrack, 0));
    assert_eq!(s.next_change, Some(berlin("2026-12-28 10:00")));

    // Christmas Eve: closed, nothing moves.
    let s = c.at(berlin("2026-12-24 12:00"));
    assert_eq!(
        timer(&s, Timer::FirstResponse, 0).elapsed,
        TimeDelta::hours(2)
    );
    assert_eq!(s.health, Health::OnTrack);

    // Monday 28, 10:00: 75% of the first response: at risk, lead notified.
    let s = c.at(berlin("2026-12-28 10:00"));
    assert_eq!(s.health, Health::AtRisk);
    assert_eq!(keys(&s), ["first_response/0/at:75%"]);
    assert_eq!(s.next_change, Some(berlin("2026-12-28 11:00")));

    // 11:00: breached, recorded now rather than when someone answers.
    let s = c.at(berlin("2026-12-28 11:00"));
    assert_eq!(s.health, Health::Breached);
    assert_eq!(
        timer(&s, Timer::FirstResponse, 0).status,
        TimerStatus::Breached
    );
    assert_eq!(
        keys(&s),
        ["first_response/0/at:75%", "first_response/0/breach"]
    );

    // 11:30: the team answers: missed; the conversation is on track again.
    let s = c.receive(Event::message(
        berlin("2026-12-28 11:30"),
        Direction::Outbound,
    ));
    assert_eq!(
        timer(&s, Timer::FirstResponse, 0).status,
        TimerStatus::Missed
    );
    assert_eq!(s.health, Health::OnTrack);
    assert_eq!(s.next_change, Some(berlin("2027-01-04 13:00")));

    // Tuesday 29, 10:00: the client replies: next_response/0, 8h → Wed 10:00.
    let s = c.receive(Event::message(
        berlin("2026-12-29 10:00"),
        Direction::Inbound,
    ));
    let n0 = timer(&s, Timer::NextResponse, 0);
    assert_eq!(n0.due_at, Some(berlin("2026-12-30 10:00")));
    assert_eq!(n0.warn_at, Some(berlin("2026-12-29 16:00")));

    // 12:00: we answer with a question: next_response met, resolution
    // paused after 2 + 8 + 3 = 13h, the conversation pending.
    let s = c.receive(Event::question(berlin("2026-12-29 12:00")));
    assert_eq!(timer(&s, Timer::NextResponse, 0).status, TimerStatus::Met);
    assert_eq!(s.status, TicketStatus::Pending);
    let r = timer(&s, Timer::Resolution, 0);
    assert_eq!(
        (r.status, r.elapsed, r.due_at),
        (TimerStatus::Paused, TimeDelta::hours(13), None)
    );
    assert_eq!(s.next_change, None);

    // Weeks later, the old due long passed: still paused, nothing due.
    let s = c.at(berlin("2027-02-01 12:00"));
    assert_eq!(
        timer(&s, Timer::Resolution, 0).elapsed,
        TimeDelta::hours(13)
    );
    assert_eq!(s.health, Health::OnTrack);
    assert_eq!(s.actions.len(), 2);

    // Thursday 25 March 2027, 16:00 (+01:00): the client answers. Good
    // Friday, the weekend (clocks go forward on Sunday 28) and Easter Monday
    // are closed. next_response/1: 1h Thursday + 7h Tuesday → Tue 30 16:00
    // (+02:00). resolution: 27h left: 1 + 8 + 8 + 8 + 2 → Fri 2 April 11:00,
    // warn (17h left to 30h) at the close on Wednesday 31.
    let s = c.receive(Event::message(
        berlin("2027-03-25 16:00"),
        Direction::Inbound,
    ));
    assert_eq!(s.status, TicketStatus::Open);
    let n1 = timer(&s, Timer::NextResponse, 1);
    assert_eq!(n1.due_at, Some(utc("2027-03-30T14:00:00Z")));
    assert_eq!(n1.warn_at, Some(berlin("2027-03-30 14:00")));
    let r = timer(&s, Timer::Resolution, 0);
    assert_eq!(r.status, TimerStatus::Running);
    assert_eq!(r.due_at, Some(berlin("2027-04-02 11:00")));
    assert_eq!(r.warn_at, Some(berlin("2027-03-31 17:00")));
    assert_eq!(s.next_change, Some(berlin("2027-03-30 14:00")));

    // Across the DST change: Monday 29 is Easter Monday, nothing moved.
    let s = c.at(berlin("2027-03-29 16:00"));
    assert_eq!(
        timer(&s, Timer::NextResponse, 1).elapsed,
        TimeDelta::hours(1)
    );
    assert_eq!(s.health, Health::OnTrack);

    let s = c.at(berlin("2027-03-30 14:00"));
    assert_eq!(s.health, Health::AtRisk);
    assert_eq!(keys(&s)[2..], ["next_response/1/at:75%"]);
    let s = c.at(berlin("2027-03-30 15:59"));
    assert_eq!(
        timer(&s, Timer::NextResponse, 1).status,
        TimerStatus::Running
    );
    let s = c.at(berlin("2027-03-30 16:00"));
    assert_eq!(s.health, Health::Breached);
    assert_eq!(
        keys(&s)[2..],
        ["next_response/1/at:75%", "next_response/1/breach"]
    );

    // 16:30: answered late, missed; resolution keeps running.
    let s = c.receive(Event::message(
        berlin("2027-03-30 16:30"),
        Direction::Outbound,
    ));
    assert_eq!(
        timer(&s, Timer::NextResponse, 1).status,
        TimerStatus::Missed
    );
    assert_eq!(s.health, Health::OnTrack);
    assert_eq!(s.next_change, Some(berlin("2027-03-31 17:00")));

    // Wednesday 31, 17:00: 75% of the resolution window.
    let s = c.at(berlin("2027-03-31 17:00"));
    assert_eq!(s.health, Health::AtRisk);
    assert_eq!(keys(&s).last(), Some(&"resolution/0/at:75%"));

    // Thursday 1 April, 10:00: solved within the window.
    let s = c.receive(Event::status(
        berlin("2027-04-01 10:00"),
        TicketStatus::Solved,
    ));
    assert_eq!(s.status, TicketStatus::Solved);
    assert_eq!(s.health, Health::OnTrack);
    let r = timer(&s, Timer::Resolution, 0);
    assert_eq!(r.status, TimerStatus::Met);
    assert_eq!(r.elapsed, TimeDelta::hours(13 + 1 + 8 + 8 + 1));
    assert_eq!(s.next_change, None);
    let statuses: Vec<_> = s
        .timers
        .iter()
        .map(|t| (t.timer, t.seq, t.status))
        .collect();
    assert_eq!(
        statuses,
        [
            (Timer::FirstResponse, 0, TimerStatus::Missed),
            (Timer::NextResponse, 0, TimerStatus::Met),
            (Timer::NextResponse, 1, TimerStatus::Missed),
            (Timer::Resolution, 0, TimerStatus::Met),
        ]
    );
    assert_eq!(s.actions.len(), 5);
}

#[test]
fn urgent_around_the_clock_through_the_missing_hour() {
    // 2027-03-28 01:45 (+01:00) on `always`: 30 real minutes later is 03:15
    // summer time (02:00–03:00 does not exist).
    let policy = Policy::from_contract(&contract(), "urgent", Some("acme")).unwrap();
    let events = [Event::message(
        berlin("2027-03-28 01:45"),
        Direction::Inbound,
    )];
    let s = evaluate(&policy, &events, berlin("2027-03-28 01:45"));
    assert_eq!(
        timer(&s, Timer::FirstResponse, 0).due_at,
        Some(berlin("2027-03-28 03:15"))
    );
    assert_eq!(
        timer(&s, Timer::Resolution, 0).due_at,
        Some(berlin("2027-03-28 10:45"))
    );
    assert_eq!(s.next_change, Some(berlin("2027-03-28 03:00")));

    let s = evaluate(&policy, &events, berlin("2027-03-28 03:45"));
    let fired: Vec<_> = s.actions.iter().map(|a| (a.key.as_str(), a.at)).collect();
    assert_eq!(
        fired,
        [
            ("first_response/0/at:50%", berlin("2027-03-28 03:00")),
            ("first_response/0/at:100%", berlin("2027-03-28 03:15")),
            ("first_response/0/breach", berlin("2027-03-28 03:15")),
            ("first_response/0/after_due:30m", berlin("2027-03-28 03:45")),
        ]
    );
    assert_eq!(s.health, Health::Breached);
}
