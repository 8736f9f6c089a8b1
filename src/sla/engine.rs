//! Replays a conversation's events into timer runs, then reads statuses,
//! dues, warn instants and due actions off those runs (rules: module doc).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

use crate::calendar::{BusinessDuration, Calendar};
use crate::contract::{Contract, DEFAULT_WARN_PERCENT, EscalationStep, EscalationTrigger, Timer};

/// Who a message is from and who sees it (README, "The contract").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Inbound,
    Outbound,
    Internal,
    Auto,
}

/// The status of a conversation (a ticket's status, or ours for email).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketStatus {
    Open,
    Pending,
    Solved,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} \"{value}\" (expected {expected})")]
pub struct ParseError {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl ParseError {
    /// "must be one of …, … or … (got `x`)": what a filter's caller is told.
    pub fn must_be(&self) -> String {
        format!("must be one of {} (got `{}`)", self.expected, self.value)
    }
}

macro_rules! names {
    ($ty:ident, $what:literal, $expected:literal, $($variant:ident => $name:literal),+) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(ParseError { what: $what, value: s.to_string(), expected: $expected }),
                }
            }
        }
    };
}

names!(Direction, "direction", "inbound, outbound, internal or auto",
    Inbound => "inbound", Outbound => "outbound", Internal => "internal", Auto => "auto");
names!(TicketStatus, "status", "open, pending or solved",
    Open => "open", Pending => "pending", Solved => "solved");
names!(TimerStatus, "timer status", "running, paused, met, breached or missed",
    Running => "running", Paused => "paused", Met => "met", Breached => "breached", Missed => "missed");
names!(Health, "health", "on_track, at_risk or breached",
    OnTrack => "on_track", AtRisk => "at_risk", Breached => "breached");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `awaiting_client`: an outbound message marked as a question to the client.
    Message {
        direction: Direction,
        awaiting_client: bool,
    },
    Status(TicketStatus),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub kind: EventKind,
}

impl Event {
    pub fn message(at: DateTime<Utc>, direction: Direction) -> Event {
        Event {
            at,
            kind: EventKind::Message {
                direction,
                awaiting_client: false,
            },
        }
    }
    /// An outbound message that asks the client something.
    pub fn question(at: DateTime<Utc>) -> Event {
        Event {
            at,
            kind: EventKind::Message {
                direction: Direction::Outbound,
                awaiting_client: true,
            },
        }
    }
    pub fn status(at: DateTime<Utc>, status: TicketStatus) -> Event {
        Event {
            at,
            kind: EventKind::Status(status),
        }
    }
}

/// What one conversation is held to: the windows, calendar and escalation of
/// its request type (with the client's overrides) in the contract version it
/// opened under.
#[derive(Debug, Clone)]
pub struct Policy {
    calendar: Calendar,
    /// Indexed like [`Timer::ALL`].
    windows: [Option<BusinessDuration>; 4],
    escalation: Vec<EscalationStep>,
    warn_percent: u8,
    /// `max_pause` of the request type (pause governance, README, "Urgency and focus").
    max_pause: Option<BusinessDuration>,
}

fn slot(timer: Timer) -> usize {
    match timer {
        Timer::FirstResponse => 0,
        Timer::NextResponse => 1,
        Timer::Resolution => 2,
        Timer::PeriodicUpdate => 3,
    }
}

impl Policy {
    /// `None` when the contract has no such request type.
    pub fn from_contract(c: &Contract, type_id: &str, client_id: Option<&str>) -> Option<Policy> {
        let request_type = c.request_type(type_id)?;
        let calendar = c.calendar_for(type_id)?.clone();
        let windows = Timer::ALL.map(|timer| c.window(type_id, client_id, timer));
        Some(Policy {
            calendar,
            windows,
            escalation: request_type.escalation.clone(),
            warn_percent: request_type.warn_percent(),
            max_pause: request_type.max_pause,
        })
    }

