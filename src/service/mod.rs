//! Use cases: where the pure core meets storage and notification.
//!
//! - [`Service::record_event`]: a ticket event (or message) → stored once
//!   (idempotency key), its conversation opened or updated, timers derived by
//!   the SLA engine, due escalations fired — all in one transaction.
//! - [`Service::due_work`]: one scheduler step — conversations whose
//!   `next_check_at` has come are re-evaluated; breaches and escalation steps
//!   are recorded in the same transaction as their outbox rows, so a restart
//!   (even `kill -9`) neither repeats nor skips one.
//! - [`Service::solve`], and the read side for the API.
//!
//! Every function here is blocking (diesel); async callers use
//! `spawn_blocking`. Metrics are counted after the commit, from what the
//! transaction did, so a rolled-back attempt counts nothing.

mod contract;
mod email;
mod notifications;
mod views;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::contract::{Contract, Timer, UNKNOWN_CLIENT};
use crate::ingest::{FieldError, IncomingEvent};
use crate::metrics::Metrics;
use crate::notify::ack::AckTemplates;
use crate::sla::{
    self, ActionKind, ClassifyInput, Direction, Event, EventKind, Policy, TicketStatus, TimerStatus,
};
use crate::store::{
    self, AnyConnection, ConversationRow, EventRow, FiredStep, Inserted, NewConversation,
    NewMessage, Store, StoreError, TimerState,
};

pub use contract::{ContractErrors, ContractHandle, LoadedContract, Reload, record_version};
pub use email::{EmailSink, MailBatchReport, MailboxContext};
pub use views::{ConversationDetail, ConversationSummary, MessageView, StepView, TimerView};

/// How many due conversations one scheduler step takes (and locks) at most.
pub const DUE_BATCH: i64 = 200;

/// Steps and breaches that fell due longer ago than this are recorded (late)
/// but not notified: they come from importing old history (a first start on
/// a mailbox with last month's mail), where hundreds of alerts about long-gone
/// dues would bury the ones that matter. The dashboard, the API and the
/// metrics still show them.
const MAX_ALERT_AGE: chrono::Duration = chrono::Duration::hours(24);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The caller sent something wrong; each field is named.
    #[error("invalid input: {}", crate::ingest::webhook::summary(.0))]
    Invalid(Vec<FieldError>),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("contract version {0} is not in the database")]
    MissingContract(String),
}

impl From<diesel::result::Error> for ServiceError {
    fn from(e: diesel::result::Error) -> Self {
        ServiceError::Store(StoreError::Query(e))
    }
}

/// Why [`Service::record_event`]'s transaction did not commit: a failure,
/// or a key seen before (rolled back on purpose, so a duplicate leaves no
/// trace).
enum RecordError {
    Service(ServiceError),
    Duplicate,
}

impl From<ServiceError> for RecordError {
    fn from(e: ServiceError) -> Self {
        RecordError::Service(e)
    }
}

impl From<StoreError> for RecordError {
    fn from(e: StoreError) -> Self {
        RecordError::Service(e.into())
    }
}

impl From<diesel::result::Error> for RecordError {
    fn from(e: diesel::result::Error) -> Self {
        RecordError::Service(e.into())
    }
}

fn invalid(field: &str, problem: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(vec![FieldError {
        field: field.into(),
        problem: problem.into(),
    }])
}

/// What [`Service::record_event`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub message_id: i64,
    pub conversation_id: Option<i64>,
    /// The idempotency key was seen before: nothing changed.
    pub duplicate: bool,
    pub conversation_created: bool,
}

/// What one scheduler step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DueReport {
    pub conversations: usize,
    pub fired: usize,
    /// The next instant any conversation must be looked at.
    pub next_check: Option<DateTime<Utc>>,
}

/// Counted after commit.
#[derive(Debug, Default)]
struct Effects {
    stopped: Vec<Stopped>,
    breaches: Vec<Breach>,
    /// (request type, step label) of each escalation step fired.
    escalations: Vec<(String, String)>,
    lateness: Vec<f64>,
    notified: bool,
    /// The earliest `next_check_at` this work wrote.
    next_check: Option<DateTime<Utc>>,
    /// The first-response due of the conversation just refreshed, for its
    /// acknowledgement (not merged: it belongs to one refresh).
    first_response_due: Option<DateTime<Utc>>,
}

