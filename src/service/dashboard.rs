//! The team dashboard's read models: the queue, the timeline with "why is it
//! due then" and the what-if, and the compliance report. Plain data for the
//! templates in `web/dashboard`; every wording of time is here, in the
//! contract's zone.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::*;
use crate::backtest::percentile;
use crate::calendar::{Calendar, explain::Skip};
use crate::sla::Health;
use crate::store::{QueueFilter, TimerRow};

/// Rows per queue page.
pub const QUEUE_PAGE: i64 = 50;
/// Entries per timeline page: a long thread is read a page at a time.
pub const TIMELINE_PAGE: usize = 100;
/// Characters of a message body a timeline shows; a longer one links to
/// its whole text. With [`TIMELINE_PAGE`] this bounds a page's size (and
/// what a request holds in memory) whatever the mail.
pub const BODY_PREVIEW_CHARS: i32 = 4_000;

/// A span of business time in words ([`crate::calendar::business_words`]).
pub fn span_words(d: TimeDelta) -> String {
    crate::calendar::business_words(d.num_seconds())
}

/// "Tue 10:00" within the coming or past week, else "Tue 3 Dec 2026 10:00", in
/// `tz`.
pub fn local_words(t: DateTime<Utc>, now: DateTime<Utc>, tz: Tz) -> String {
    let l = t.with_timezone(&tz);
    if (t - now).num_days().abs() < 6 {
        l.format("%a %H:%M").to_string()
    } else {
        l.format("%a %-d %b %Y %H:%M").to_string()
    }
}