    /// `windows`: first response, next response, resolution; the warn
    /// threshold follows the contract rule (first `at` step, else 75%).
    /// No periodic updates: see [`Policy::with_update_every`].
    pub fn new(
        calendar: Calendar,
        windows: [Option<BusinessDuration>; 3],
        escalation: Vec<EscalationStep>,
    ) -> Policy {
        let warn_percent = escalation
            .iter()
            .find_map(|s| match s.trigger {
                EscalationTrigger::At(p) => Some(p.get()),
                EscalationTrigger::AfterDue(_) => None,
            })
            .unwrap_or(DEFAULT_WARN_PERCENT);
        let [first, next, resolution] = windows;
        Policy {
            calendar,
            windows: [first, next, resolution, None],
            escalation,
            warn_percent,
            max_pause: None,
        }
    }

    /// Also promises an update at least every `every` of business time.
    pub fn with_update_every(mut self, every: Option<BusinessDuration>) -> Policy {
        self.windows[slot(Timer::PeriodicUpdate)] = every;
        self
    }

    /// The same policy with a `max_pause`: resolution resumes by itself once
    /// the conversation has spent this much business time paused.
    pub fn with_max_pause(mut self, max_pause: Option<BusinessDuration>) -> Policy {
        self.max_pause = max_pause;
        self
    }