/// A timer that stopped in this transaction, for the metrics.
#[derive(Debug)]
struct Stopped {
    client: String,
    request_type: String,
    timer: Timer,
    met: bool,
    business_seconds: i64,
}

/// A breach recorded in this transaction, for the metrics.
#[derive(Debug)]
struct Breach {
    client: String,
    request_type: String,
    timer: Timer,
}

impl Effects {
    fn merge(&mut self, o: Effects) {
        self.stopped.extend(o.stopped);
        self.breaches.extend(o.breaches);
        self.escalations.extend(o.escalations);
        self.lateness.extend(o.lateness);
        self.notified |= o.notified;
        self.next_check = match (self.next_check, o.next_check) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Cheap to clone: shared state behind an `Arc`.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    contract: ContractHandle,
    /// Parsed contracts by version: conversations keep the version they
    /// opened under, and re-parsing a stored source on every event would waste
    /// the hot path.
    versions: Mutex<HashMap<String, Arc<Contract>>>,
    metrics: Metrics,
    outbox_wake: Arc<Notify>,
    scheduler_wake: Arc<Notify>,
    /// When the scheduler will look next (µs since the epoch; `i64::MAX`
    /// while it has nothing to wait for). A commit wakes it only when it
    /// wrote an earlier check: waking it after every event would cost a
    /// scheduler transaction per event for nothing.
    scheduler_next: std::sync::atomic::AtomicI64,
    public_url: String,
    message_id_domain: String,
    templates: AckTemplates,
    clock: Clock,
}

impl Service {
    pub fn new(
        store: Store,
        contract: ContractHandle,
        metrics: Metrics,
        public_url: &str,
        message_id_domain: String,
    ) -> Service {
        Service {
            inner: Arc::new(Inner {
                store,
                contract,
                versions: Mutex::new(HashMap::new()),
                metrics,
                outbox_wake: Arc::new(Notify::new()),
                scheduler_wake: Arc::new(Notify::new()),
                scheduler_next: std::sync::atomic::AtomicI64::new(i64::MIN),
                public_url: public_url.trim_end_matches('/').to_string(),
                message_id_domain,
                templates: AckTemplates::load(None).expect("the built-in templates compile"),
                clock: Clock::system(),
            }),
        }
    }

    /// Reads time from `clock` (tests pass a manual one). Call before the
    /// service is shared.
    pub fn with_clock(mut self, clock: Clock) -> Service {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.clock = clock,
            None => tracing::error!("clock set on a shared service; keeping the old one"),
        }
        self
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Uses these acknowledgement templates (from `config/templates/`).
    /// Call before the service is shared.
    pub fn with_templates(mut self, templates: AckTemplates) -> Service {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.templates = templates,
            None => tracing::error!("templates set on a shared service; keeping the built-in ones"),
        }
        self
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
    pub fn contract(&self) -> &ContractHandle {
        &self.inner.contract
    }
    /// Notified after a commit that enqueued notifications.
    pub fn outbox_wake(&self) -> Arc<Notify> {
        self.inner.outbox_wake.clone()
    }
    /// Notified after a commit that may have moved the earliest check.
    pub fn scheduler_wake(&self) -> Arc<Notify> {
        self.inner.scheduler_wake.clone()
    }