pub fn health_words(h: Health) -> (&'static str, &'static str) {
    match h {
        Health::Breached => ("breached", "✖"),
        Health::AtRisk => ("at risk", "▲"),
        Health::OnTrack => ("on track", "●"),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueRow {
    pub id: i64,
    pub client_id: String,
    pub client: String,
    pub subject: String,
    pub request_type: String,
    pub request_type_name: String,
    pub status: String,
    pub health: String,
    pub health_word: &'static str,
    pub health_icon: &'static str,
    /// "first response", or empty when nothing is counting.
    pub timer: String,
    /// "2 h 10 m left" / "1 h 05 m late".
    pub left: String,
    pub late: bool,
    /// "due Tue 10:00".
    pub due: String,
    pub due_at: Option<DateTime<Utc>>,
    /// "waiting on client since Mon 14:02".
    pub paused: String,
    pub channel: String,
    pub channel_mismatch: bool,
    pub classification: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthCount {
    pub health: &'static str,
    pub word: &'static str,
    pub icon: &'static str,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueView {
    pub rows: Vec<QueueRow>,
    pub total: i64,
    pub counts: Vec<HealthCount>,
    /// 1-based.
    pub page: i64,
    pub pages: i64,
    pub zone: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SpanView {
    pub from: String,
    pub to: String,
    pub length: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayView {
    pub date: String,
    /// "holiday", "closed", or empty.
    pub skipped: &'static str,
    pub counted: Vec<SpanView>,
    pub paused: Vec<SpanView>,
}

/// "Why is it due then", for one timer.
#[derive(Debug, Clone, Serialize)]
pub struct TimerExplained {
    pub timer: String,
    pub seq: u32,
    pub status: String,
    pub started: String,
    pub window: String,
    pub calendar: String,
    /// "due Tue 10:00", "met Mon 15:12", "paused" …
    pub outcome: String,
    pub days: Vec<DayView>,
    pub counted: String,
    pub paused: String,
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineItem {
    pub at: DateTime<Utc>,
    pub when: String,
    /// `inbound`, `outbound`, `auto`, `internal`, `status`, `timer`,
    /// `escalation`, `ack`.
    pub kind: &'static str,
    pub title: String,
    /// Text (a message body, its first [`BODY_PREVIEW_CHARS`]); rendered
    /// escaped, as text.
    pub text: String,
    /// The message an entry shows, if it shows one.
    pub message_id: Option<i64>,
    /// The body's whole length in characters when `text` is only its start.
    pub cut_from: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub id: i64,
    pub client: String,
    pub client_id: String,
    pub subject: String,
    pub request_type: String,
    pub request_type_name: String,
    pub classification: String,
    pub contract_version: String,
    pub channel: String,
    pub channel_mismatch: bool,
    pub status: String,
    pub health: String,
    pub health_word: &'static str,
    pub health_icon: &'static str,
    pub paused: String,
    /// One page of the entries, oldest first.
    pub items: Vec<TimelineItem>,
    pub page: i64,
    pub pages: i64,
    pub timers: Vec<TimerExplained>,
    /// "If the client replies now, …".
    pub what_if: Vec<String>,
    /// "Waiting on the client: 2 h 10 m of business time so far (at most 3d)".
    pub pause: String,
    pub zone: String,
}

/// One row of the compliance report.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ComplianceRow {
    pub request_type: String,
    pub client_id: String,
    pub client: String,
    pub timer: String,
    pub conversations: usize,
    pub met: usize,
    pub missed: usize,
    /// Still counting past the due.
    pub breached: usize,
    /// `met / (met + missed)`, percent.
    pub met_pct: Option<f64>,
    pub p50: Option<i64>,
    pub p90: Option<i64>,
    #[serde(skip)]
    pub ids: BTreeMap<&'static str, Vec<i64>>,
}

/// A conversation's policy and the contract version it came from.
type Resolved = Option<Arc<(Policy, Arc<Contract>)>>;

/// Policies by (contract version, request type, client), built once per
/// page: a page of 50 rows shares a handful.
struct Policies<'s> {
    core: &'s Core,
    cache: HashMap<(String, String, String), Resolved>,
}

impl<'s> Policies<'s> {
    fn new(core: &'s Core) -> Self {
        Policies {
            core,
            cache: HashMap::new(),
        }
    }

    fn of(
        &mut self,
        conn: &mut AnyConnection,
        c: &ConversationRow,
    ) -> Result<Resolved, ServiceError> {
        let key = (
            c.contract_version.clone(),
            c.request_type.clone(),
            c.client_id.clone(),
        );
        if let Some(p) = self.cache.get(&key) {
            return Ok(p.clone());
        }
        let contract = self.core.contract_version(conn, &c.contract_version)?;
        let client = (c.client_id != UNKNOWN_CLIENT).then_some(c.client_id.as_str());
        let p = Policy::from_contract(&contract, &c.request_type, client)
            .map(|p| Arc::new((p, contract)));
        self.cache.insert(key, p.clone());
        Ok(p)
    }
}

fn type_name(contract: &Contract, id: &str) -> String {
    contract
        .request_type(id)
        .map(|t| t.name.clone())
        .unwrap_or_else(|| id.into())
}

fn paused_words(c: &ConversationRow, now: DateTime<Utc>, tz: Tz) -> String {
    match c.paused_since {
        Some(since) => format!("waiting on client since {}", local_words(since, now, tz)),
        None if c.status == TicketStatus::Pending => "waiting on client".into(),
        None => String::new(),
    }
}

impl Reads {
    /// One page of the queue (README, "The team dashboard"), most urgent first: a fixed few
    /// queries whatever the page or the number of conversations.
    pub fn queue(
        &self,
        filter: &QueueFilter,
        page: i64,
        now: DateTime<Utc>,
    ) -> Result<QueueView, ServiceError> {
        let page = page.max(1);
        let current = self.contract().current();
        let zone = current.contract.info().timezone;
        self.store()
            .snapshot(|conn| -> Result<QueueView, StoreError> {
                let offset = (page - 1).saturating_mul(QUEUE_PAGE);
                let p = store::queue_page(conn, filter, offset, QUEUE_PAGE)?;
                let mut policies = Policies::new(&self.core);
                let mut rows = Vec::with_capacity(p.rows.len());
                for c in p.rows {
                    let pol = policies
                        .of(conn, &c)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    rows.push(queue_row(&c, pol.as_deref(), &current.contract, now));
                }
                let count =
                    |h: Health| p.by_health.iter().find(|(k, _)| *k == h).map_or(0, |x| x.1);
                let counts = [Health::Breached, Health::AtRisk, Health::OnTrack]
                    .into_iter()
                    .map(|h| {
                        let (word, icon) = health_words(h);
                        HealthCount {
                            health: h.as_str(),
                            word,
                            icon,
                            count: count(h),
                        }
                    })
                    .collect();
                Ok(QueueView {
                    rows,
                    total: p.total,
                    counts,
                    page,
                    pages: ((p.total + QUEUE_PAGE - 1) / QUEUE_PAGE).max(1),
                    zone: zone.name().to_string(),
                })
            })
            .map_err(ServiceError::from)
    }

    /// The timeline of one conversation, read in one transaction so the
    /// conversation, its messages, timers and steps agree with each other.
    pub fn timeline(
        &self,
        id: i64,
        page: i64,
        now: DateTime<Utc>,
    ) -> Result<Timeline, ServiceError> {
        // Bodies are left out here: only the page's are read, cut short.
        let read = self.store().snapshot(|conn| {
            let Some(c) = store::conversation(conn, id)? else {
                return Err(ServiceError::NotFound(format!("conversation {id}")));
            };
            let messages = store::message_heads_of(conn, id)?;
            let fired = store::fired_steps_of(conn, id)?;
            let contract = self.core.contract_version(conn, &c.contract_version)?;
            let (steps, pause) = self.steps_and_pause(conn, &c, now)?;
            let ack = store::outbox::by_dedupe_key(conn, &format!("ack:{id}"))?;
            Ok((c, messages, fired, contract, steps, pause, ack))
        })?;
        let (c, messages, fired, contract, steps, pause_view, ack) = read;
        // An acknowledgement the client's server refused for good: its copy
        // is on the timeline, and must not read as sent.
        let ack_refused = ack
            .filter(|a| a.refused_at.is_some())
            .map(|a| a.last_error.unwrap_or_default());
        let client = (c.client_id != UNKNOWN_CLIENT).then_some(c.client_id.as_str());
        let policy =
            Policy::from_contract(&contract, &c.request_type, client).ok_or_else(|| {
                ServiceError::MissingContract(format!(
                    "{} (request type {})",
                    c.contract_version, c.request_type
                ))
            })?;
        let cal = policy.calendar().clone();
        let tz = cal.timezone();
        let rows: Vec<EventRow> = messages
            .iter()
            .map(|m| EventRow {
                direction: m.direction,
                status: m.status,
                awaiting_client: m.awaiting_client,
                sent_at: m.sent_at,
            })
            .collect();
        let events = refresh::engine_events(&rows);
        let state = sla::evaluate(&policy, &events, now);
        let when = |t: DateTime<Utc>| local_words(t, now, tz);

        let mut items = Vec::new();
        for m in &messages {
            let (kind, title) = match (m.direction, m.external_id.starts_with("ack:")) {
                (Some(Direction::Auto), true) => match &ack_refused {
                    Some(why) => (
                        "ack",
                        format!(
                            "acknowledgement to {} refused: {why} — not retried",
                            m.recipients
                        ),
                    ),
                    None => ("ack", format!("acknowledgement sent to {}", m.recipients)),
                },
                (Some(Direction::Inbound), _) => ("inbound", format!("{} wrote", m.sender)),
                (Some(Direction::Outbound), _) => (
                    "outbound",
                    if m.awaiting_client {
                        format!("{} answered and asked the client", m.sender)
                    } else {
                        format!("{} answered", m.sender)
                    },
                ),
                (Some(Direction::Auto), false) => {
                    ("auto", format!("automatic message from {}", m.sender))
                }
                (Some(Direction::Internal), _) => {
                    ("internal", format!("internal note by {}", m.sender))
                }
                (None, _) => ("status", String::new()),
            };
            if kind != "status" {
                items.push(TimelineItem {
                    at: m.sent_at,
                    when: when(m.sent_at),
                    kind,
                    title,
                    text: String::new(),
                    message_id: Some(m.id),
                    cut_from: None,
                });
            }
            if let Some(s) = m.status {
                let by = if m.sender.is_empty() {
                    "status"
                } else {
                    m.sender.as_str()
                };
                items.push(TimelineItem {
                    at: m.sent_at,
                    when: when(m.sent_at),
                    kind: "status",
                    title: format!("{by}: status set to {}", status_words(s)),
                    text: String::new(),
                    message_id: None,
                    cut_from: None,
                });
            }
        }
        for t in &state.timers {
            let name = timer_label(t.timer, t.seq);
            items.push(timer_item(
                t.segments[0].0,
                &when,
                format!("{name} started ({} window)", t.window.in_words()),
            ));
            for w in t.segments.windows(2) {
                if let Some(paused_at) = w[0].1 {
                    let why = why_paused(&rows, paused_at);
                    items.push(timer_item(
                        paused_at,
                        &when,
                        format!("{name} paused: {why}"),
                    ));
                    let why = why_resumed(&rows, w[1].0);
                    items.push(timer_item(w[1].0, &when, format!("{name} resumed: {why}")));
                }
            }
            if let Some(stop) = t.stopped_at {
                let word = if t.status == TimerStatus::Met {
                    "met"
                } else {
                    "missed"
                };
                let spent = span_words(t.elapsed);
                items.push(timer_item(
                    stop,
                    &when,
                    format!("{name} {word} after {spent} of business time"),
                ));
            }
            if matches!(t.status, TimerStatus::Breached | TimerStatus::Missed)
                && let Some(due) = t.due_at
            {
                items.push(timer_item(
                    due,
                    &when,
                    format!("{name} breached: its due passed"),
                ));
            }
        }
        // Notifications held for a contact's hours or digest (README, "Urgency and focus"), and
        // the pause budget: from the same read model as the API's detail.
        for f in &fired {
            let view = steps.iter().find(|e| e.step == f.step);
            let held = view.and_then(|e| e.deferred_until);
            // Each target's outcome, one line each.
            let outcomes: Vec<String> = view
                .map(|e| e.notifications.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|n| {
                    let mut line = format!(
                        "{} by {}: {}",
                        n.contact.as_deref().unwrap_or("—"),
                        n.kind,
                        n.outcome
                    );
                    if let Some(at) = n.sent_at {
                        line.push_str(&format!(" {}", when(at)));
                    }
                    if n.outcome == "failing" {
                        line.push_str(&format!(
                            " after {} attempts ({})",
                            n.attempts,
                            n.last_error.as_deref().unwrap_or("")
                        ));
                    }
                    if n.outcome == "refused" {
                        line.push_str(&format!(
                            " ({}) — not retried",
                            n.last_error.as_deref().unwrap_or("")
                        ));
                    }
                    line
                })
                .collect();
            // The engine's typed step, found by the key the record keeps; a
            // step the contract version no longer yields shows its key.
            let action = state.actions.iter().find(|a| a.key == f.step);
            let step = action.map_or_else(
                || f.step.rsplit('/').next().unwrap_or(&f.step).to_string(),
                |a| super::notifications::step_phrase(a.step),
            );
            let label = timer_label(f.timer, f.timer_seq);
            let whom = action
                .map(|a| a.notify.join(", "))
                .filter(|s| !s.is_empty())
                .map_or_else(|| "nobody to notify".to_string(), |w| format!("to {w}"));
            let mut late = if f.late {
                format!(", late by {}", span_words(f.fired_at - f.due_at))
            } else {
                ", on time".into()
            };
            match held {
                Some(until) if until > now => late.push_str(&format!(
                    "; deferred until {} (the contact's hours)",
                    when(until)
                )),
                Some(until) => late.push_str(&format!(
                    "; held until {} (the contact's hours)",
                    when(until)
                )),
                None => {}
            }
            items.push(TimelineItem {
                at: f.fired_at,
                when: when(f.fired_at),
                kind: "escalation",
                title: format!("escalation {step} of {label} fired {whom}{late}"),
                text: outcomes.join("\n"),
                message_id: None,
                cut_from: None,
            });
        }
        // Stable: equal instants keep message, then timer, then step order.
        items.sort_by_key(|i| i.at);
        let pages = items.len().div_ceil(TIMELINE_PAGE).max(1);
        // Past the end: an empty page.
        let skip = usize::try_from(page.max(1) - 1)
            .unwrap_or(usize::MAX)
            .saturating_mul(TIMELINE_PAGE);
        let mut items: Vec<TimelineItem> =
            items.into_iter().skip(skip).take(TIMELINE_PAGE).collect();
        let shown: Vec<i64> = items.iter().filter_map(|i| i.message_id).collect();
        let previews: std::collections::HashMap<i64, store::BodyPreview> = self
            .store()
            .with(|conn| store::body_previews(conn, &shown, BODY_PREVIEW_CHARS))?
            .into_iter()
            .map(|p| (p.message_id, p))
            .collect();
        for item in &mut items {
            if let Some(p) = item.message_id.and_then(|m| previews.get(&m)) {
                match p.removed {
                    Some(store::BodyRemoved::Retention { days }) => {
                        item.text = format!("body removed after {days} days");
                    }
                    Some(store::BodyRemoved::Erasure) => {
                        item.text = "body erased on request".into();
                    }
                    None => {
                        item.text = p.text.clone();
                        item.cut_from =
                            (p.chars > i64::from(BODY_PREVIEW_CHARS)).then_some(p.chars);
                    }
                }
            }
        }

        let calendar_name = contract
            .request_type(&c.request_type)
            .map(|t| t.calendar.clone())
            .unwrap_or_default();
        let timers = state
            .timers
            .iter()
            .map(|t| explain_timer(t, &cal, &calendar_name, now))
            .collect();
        let what_if = what_if(&policy, &events, now, tz);
        let p = &pause_view;
        let mut pause = String::new();
        if p.paused_business_seconds > 0 || p.max_pause.is_some() {
            pause = format!(
                "Time spent waiting on the client: {} of business time",
                span_words(TimeDelta::seconds(p.paused_business_seconds))
            );
            if let Some(max) = &p.max_pause {
                pause.push_str(&format!(
                    " (at most {max}, then the resolution timer resumes by itself)"
                ));
            }
            if let Some(at) = p.resumed_by_max_pause_at {
                pause.push_str(&format!(
                    "; the limit was reached {} and the timer resumed",
                    when(at)
                ));
            }
            pause.push('.');
        }
        let (health_word, health_icon) = health_words(c.health);
        Ok(Timeline {
            id: c.id,
            client: contract.client_name(&c.client_id),
            client_id: c.client_id.clone(),
            subject: c.subject.clone(),
            request_type: c.request_type.clone(),
            request_type_name: type_name(&contract, &c.request_type),
            classification: c.classification.clone(),
            contract_version: c.contract_version.clone(),
            channel: c.channel.clone(),
            channel_mismatch: c.channel_mismatch,
            status: c.status.as_str().into(),
            health: c.health.as_str().into(),
            health_word,
            health_icon,
            paused: paused_words(&c, now, tz),
            items,
            page: page.max(1),
            pages: i64::try_from(pages).unwrap_or(i64::MAX),
            timers,
            what_if,
            pause,
            zone: tz.name().into(),
        })
    }

    /// The whole body of message `message` of conversation `id`.
    pub fn message_body(&self, id: i64, message: i64) -> Result<String, ServiceError> {
        self.store()
            .with(|conn| store::message_body(conn, id, message))?
            .ok_or_else(|| {
                ServiceError::NotFound(format!("message {message} of conversation {id}"))
            })
    }
}

impl Deadlines {
    /// Sets a conversation's status (the API's solve; the dashboard's solve,
    /// reopen, mark waiting on client): recorded as a status event, so the timeline shows
    /// it and the engine derives the timers from it like any other event.
    pub fn set_status(
        &self,
        id: i64,
        status: TicketStatus,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let effects = self.store().transaction(|conn| {
            let conv = store::conversation(conn, id)?
                .ok_or_else(|| ServiceError::NotFound(format!("conversation {id}")))?;
            store::insert_message(
                conn,
                &NewMessage {
                    conversation_id: Some(id),
                    channel: conv.channel.clone(),
                    external_id: format!("{}:{id}:{}", status.as_str(), now.timestamp_micros()),
                    direction: None,
                    sender: actor.into(),
                    recipients: String::new(),
                    subject: String::new(),
                    body: String::new(),
                    message_id: None,
                    in_reply_to: None,
                    refs: String::new(),
                    raw: None,
                    sent_at: now,
                    received_at: now,
                    status: Some(status),
                    awaiting_client: false,
                },
            )?;
            self.refresh(conn, &conv, now)
        })?;
        self.after.apply(effects);
        Ok(())
    }
}

impl Reads {
    /// [`Self::compliance`] counted from the rows, with the conversations
    /// behind each figure ([`ComplianceRow::ids`]): the drill-down page
    /// lists them.
    pub fn compliance_with_ids(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ComplianceRow>, ServiceError> {
        let (convs, timers) = self.store().snapshot(|conn| {
            let convs = store::tallied_between(conn, None, from, to)?;
            let ids: Vec<i64> = convs.iter().map(|c| c.id).collect();
            let timers = store::timers_of_many(conn, &ids)?;
            Ok::<_, ServiceError>((convs, timers))
        })?;
        let mut calendars = Calendars::default();
        Ok(self.tally(&convs, &timers, &mut calendars))
    }

    /// The compliance figures of `convs`: per request type, client and
    /// timer, from their stored timers. The one rule of kept and broken
    /// promises: the compliance report, the client's page, its monthly
    /// report and the team's weekly digest all count with it.
    pub(crate) fn tally<C: Tallied>(
        &self,
        convs: &[C],
        timers: &HashMap<i64, Vec<TimerRow>>,
        calendars: &mut Calendars,
    ) -> Vec<ComplianceRow> {
        self.count(convs, timers, calendars, true)
            .into_values()
            .map(|(row, times)| finish(row, times))
            .collect()
    }

    /// [`Self::tally`]'s counts before the percentiles, by (request type,
    /// client, timer kind): each row with its reply times, unsorted, and
    /// with the conversations behind each figure when `ids`. The per-day
    /// summaries are these, kept (`service::tally`).
    pub(crate) fn count<'c, C: Tallied>(
        &self,
        convs: &'c [C],
        timers: &HashMap<i64, Vec<TimerRow>>,
        calendars: &mut Calendars,
        ids: bool,
    ) -> BTreeMap<(&'c str, &'c str, &'static str), (ComplianceRow, Vec<i64>)> {
        let current = self.contract().current();
        // Keyed by the conversations' own strings: a year's report looks a
        // row up for each of millions of timers, and must not allocate each.
        let mut rows: BTreeMap<(&'c str, &'c str, &'static str), (ComplianceRow, Vec<i64>)> =
            BTreeMap::new();
        let mut seen_kinds: Vec<Timer> = Vec::new();
        for c in convs {
            let cal = calendars.of(&self.core, c);
            let empty = Vec::new();
            let ts: &Vec<TimerRow> = timers.get(&c.id()).unwrap_or(&empty);
            seen_kinds.clear();
            for t in ts {
                let (row, times) = rows
                    .entry((c.request_type(), c.client_id(), t.kind.as_str()))
                    .or_insert_with(|| {
                        (
                            ComplianceRow {
                                request_type: c.request_type().to_string(),
                                client_id: c.client_id().to_string(),
                                client: current.contract.client_name(c.client_id()),
                                timer: t.kind.words().into(),
                                ..ComplianceRow::default()
                            },
                            Vec::new(),
                        )
                    });
                if !seen_kinds.contains(&t.kind) {
                    row.conversations += 1;
                    if ids {
                        row.ids.entry("all").or_default().push(c.id());
                    }
                    seen_kinds.push(t.kind);
                }
                let Some(outcome) = outcome(t.status) else {
                    continue;
                };
                match outcome {
                    "met" => row.met += 1,
                    "missed" => row.missed += 1,
                    _ => row.breached += 1,
                }
                if ids {
                    row.ids.entry(outcome).or_default().push(c.id());
                }
                if let Some(d) = response_time(t, cal.as_ref()) {
                    times.push(d);
                }
            }
        }
        rows
    }
}

/// A row of counts made whole: the percentiles of its reply times and its
/// `% met`.
pub(crate) fn finish(mut row: ComplianceRow, mut times: Vec<i64>) -> ComplianceRow {
    times.sort_unstable();
    row.p50 = percentile(&times, 50.0);
    row.p90 = percentile(&times, 90.0);
    let done = row.met + row.missed;
    row.met_pct = (done > 0).then(|| 100.0 * row.met as f64 / done as f64);
    for ids in row.ids.values_mut() {
        ids.dedup();
    }
    row
}

/// A settled or overdue timer's outcome as the compliance report names it:
/// `met` (kept), `missed` (kept late) or `breached` (overdue, still open).
pub(crate) fn outcome(status: TimerStatus) -> Option<&'static str> {
    match status {
        TimerStatus::Met => Some("met"),
        TimerStatus::Missed => Some("missed"),
        TimerStatus::Breached => Some("breached"),
        _ => None,
    }
}

/// The business time a reply took (`% met`'s companion, p50/p90): replies
/// only — not resolutions — and only once given.
pub(crate) fn response_time(t: &TimerRow, cal: Option<&Calendar>) -> Option<i64> {
    if t.kind == Timer::Resolution || !matches!(t.status, TimerStatus::Met | TimerStatus::Missed) {
        return None;
    }
    let (cal, stop) = (cal?, t.stopped_at?);
    cal.between(t.started_at, stop)
        .ok()
        .map(|d| d.num_seconds())
}

/// What the tally reads of a conversation: a whole row (the compliance
/// report) or the record's narrow one (a client's page reads thousands).
pub(crate) trait Tallied {
    fn id(&self) -> i64;
    fn request_type(&self) -> &str;
    fn client_id(&self) -> &str;
    fn contract_version(&self) -> &str;
}

/// Both rows carry the same four fields under the same names.
macro_rules! tallied {
    ($($row:ty),+) => {$(
        impl Tallied for $row {
            fn id(&self) -> i64 {
                self.id
            }
            fn request_type(&self) -> &str {
                &self.request_type
            }
            fn client_id(&self) -> &str {
                &self.client_id
            }
            fn contract_version(&self) -> &str {
                &self.contract_version
            }
        }
    )+};
}
tallied!(ConversationRow, store::RecordRow);

/// The calendar each conversation's timers count on, by contract version,
/// request type and client, looked up once per key; nested so that a hit
/// (every conversation but the first of its kind) allocates nothing.
#[derive(Default)]
pub(crate) struct Calendars(HashMap<String, HashMap<String, HashMap<String, Option<Calendar>>>>);

impl Calendars {
    pub(crate) fn of(&mut self, core: &Core, c: &impl Tallied) -> Option<Calendar> {
        if let Some(cal) = self.cached(c) {
            return cal.clone();
        }
        let cal = core
            .store()
            .with(|conn| Ok(calendar_of(core, conn, c)))
            .ok()
            .flatten();
        self.keep(c, cal.clone());
        cal
    }

    /// Looks the calendars of `convs` up on `conn`, so that a tally of them
    /// afterwards takes no other connection (a transaction holds `conn`).
    pub(crate) fn preload(
        &mut self,
        core: &Core,
        conn: &mut AnyConnection,
        convs: &[impl Tallied],
    ) {
        for c in convs {
            if self.cached(c).is_none() {
                let cal = calendar_of(core, conn, c);
                self.keep(c, cal);
            }
        }
    }

    fn cached(&self, c: &impl Tallied) -> Option<&Option<Calendar>> {
        self.0
            .get(c.contract_version())
            .and_then(|m| m.get(c.request_type()))
            .and_then(|m| m.get(c.client_id()))
    }

    fn keep(&mut self, c: &impl Tallied, cal: Option<Calendar>) {
        self.0
            .entry(c.contract_version().to_string())
            .or_default()
            .entry(c.request_type().to_string())
            .or_default()
            .insert(c.client_id().to_string(), cal);
    }
}

/// The calendar `c`'s timers count on: its contract version's policy for
/// its request type and client.
fn calendar_of(core: &Core, conn: &mut AnyConnection, c: &impl Tallied) -> Option<Calendar> {
    let (version, type_id, client_id) = (c.contract_version(), c.request_type(), c.client_id());
    let contract = core.contract_version(conn, version).ok()?;
    let client = (client_id != UNKNOWN_CLIENT).then_some(client_id);
    Policy::from_contract(&contract, type_id, client).map(|p| p.calendar().clone())
}

fn status_words(s: TicketStatus) -> &'static str {
    match s {
        TicketStatus::Open => "open",
        TicketStatus::Pending => "waiting on client",
        TicketStatus::Solved => "solved",
    }
}

fn timer_label(t: Timer, seq: u32) -> String {
    if t == Timer::NextResponse {
        format!("{} #{}", t.words(), seq)
    } else {
        t.words().to_string()
    }
}

fn timer_item(
    at: DateTime<Utc>,
    when: &dyn Fn(DateTime<Utc>) -> String,
    title: String,
) -> TimelineItem {
    TimelineItem {
        at,
        when: when(at),
        kind: "timer",
        title,
        text: String::new(),
        message_id: None,
        cut_from: None,
    }
}

/// What stopped the clock at `at`: the event recorded then.
fn why_paused(rows: &[EventRow], at: DateTime<Utc>) -> &'static str {
    let here = |m: &&EventRow| ceil(m.sent_at) == at;
    match rows.iter().rev().find(here) {
        Some(m) if m.awaiting_client => "the team asked the client and waits for the answer",
        Some(m) if m.status == Some(TicketStatus::Pending) => "marked waiting on client",
        Some(m) if m.status == Some(TicketStatus::Solved) => "solved",
        _ => "waiting on client",
    }
}

fn why_resumed(rows: &[EventRow], at: DateTime<Utc>) -> &'static str {
    let here = |m: &&EventRow| ceil(m.sent_at) == at;
    match rows.iter().rev().find(here) {
        Some(m) if m.direction == Some(Direction::Inbound) => "the client wrote",
        Some(m) if m.status == Some(TicketStatus::Open) => "reopened",
        _ => "resumed",
    }
}

/// The engine counts an event from the next whole second.
fn ceil(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    let whole = t.trunc_subsecs(0);
    if whole == t {
        t
    } else {
        whole + TimeDelta::seconds(1)
    }
}

fn explain_timer(
    t: &sla::TimerState,
    cal: &Calendar,
    calendar_name: &str,
    now: DateTime<Utc>,
) -> TimerExplained {
    let tz = cal.timezone();
    let when = |x: DateTime<Utc>| local_words(x, now, tz);
    let (until, outcome) = match (t.status, t.due_at, t.stopped_at) {
        (TimerStatus::Met, _, Some(stop)) => (stop, format!("met {}", when(stop))),
        (TimerStatus::Missed, Some(due), Some(stop)) => (
            due,
            format!("was due {}, answered {} (missed)", when(due), when(stop)),
        ),
        (TimerStatus::Breached, Some(due), _) => (due, format!("was due {} (breached)", when(due))),
        (TimerStatus::Running, Some(due), _) => (due, format!("due {}", when(due))),
        _ => (now, "paused: no due while waiting on the client".into()),
    };
    let e = crate::calendar::explain(cal, &t.segments, until);
    let span = |s: &crate::calendar::explain::Span| SpanView {
        from: s.start.with_timezone(&tz).format("%H:%M").to_string(),
        to: s.end.with_timezone(&tz).format("%H:%M").to_string(),
        length: span_words(s.length()),
    };
    TimerExplained {
        timer: timer_label(t.timer, t.seq),
        seq: t.seq,
        status: t.status.as_str().into(),
        started: when(t.segments[0].0),
        window: t.window.in_words(),
        calendar: format!("{calendar_name} ({})", tz.name()),
        outcome,
        days: e
            .days
            .iter()
            .map(|d| DayView {
                date: d.date.format("%a %-d %b %Y").to_string(),
                skipped: match d.skipped {
                    Some(Skip::Holiday) => "holiday",
                    Some(Skip::Closed) => "closed",
                    None => "",
                },
                counted: d.counted.iter().map(span).collect(),
                paused: d.paused.iter().map(span).collect(),
            })
            .collect(),
        counted: span_words(e.counted),
        paused: span_words(e.paused),
        truncated: e.truncated,
    }
}

/// The engine run on the stored events plus one hypothetical client message
/// now.
fn what_if(policy: &Policy, events: &[Event], now: DateTime<Utc>, tz: Tz) -> Vec<String> {
    let mut with = events.to_vec();
    with.push(Event::message(now, Direction::Inbound));
    let before = sla::evaluate(policy, events, now);
    let after = sla::evaluate(policy, &with, now);
    let when = |x: DateTime<Utc>| local_words(x, now, tz);
    let mut out = Vec::new();
    let response = after
        .timers
        .iter()
        .filter(|t| t.timer != Timer::Resolution && t.status == TimerStatus::Running)
        .filter_map(|t| t.due_at.map(|d| (t, d)))
        .min_by_key(|(_, d)| *d);
    match response {
        Some((t, due)) => {
            let already = before
                .timers
                .iter()
                .any(|b| b.timer == t.timer && b.seq == t.seq && b.status == TimerStatus::Running);
            out.push(format!(
                "If the client replies now, the {} is {}due {}.",
                t.timer.words(),
                if already { "still " } else { "" },
                when(due)
            ))
        }
        None => out.push("If the client replies now, no response timer starts (the contract sets no window for it).".into()),
    }
    let res_before = before.timers.iter().find(|t| t.timer == Timer::Resolution);
    let res_after = after.timers.iter().find(|t| t.timer == Timer::Resolution);
    if let (Some(b), Some(a)) = (res_before, res_after)
        && b.status != a.status
        && let Some(due) = a.due_at
    {
        out.push(format!(
            "The resolution timer resumes and is due {}.",
            when(due)
        ));
    }
    out
}

fn queue_row(
    c: &ConversationRow,
    pol: Option<&(Policy, Arc<Contract>)>,
    current: &Contract,
    now: DateTime<Utc>,
) -> QueueRow {
    let contract = pol.map_or(current, |p| p.1.as_ref());
    let tz = contract.info().timezone;
    let (mut left, mut late, mut due) = (String::new(), false, String::new());
    if let (Some(at), Some(p)) = (c.next_due_at, pol) {
        let cal = p.0.calendar();
        if at > now {
            left = format!(
                "{} left",
                span_words(cal.between(now, at).unwrap_or_default())
            );
        } else {
            late = true;
            left = format!(
                "{} late",
                span_words(cal.between(at, now).unwrap_or_default())
            );
        }
        due = format!("due {}", local_words(at, now, tz));
    }
    let (health_word, health_icon) = health_words(c.health);
    QueueRow {
        id: c.id,
        client_id: c.client_id.clone(),
        client: contract.client_name(&c.client_id),
        subject: c.subject.clone(),
        request_type: c.request_type.clone(),
        request_type_name: type_name(contract, &c.request_type),
        status: c.status.as_str().into(),
        health: c.health.as_str().into(),
        health_word,
        health_icon,
        timer: c.next_timer.map(Timer::words).unwrap_or_default().into(),
        left,
        late,
        due,
        due_at: c.next_due_at,
        paused: paused_words(c, now, tz),
        channel: c.channel.clone(),
        channel_mismatch: c.channel_mismatch,
        classification: c.classification.clone(),
    }
}