    pub fn max_pause(&self) -> Option<BusinessDuration> {
        self.max_pause
    }

    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }
    pub fn window(&self, timer: Timer) -> Option<BusinessDuration> {
        self.windows[slot(timer)]
    }
    pub fn escalation(&self) -> &[EscalationStep] {
        &self.escalation
    }
    pub fn warn_percent(&self) -> u8 {
        self.warn_percent
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerStatus {
    Running,
    Paused,
    Met,
    Breached,
    Missed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    OnTrack,
    AtRisk,
    Breached,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerState {
    pub timer: Timer,
    /// 0 for `first_response` and `resolution`; the cycle for `next_response`.
    pub seq: u32,
    pub status: TimerStatus,
    pub started_at: DateTime<Utc>,
    /// `None` while paused (it depends on when the client answers); for a
    /// stopped timer, the due it reached or was running towards when it stopped.
    pub due_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
    /// When the warn share was reached, or will be while running.
    pub warn_at: Option<DateTime<Utc>>,
    /// Business time consumed up to `now` or the stop, pauses excluded.
    pub elapsed: TimeDelta,
    pub window: BusinessDuration,
    /// The intervals it ran, `[start, end)`; the last has no end while it
    /// runs. The gaps between them are its pauses (the timeline and the
    /// "why is it due then" explanation read them).
    pub segments: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionKind {
    /// `index` into the policy's escalation steps.
    Step {
        index: usize,
        notify: Vec<String>,
    },
    Breach,
}

/// Which step an action is, typed for the alert's words and payloads. Its
/// text (`at:50%`, `at:50%#1`, `after_due:30m`, `breach`) is the step part of
/// [`DueAction::key`] and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionStep {
    /// At this share of the window. `repeat`: the step's index when the
    /// contract writes the same trigger earlier too (it keeps keys unique).
    At {
        percent: u8,
        repeat: Option<usize>,
    },
    /// This long after the due, in business time.
    AfterDue {
        after: BusinessDuration,
        repeat: Option<usize>,
    },
    Breach,
}

impl fmt::Display for ActionStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let repeat = match self {
            ActionStep::At { percent, repeat } => {
                write!(f, "at:{percent}%")?;
                repeat
            }
            ActionStep::AfterDue { after, repeat } => {
                write!(f, "after_due:{after}")?;
                repeat
            }
            ActionStep::Breach => return f.write_str("breach"),
        };
        match repeat {
            Some(index) => write!(f, "#{index}"),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueAction {
    pub timer: Timer,
    pub seq: u32,
    /// Stable and unique within the conversation: what the caller stores to
    /// fire each action once.
    pub key: String,
    /// The step without its timer instance: one metric series per step, not
    /// per conversation.
    pub step: ActionStep,
    /// The contacts to notify: the step's, or for a breach those of
    /// [`breach_contacts`].
    pub notify: Vec<String>,
    pub kind: ActionKind,
    /// When it fell due.
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationState {
    pub status: TicketStatus,
    pub opened_at: Option<DateTime<Utc>>,
    /// `first_response`, then `next_response` by seq, then `resolution`.
    pub timers: Vec<TimerState>,
    pub health: Health,
    /// Ordered by instant, then timer.
    pub actions: Vec<DueAction>,
    pub next_change: Option<DateTime<Utc>>,
    /// Business time (on the request type's calendar) the conversation has
    /// spent waiting on the client, up to `now`.
    pub paused: TimeDelta,
    /// When `max_pause` ran out and the resolution timer resumed by itself.
    pub pause_limit_resumed_at: Option<DateTime<Utc>>,
}

/// One timer instance: its running intervals `[start, end)`; the last has no
/// end while it runs.
struct Run {
    timer: Timer,
    seq: u32,
    window: BusinessDuration,
    segments: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    stopped_at: Option<DateTime<Utc>>,
}

impl Run {
    fn new(timer: Timer, seq: u32, window: BusinessDuration, at: DateTime<Utc>) -> Run {
        Run {
            timer,
            seq,
            window,
            segments: vec![(at, None)],
            stopped_at: None,
        }
    }
    fn running(&self) -> bool {
        self.segments.last().is_some_and(|s| s.1.is_none())
    }
    fn pause(&mut self, at: DateTime<Utc>) {
        if let Some(last) = self.segments.last_mut()
            && last.1.is_none()
        {
            last.1 = Some(at);
        }
    }
    fn resume(&mut self, at: DateTime<Utc>) {
        if !self.running() {
            self.segments.push((at, None));
            self.stopped_at = None;
        }
    }
    fn stop(&mut self, at: DateTime<Utc>) {
        if self.stopped_at.is_none() {
            self.pause(at);
            self.stopped_at = Some(at);
        }
    }
    fn start(&self) -> DateTime<Utc> {
        self.segments[0].0
    }
}

/// Timers as the events left them, before reading them at `now`.
struct Replay {
    status: TicketStatus,
    opened_at: Option<DateTime<Utc>>,
    runs: Vec<Run>,
    /// A client message is waiting for an answer (a response timer's cycle
    /// is open, tracked or not).
    awaiting_reply: bool,
    /// Waiting on the client: `resolution` is paused.
    on_client: bool,
    next_seq: u32,
    pause: PauseBudget,
}

/// Pause governance: the business time spent waiting on the client, and the
/// `max_pause` budget it draws on. A pause runs from the moment the
/// conversation starts waiting on the client until it stops waiting (the
/// client writes, it is reopened or solved) or the budget runs out.
#[derive(Default)]
struct PauseBudget {
    /// The start of the pause in progress.
    started: Option<DateTime<Utc>>,
    /// Business seconds of the pauses that ended.
    spent: i64,
    /// The budget in business seconds, fixed at the first pause (a `3d`
    /// budget is the business-day rule from there, like a window).
    budget: Option<i64>,
    first_start: Option<DateTime<Utc>>,
    /// When the budget ran out; no later pause stops the timer.
    exhausted_at: Option<DateTime<Utc>>,
}

impl PauseBudget {
    fn begin(&mut self, policy: &Policy, at: DateTime<Utc>) {
        if self.started.is_some() || self.exhausted_at.is_some() {
            return;
        }
        self.started = Some(at);
        if self.first_start.is_none() {
            self.first_start = Some(at);
            self.budget = policy.max_pause.map(|d| {
                if d.days == 0 {
                    i64::try_from(d.seconds).unwrap_or(i64::MAX)
                } else {
                    policy
                        .calendar
                        .add(at, d)
                        .and_then(|end| policy.calendar.between(at, end))
                        .map(seconds)
                        .unwrap_or(i64::MAX)
                }
            });
        }
    }

    fn end(&mut self, policy: &Policy, at: DateTime<Utc>) {
        if let Some(s) = self.started.take() {
            self.spent += policy.calendar.between(s, at).map(seconds).unwrap_or(0);
        }
    }

    /// When the pause in progress uses up the budget.
    fn limit_at(&self, policy: &Policy) -> Option<DateTime<Utc>> {
        let start = self.started?;
        let max = policy.max_pause?;
        let rest = self.budget? - self.spent;
        if self.first_start == Some(start) && self.spent == 0 && max.days > 0 {
            // The first pause: the business-day rule, exactly.
            return policy.calendar.add(start, max).ok();
        }
        let rest = u64::try_from(rest.max(0)).ok()?;
        policy
            .calendar
            .add(start, BusinessDuration::from_seconds(rest))
            .ok()
    }

    /// Business seconds paused up to `now`.
    fn total(&self, policy: &Policy, now: DateTime<Utc>) -> i64 {
        self.spent
            + self
                .started
                .map(|s| policy.calendar.between(s, now).map(seconds).unwrap_or(0))
                .unwrap_or(0)
    }
}

impl Replay {
    fn run_mut(&mut self, timer: Timer) -> Option<&mut Run> {
        self.runs.iter_mut().rev().find(|r| r.timer == timer)
    }

    fn stop_response(&mut self, at: DateTime<Utc>) {
        if self.awaiting_reply {
            self.awaiting_reply = false;
            for timer in [Timer::FirstResponse, Timer::NextResponse] {
                if let Some(run) = self.run_mut(timer) {
                    run.stop(at);
                }
            }
        }
    }

    /// Back to `open`: resumes `resolution` (a solved one too), and the
    /// update rhythm (a new cycle when the last one was stopped).
    fn reopen(&mut self, policy: &Policy, at: DateTime<Utc>) {
        self.status = TicketStatus::Open;
        self.on_client = false;
        self.pause.end(policy, at);
        if let Some(run) = self.run_mut(Timer::Resolution) {
            run.resume(at);
        }
        match self.run_mut(Timer::PeriodicUpdate) {
            Some(run) if run.stopped_at.is_none() => run.resume(at),
            _ => self.rearm_update(policy, at),
        }
    }

    fn wait_on_client(&mut self, policy: &Policy, at: DateTime<Utc>) {
        self.status = TicketStatus::Pending;
        self.on_client = true;
        let exhausted = self.pause.exhausted_at.is_some();
        let tracked = self.run_mut(Timer::Resolution).is_some();
        if tracked {
            self.pause.begin(policy, at);
        }
        if let Some(run) = self.run_mut(Timer::Resolution) {
            if exhausted {
                // The pause budget is spent: waiting on the client no longer
                // stops the clock (a solved one reopens running).
                run.resume(at);
            } else {
                run.pause(at);
                // `pending` after `solved` reopens the conversation, paused.
                run.stopped_at = None;
            }
        }
        if tracked && !exhausted {
            self.limit_pause(policy, at);
        }
        // The update rhythm waits with the client (a stopped cycle is
        // followed by a new one, waiting too).
        if self
            .run_mut(Timer::PeriodicUpdate)
            .is_some_and(|r| r.stopped_at.is_some())
        {
            self.rearm_update(policy, at);
        }
        if let Some(run) = self.run_mut(Timer::PeriodicUpdate) {
            run.pause(at);
        }
    }

    /// Resumes `resolution` where the pause in progress used up `max_pause`,
    /// if that is at or before `until`.
    fn limit_pause(&mut self, policy: &Policy, until: DateTime<Utc>) {
        let Some(limit) = self.pause.limit_at(policy) else {
            return;
        };
        if limit > until {
            return;
        }
        self.pause.end(policy, limit);
        self.pause.exhausted_at = Some(limit);
        if let Some(run) = self.run_mut(Timer::Resolution) {
            run.resume(limit);
        }
    }

    /// Stops the running update cycle (met or missed) and starts the next
    /// one at `at`: every outbound message is an update.
    fn rearm_update(&mut self, policy: &Policy, at: DateTime<Utc>) {
        let Some(window) = policy.window(Timer::PeriodicUpdate) else {
            return;
        };
        let mut seq = 0;
        if let Some(run) = self.run_mut(Timer::PeriodicUpdate) {
            run.stop(at);
            seq = run.seq + 1;
        }
        self.runs
            .push(Run::new(Timer::PeriodicUpdate, seq, window, at));
    }

    fn apply(&mut self, policy: &Policy, at: DateTime<Utc>, kind: EventKind) {
        if self.opened_at.is_none() {
            match kind {
                EventKind::Message {
                    direction: Direction::Inbound,
                    ..
                } => self.open(policy, at),
                EventKind::Status(status) => self.status = status,
                EventKind::Message { .. } => {}
            }
            return;
        }
        match kind {
            EventKind::Message {
                direction: Direction::Inbound,
                ..
            } => {
                if self.status == TicketStatus::Solved || self.on_client {
                    self.reopen(policy, at);
                }
                if !self.awaiting_reply {
                    self.awaiting_reply = true;
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    if let Some(window) = policy.window(Timer::NextResponse) {
                        self.runs
                            .push(Run::new(Timer::NextResponse, seq, window, at));
                    }
                }
            }
            EventKind::Message {
                direction: Direction::Outbound,
                awaiting_client,
            } => {
                // Once solved, the team's messages change nothing.
                if self.status == TicketStatus::Solved {
                    return;
                }
                self.stop_response(at);
                self.rearm_update(policy, at);
                if awaiting_client {
                    self.wait_on_client(policy, at);
                } else if self.on_client {
                    // Still waiting on the client: the new cycle waits too.
                    if let Some(run) = self.run_mut(Timer::PeriodicUpdate) {
                        run.pause(at);
                    }
                }
            }
            EventKind::Message { .. } => {}
            EventKind::Status(TicketStatus::Open) => {
                if self.status != TicketStatus::Open {
                    self.reopen(policy, at);
                }
            }
            EventKind::Status(TicketStatus::Pending) => self.wait_on_client(policy, at),
            EventKind::Status(TicketStatus::Solved) => {
                self.status = TicketStatus::Solved;
                self.on_client = false;
                self.pause.end(policy, at);
                self.stop_response(at);
                for timer in [Timer::Resolution, Timer::PeriodicUpdate] {
                    if let Some(run) = self.run_mut(timer) {
                        run.stop(at);
                    }
                }
            }
        }
    }

    fn open(&mut self, policy: &Policy, at: DateTime<Utc>) {
        self.opened_at = Some(at);
        self.status = TicketStatus::Open;
        self.awaiting_reply = true;
        for timer in [
            Timer::FirstResponse,
            Timer::Resolution,
            Timer::PeriodicUpdate,
        ] {
            if let Some(window) = policy.window(timer) {
                self.runs.push(Run::new(timer, 0, window, at));
            }
        }
    }
}

fn seconds(d: TimeDelta) -> i64 {
    d.num_seconds()
}

/// A run read against the calendar at `now`.
struct Reading<'a> {
    run: &'a Run,
    calendar: &'a Calendar,
    now: DateTime<Utc>,
    /// Business seconds of the window.
    w: i64,
    /// Business seconds consumed before each segment.
    before: Vec<i64>,
}

impl<'a> Reading<'a> {
    fn new(run: &'a Run, calendar: &'a Calendar, now: DateTime<Utc>) -> Reading<'a> {
        let w = if run.window.days == 0 {
            i64::try_from(run.window.seconds).unwrap_or(i64::MAX)
        } else {
            calendar
                .add(run.start(), run.window)
                .and_then(|due| calendar.between(run.start(), due))
                .map(seconds)
                .unwrap_or(i64::MAX)
        };
        let mut before = Vec::with_capacity(run.segments.len());
        let mut total = 0;
        for &(s, e) in &run.segments {
            before.push(total);
            total += calendar
                .between(s, e.unwrap_or(now))
                .map(seconds)
                .unwrap_or(0);
        }
        Reading {
            run,
            calendar,
            now,
            w,
            before,
        }
    }

    fn elapsed(&self) -> TimeDelta {
        let mut total = TimeDelta::zero();
        for &(s, e) in &self.run.segments {
            total += self
                .calendar
                .between(s, e.unwrap_or(self.now))
                .unwrap_or_default();
        }
        total
    }

    /// The first running instant at which the elapsed time reaches `x`
    /// business seconds, projecting the open segment into the future; `None`
    /// if no recorded segment reaches it (or the calendar cannot say).
    fn instant(&self, x: i64) -> Option<DateTime<Utc>> {
        for (k, &(s, e)) in self.run.segments.iter().enumerate() {
            let rest = x - self.before[k];
            if rest < 0 {
                continue;
            }
            let t = if k == 0 && x == self.w {
                // Never paused before the due: the business-day rule, exactly.
                self.calendar.add(s, self.run.window).ok()?
            } else {
                self.calendar
                    .add(s, BusinessDuration::from_seconds(rest.unsigned_abs()))
                    .ok()?
            };
            match e {
                Some(end) if t >= end => continue,
                _ => return Some(t),
            }
        }
        None
    }

    /// Whether the timer ran at `t` (as far as the events up to `now` say).
    fn ran_at(&self, t: DateTime<Utc>) -> bool {
        self.run
            .segments
            .iter()
            .any(|&(s, e)| s <= t && e.is_none_or(|e| t < e))
    }

    fn share(&self, percent: u8) -> i64 {
        let p = i128::from(percent);
        let w = i128::from(self.w);
        i64::try_from((w * p + 99) / 100).unwrap_or(i64::MAX)
    }

    /// The due as the timer stands: reached or projected while running.
    fn due(&self) -> Option<DateTime<Utc>> {
        self.instant(self.w)
    }

    /// For a timer stopped while running before its due: the due it was
    /// running towards.
    fn due_when_stopped(&self) -> Option<DateTime<Utc>> {
        let k = self.run.segments.len() - 1;
        let (s, e) = self.run.segments[k];
        if e != self.run.stopped_at {
            return None;
        }
        let rest = self.w - self.before[k];
        if k == 0 {
            self.calendar.add(s, self.run.window).ok()
        } else {
            let rest = u64::try_from(rest).ok()?;
            self.calendar
                .add(s, BusinessDuration::from_seconds(rest))
                .ok()
        }
    }
}

/// The conversation's state at `now` (rules: module doc).
pub fn evaluate(policy: &Policy, events: &[Event], now: DateTime<Utc>) -> ConversationState {
    let mut sorted: Vec<&Event> = events.iter().filter(|e| e.at <= now).collect();
    sorted.sort_by_key(|e| e.at);
    let mut replay = Replay {
        status: TicketStatus::Open,
        opened_at: None,
        runs: Vec::new(),
        awaiting_reply: false,
        on_client: false,
        next_seq: 0,
        pause: PauseBudget::default(),
    };
    for event in sorted {
        let at = ceil_to_second(event.at);
        // A pause that ran out of budget before this event resumed by itself.
        replay.limit_pause(policy, at);
        replay.apply(policy, at, event.kind);
    }
    replay.limit_pause(policy, now);
    let pause_limit = replay.pause.limit_at(policy).filter(|t| *t > now);
    replay.runs.sort_by_key(|r| (slot(r.timer), r.seq));

    let mut timers = Vec::with_capacity(replay.runs.len());
    let mut actions = Vec::new();
    let mut pending: Vec<DateTime<Utc>> = Vec::new();
    let mut warned = false;
    let mut warn_future: Vec<DateTime<Utc>> = Vec::new();
    for run in &replay.runs {
        let reading = Reading::new(run, &policy.calendar, now);
        let running = run.running();
        let paused = !running && run.stopped_at.is_none();
        let due = reading.due();
        // Only a running instance has a future; its past instants are fixed.
        let happened = |t: &DateTime<Utc>| reading.ran_at(*t) && *t <= now;
        let reached_due = due.filter(happened);
        let warn = reading.instant(reading.share(policy.warn_percent));
        let status = if running {
            if reached_due.is_some() {
                TimerStatus::Breached
            } else {
                TimerStatus::Running
            }
        } else if paused {
            TimerStatus::Paused
        } else if reached_due.is_some() {
            TimerStatus::Missed
        } else {
            TimerStatus::Met
        };
        if running {
            if let Some(w) = warn {
                if w <= now {
                    warned = true;
                } else {
                    warn_future.push(w);
                }
            }
            if let Some(d) = due.filter(|d| *d > now) {
                pending.push(d);
            }
        }

        let prefix = format!("{}/{}", run.timer, run.seq);
        for (index, step) in policy.escalation.iter().enumerate() {
            let at = match step.trigger {
                EscalationTrigger::At(p) => reading.instant(reading.share(p.get())),
                EscalationTrigger::AfterDue(d) => {
                    due.and_then(|due| policy.calendar.add(due, d).ok())
                }
            };
            let Some(at) = at else { continue };
            if happened(&at) {
                let label = action_step(&policy.escalation, index);
                actions.push(DueAction {
                    timer: run.timer,
                    seq: run.seq,
                    key: format!("{prefix}/{label}"),
                    step: label,
                    notify: step.notify.clone(),
                    kind: ActionKind::Step {
                        index,
                        notify: step.notify.clone(),
                    },
                    at,
                });
            } else if running && at > now {
                pending.push(at);
            }
        }
        if let Some(at) = reached_due {
            actions.push(DueAction {
                timer: run.timer,
                seq: run.seq,
                key: format!("{prefix}/{}", ActionStep::Breach),
                step: ActionStep::Breach,
                notify: breach_contacts(&policy.escalation),
                kind: ActionKind::Breach,
                at,
            });
        }

        timers.push(TimerState {
            timer: run.timer,
            seq: run.seq,
            status,
            started_at: run.start(),
            due_at: if paused {
                None
            } else if running {
                due
            } else {
                due.or_else(|| reading.due_when_stopped())
            },
            stopped_at: run.stopped_at,
            warn_at: if running { warn } else { warn.filter(happened) },
            elapsed: reading.elapsed(),
            window: run.window,
            segments: run.segments.clone(),
        });
    }

    let health = if replay.status == TicketStatus::Solved {
        Health::OnTrack
    } else if timers.iter().any(|t| t.status == TimerStatus::Breached) {
        Health::Breached
    } else if warned {
        Health::AtRisk
    } else {
        Health::OnTrack
    };
    if health == Health::OnTrack && replay.status != TicketStatus::Solved {
        pending.extend(warn_future);
    }
    pending.extend(pause_limit);
    actions.sort_by_key(|a| (a.at, slot(a.timer), a.seq));

    ConversationState {
        status: replay.status,
        opened_at: replay.opened_at,
        timers,
        health,
        actions,
        next_change: pending.into_iter().min(),
        paused: TimeDelta::seconds(replay.pause.total(policy, now)),
        pause_limit_resumed_at: replay.pause.exhausted_at,
    }
}

/// Who hears of a breach: a contract with an `at = "100%"` step says so
/// through that step (which fires at the same instant), so the breach itself
/// notifies nobody more; without one, everyone the escalation names hears of
/// it, once each.
pub fn breach_contacts(steps: &[EscalationStep]) -> Vec<String> {
    if steps
        .iter()
        .any(|s| matches!(s.trigger, EscalationTrigger::At(p) if p.get() == 100))
    {
        return Vec::new();
    }
    let all: std::collections::BTreeSet<&String> = steps.iter().flat_map(|s| &s.notify).collect();
    all.into_iter().cloned().collect()
}

/// A trigger written twice gets its index, so keys stay unique.
fn action_step(steps: &[EscalationStep], index: usize) -> ActionStep {
    let repeat = steps[..index]
        .iter()
        .any(|s| s.trigger == steps[index].trigger)
        .then_some(index);
    match steps[index].trigger {
        EscalationTrigger::At(p) => ActionStep::At {
            percent: p.get(),
            repeat,
        },
        EscalationTrigger::AfterDue(after) => ActionStep::AfterDue { after, repeat },
    }
}

/// An event counts from the first whole second at or after it. Rounding up,
/// not down: an answer 0.07 s after a due at 17:00:00 is late, and must not
/// read as met after the breach at 17:00:00 was already recorded.
fn ceil_to_second(t: DateTime<Utc>) -> DateTime<Utc> {
    let whole = t.trunc_subsecs(0);
    if whole == t {
        t
    } else {
        whole + TimeDelta::seconds(1)
    }
}