    /// The scheduler says when it will look next (`None`: nothing pending).
    pub fn set_scheduler_next(&self, at: Option<DateTime<Utc>>) {
        self.inner.scheduler_next.store(
            at.map_or(i64::MAX, |t| t.timestamp_micros()),
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    /// A scheduler step is running: wake it after any commit with a check.
    pub fn set_scheduler_next_unknown(&self) {
        self.inner
            .scheduler_next
            .store(i64::MIN, std::sync::atomic::Ordering::SeqCst);
    }

    fn wake_scheduler_if_earlier(&self, next_check: Option<DateTime<Utc>>) {
        let planned = self
            .inner
            .scheduler_next
            .load(std::sync::atomic::Ordering::SeqCst);
        if next_check.is_some_and(|t| t.timestamp_micros() < planned) {
            self.inner.scheduler_wake.notify_one();
        }
    }

    /// The contract a conversation opened under.
    fn contract_version(
        &self,
        conn: &mut AnyConnection,
        version: &str,
    ) -> Result<Arc<Contract>, ServiceError> {
        let current = self.inner.contract.current();
        if current.version == version {
            return Ok(current.contract.clone());
        }
        if let Some(c) = self.versions().get(version) {
            return Ok(c.clone());
        }
        let row = store::contract_version(conn, version)?
            .ok_or_else(|| ServiceError::MissingContract(version.into()))?;
        // It validated when it was stored; it can only fail if the validator
        // grew stricter since, and then the conversation cannot be evaluated.
        let parsed = crate::contract::parse(&row.source, &format!("contract {version}"))
            .map_err(|_| ServiceError::MissingContract(version.into()))?;
        let parsed = Arc::new(parsed);
        self.versions().insert(version.into(), parsed.clone());
        Ok(parsed)
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Contract>>> {
        self.inner
            .versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Stores an event once and brings its conversation up to date.
    pub fn record_event(
        &self,
        ev: IncomingEvent,
        raw: Option<Vec<u8>>,
        now: DateTime<Utc>,
    ) -> Result<Recorded, ServiceError> {
        let current = self.inner.contract.current();
        let contract = &current.contract;
        if contract.channel(&ev.channel).is_none() {
            let known: Vec<&str> = contract.channels().iter().map(|c| c.id.as_str()).collect();
            return Err(invalid(
                "channel",
                format!(
                    "`{}` is not a channel of the contract (declared: {})",
                    ev.channel,
                    known.join(", ")
                ),
            ));
        }
        let client_id: Option<String> = match (&ev.client, &ev.client_hint) {
            (Some(c), _) if c == UNKNOWN_CLIENT || contract.client(c).is_some() => Some(c.clone()),
            (Some(c), _) => {
                return Err(invalid(
                    "client",
                    format!("`{c}` is not a client of the contract"),
                ));
            }
            (None, Some(h)) if contract.client(h).is_some() => Some(h.clone()),
            _ => contract.client_id_for_email(&ev.from).map(str::to_string),
        };
        let direction = ev.direction.map(Direction::as_str).unwrap_or("none");
        let seen = |conn: &mut store::AnyConnection| {
            store::message_by_external_id(conn, &ev.channel, &ev.idempotency_key)
        };
        let outcome = self.inner.store.transaction(|conn| {
            // A duplicate changes nothing: not even the conversation its
            // (possibly different) thread would open.
            if seen(conn)?.is_some() {
                return Err(RecordError::Duplicate);
            }
            let mut mismatch = None;
            let mut conversation_created = false;
            let conversation = match store::conversation_by_thread(conn, &ev.channel, &ev.thread)? {
                Some(c) => Some(c),
                None => match &client_id {
                    // The contract says to ignore this sender: keep the
                    // message (nothing is lost) but track nothing.
                    None => None,
                    Some(client_id) => {
                        let (row, created, mismatched) = open_conversation(
                            conn,
                            contract,
                            &Opening {
                                channel: &ev.channel,
                                thread_key: &ev.thread,
                                client_id,
                                subject: &ev.subject,
                                body: &ev.body,
                                priority: ev.priority.as_deref(),
                                recipients: &[],
                                opener: &ev.from,
                                at: ev.at,
                            },
                            now,
                        )?;
                        conversation_created = created;
                        mismatch = mismatched;
                        Some(row)
                    }
                },
            };
            let inserted = store::insert_message(
                conn,
                &NewMessage {
                    conversation_id: conversation.as_ref().map(|c| c.id),
                    channel: ev.channel.clone(),
                    external_id: ev.idempotency_key.clone(),
                    direction: ev.direction,
                    sender: ev.from.clone(),
                    recipients: String::new(),
                    subject: ev.subject.clone(),
                    body: ev.body.clone(),
                    message_id: None,
                    in_reply_to: None,
                    refs: String::new(),
                    raw: raw.clone(),
                    sent_at: ev.at,
                    received_at: now,
                    status: ev.status,
                    awaiting_client: ev.awaiting_client,
                },
            )?;
            // Another request stored the same key since the check above:
            // roll back what this one opened.
            if let Inserted::Duplicate(_) = inserted {
                return Err(RecordError::Duplicate);
            }
            let mut effects = Effects::default();
            if let Some(conv) = &conversation {
                effects = self.refresh(conn, conv, now)?;
            }
            Ok((
                Recorded {
                    message_id: inserted.id(),
                    conversation_id: conversation.as_ref().map(|c| c.id),
                    duplicate: false,
                    conversation_created,
                },
                effects,
                mismatch,
            ))
        });
        let (recorded, effects, mismatch) = match outcome {
            Ok(done) => done,
            Err(RecordError::Service(e)) => return Err(e),
            Err(RecordError::Duplicate) => {
                let (message_id, conversation_id) = self
                    .inner
                    .store
                    .with(|conn| seen(conn))?
                    .ok_or_else(|| ServiceError::NotFound("the duplicate's message".into()))?;
                return Ok(Recorded {
                    message_id,
                    conversation_id,
                    duplicate: true,
                    conversation_created: false,
                });
            }
        };
        if !recorded.duplicate {
            self.inner
                .metrics
                .messages
                .with_label_values(&[&ev.channel, direction])
                .inc();
            if let Some(t) = mismatch {
                self.inner
                    .metrics
                    .channel_mismatches
                    .with_label_values(&[&t, &ev.channel])
                    .inc();
            }
            self.apply(effects);
        }
        Ok(recorded)
    }

    /// Marks a conversation solved (API or dashboard action).
    pub fn solve(&self, id: i64, now: DateTime<Utc>) -> Result<(), ServiceError> {
        let effects = self.inner.store.transaction(|conn| {
            let conv = store::conversation(conn, id)?
                .ok_or_else(|| ServiceError::NotFound(format!("conversation {id}")))?;
            store::insert_message(
                conn,
                &NewMessage {
                    conversation_id: Some(id),
                    channel: conv.channel.clone(),
                    external_id: format!("solve:{id}:{}", now.timestamp_micros()),
                    direction: None,
                    sender: "api".into(),
                    recipients: String::new(),
                    subject: String::new(),
                    body: String::new(),
                    message_id: None,
                    in_reply_to: None,
                    refs: String::new(),
                    raw: None,
                    sent_at: now,
                    received_at: now,
                    status: Some(TicketStatus::Solved),
                    awaiting_client: false,
                },
            )?;
            self.refresh(conn, &conv, now)
        })?;
        self.apply(effects);
        Ok(())
    }

    /// One scheduler step: every conversation whose check time has come is
    /// re-evaluated at `now`; what fell due fires.
    pub fn due_work(&self, now: DateTime<Utc>) -> Result<DueReport, ServiceError> {
        let (count, fired, effects) = self.inner.store.transaction(|conn| {
            let due = store::claim_due_conversations(conn, now, DUE_BATCH)?;
            let mut all = Effects::default();
            let mut fired = 0;
            for conv in &due {
                let e = self.refresh(conn, conv, now)?;
                fired += e.escalations.len() + e.breaches.len();
                all.merge(e);
            }
            Ok::<_, ServiceError>((due.len(), fired, all))
        })?;
        self.apply(effects);
        let next_check = self.inner.store.with(store::earliest_check)?;
        Ok(DueReport {
            conversations: count,
            fired,
            next_check,
        })
    }

    /// Re-derives a conversation's timers from its events at `now`, records
    /// and notifies what fell due and was not recorded yet, and stores the
    /// new state. Runs inside the caller's transaction.
    fn refresh(
        &self,
        conn: &mut AnyConnection,
        conv: &ConversationRow,
        now: DateTime<Utc>,
    ) -> Result<Effects, ServiceError> {
        let contract = self.contract_version(conn, &conv.contract_version)?;
        let client = (conv.client_id != UNKNOWN_CLIENT).then_some(conv.client_id.as_str());
        let Some(policy) = Policy::from_contract(&contract, &conv.request_type, client) else {
            return Err(ServiceError::MissingContract(format!(
                "{} (request type {})",
                conv.contract_version, conv.request_type
            )));
        };
        let messages = store::events_of(conn, conv.id)?;
        let state = sla::evaluate(&policy, &events_of(&messages), now);
        let before = store::timers_of(conn, conv.id)?;
        let mut effects = Effects::default();
        for t in &state.timers {
            let was = before.iter().find(|b| b.kind == t.timer && b.seq == t.seq);
            let newly_stopped = matches!(t.status, TimerStatus::Met | TimerStatus::Missed)
                && was.is_none_or(|w| w.status != t.status);
            if newly_stopped {
                effects.stopped.push(Stopped {
                    client: conv.client_id.clone(),
                    request_type: conv.request_type.clone(),
                    timer: t.timer,
                    met: t.status == TimerStatus::Met,
                    business_seconds: t.elapsed.num_seconds(),
                });
            }
            let unchanged = was.is_some_and(|w| {
                (w.status, w.started_at, w.due_at, w.stopped_at)
                    == (t.status, t.started_at, t.due_at, t.stopped_at)
            });
            // Timer writes only on change: most events move one timer.
            if !unchanged {
                store::save_timer(
                    conn,
                    &TimerState {
                        conversation_id: conv.id,
                        kind: t.timer,
                        seq: t.seq,
                        status: t.status,
                        started_at: t.started_at,
                        due_at: t.due_at,
                        stopped_at: t.stopped_at,
                    },
                )?;
            }
        }
        let fired: BTreeSet<String> = store::fired_steps_of(conn, conv.id)?
            .into_iter()
            .map(|f| f.step)
            .collect();
        for action in state.actions.iter().filter(|a| !fired.contains(&a.key)) {
            let late = (now - action.at).num_milliseconds() > 1_000;
            let recorded = store::record_fired_step(
                conn,
                &FiredStep {
                    conversation_id: conv.id,
                    timer: action.timer,
                    timer_seq: action.seq,
                    step: action.key.clone(),
                    due_at: action.at,
                    fired_at: now,
                    late,
                },
            )?;
            if !recorded {
                continue;
            }
            effects
                .lateness
                .push((now - action.at).num_milliseconds() as f64 / 1000.0);
            match &action.kind {
                ActionKind::Step { .. } => effects
                    .escalations
                    .push((conv.request_type.clone(), action.step.clone())),
                ActionKind::Breach => effects.breaches.push(Breach {
                    client: conv.client_id.clone(),
                    request_type: conv.request_type.clone(),
                    timer: action.timer,
                }),
            }
            let contacts = &action.notify;
            if !contacts.is_empty() && now - action.at > MAX_ALERT_AGE {
                tracing::info!(
                    conversation.id = conv.id,
                    step = %action.key,
                    fell_due = %action.at,
                    "step recorded without alert: it fell due more than a day ago"
                );
            } else if !contacts.is_empty() {
                let n = notifications::enqueue_alerts(
                    conn,
                    &notifications::AlertContext {
                        contract: &contract,
                        conversation: conv,
                        state: &state,
                        action,
                        late,
                        now,
                        public_url: &self.inner.public_url,
                        message_id_domain: &self.inner.message_id_domain,
                    },
                    contacts,
                )?;
                effects.notified |= n > 0;
            }
        }
        let solved_at = (state.status == TicketStatus::Solved).then(|| {
            messages
                .iter()
                .rev()
                .find(|m| m.status == Some(TicketStatus::Solved))
                .map(|m| m.sent_at)
                .unwrap_or(now)
        });
        store::update_conversation_state(
            conn,
            conv.id,
            state.status,
            state.health,
            state.next_change,
            solved_at,
            now,
        )?;
        effects.next_check = state.next_change;
        effects.first_response_due = state
            .timers
            .iter()
            .find(|t| t.timer == Timer::FirstResponse)
            .and_then(|t| t.due_at);
        Ok(effects)
    }

    fn apply(&self, e: Effects) {
        let m = &self.inner.metrics;
        for t in e.stopped {
            if t.met {
                m.sla_met
                    .with_label_values(&[&t.client, &t.request_type, t.timer.as_str()])
                    .inc();
            }
            // Missed responses go into the response-time histogram too.
            if t.timer != Timer::Resolution {
                m.sla_response
                    .with_label_values(&[&t.request_type, t.timer.as_str()])
                    .observe(t.business_seconds as f64);
            }
        }
        for b in e.breaches {
            m.sla_breaches
                .with_label_values(&[&b.client, &b.request_type, b.timer.as_str()])
                .inc();
        }
        for (rtype, step) in e.escalations {
            m.escalations.with_label_values(&[&rtype, &step]).inc();
        }
        for l in e.lateness {
            m.scheduler_lateness.observe(l.max(0.0));
        }
        if e.notified {
            self.inner.outbox_wake.notify_one();
        }
        self.wake_scheduler_if_earlier(e.next_check);
    }

    /// Refreshes the `keepword_conversations_open` gauge from the database.
    pub fn refresh_open_gauge(&self) -> Result<(), ServiceError> {
        let counts = self.inner.store.with(store::open_counts)?;
        let g = &self.inner.metrics.conversations_open;
        g.reset();
        for (rtype, health, n) in counts {
            g.with_label_values(&[&rtype, &health]).set(n);
        }
        Ok(())
    }
}

/// What a new conversation is opened from.
pub(crate) struct Opening<'a> {
    pub channel: &'a str,
    pub thread_key: &'a str,
    pub client_id: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub priority: Option<&'a str>,
    pub recipients: &'a [String],
    /// The opening sender's address, lower-case; empty when there is none.
    pub opener: &'a str,
    pub at: DateTime<Utc>,
}

/// Classifies and opens the conversation of `(channel, thread_key)` under the
/// contract version in force, or finds the one a concurrent writer opened:
/// `(row, created, request type when created through a channel it does not
/// list)`.
pub(crate) fn open_conversation(
    conn: &mut AnyConnection,
    contract: &Contract,
    o: &Opening<'_>,
    now: DateTime<Utc>,
) -> Result<(ConversationRow, bool, Option<String>), ServiceError> {
    let class = sla::classify(
        contract,
        &ClassifyInput {
            channel: o.channel,
            subject: o.subject,
            body: o.body,
            priority: o.priority,
            recipients: o.recipients,
            client_id: Some(o.client_id),
        },
    );
    let name = contract
        .client(o.client_id)
        .map(|c| c.name.clone())
        .unwrap_or_else(|| "Unknown senders".into());
    store::upsert_client(conn, o.client_id, &name, now)?;
    let (id, created) = store::open_conversation(
        conn,
        &NewConversation {
            channel: o.channel.to_string(),
            thread_key: o.thread_key.to_string(),
            client_id: o.client_id.to_string(),
            subject: o.subject.to_string(),
            request_type: class.request_type.clone(),
            classification: class.rule,
            contract_version: contract.version().to_string(),
            status: TicketStatus::Open,
            channel_mismatch: class.channel_mismatch,
            opened_at: o.at,
            updated_at: now,
            subject_key: crate::ingest::email::normalize_subject(o.subject),
            opener: o.opener.to_lowercase(),
            last_message_at: Some(o.at),
        },
    )?;
    let row = store::conversation(conn, id)?
        .ok_or_else(|| ServiceError::NotFound(format!("conversation {id}")))?;
    let mismatch = (created && class.channel_mismatch).then_some(class.request_type);
    Ok((row, created, mismatch))
}

/// Stored rows → engine events. A row may carry a message, a status, or both
/// (a comment that also closes the ticket): the message comes first.
fn events_of(messages: &[EventRow]) -> Vec<Event> {
    let mut events = Vec::with_capacity(messages.len());
    for m in messages {
        if let Some(direction) = m.direction {
            events.push(Event {
                at: m.sent_at,
                kind: EventKind::Message {
                    direction,
                    awaiting_client: m.awaiting_client,
                },
            });
        }
        if let Some(status) = m.status {
            events.push(Event {
                at: m.sent_at,
                kind: EventKind::Status(status),
            });
        }
    }
    events
}
