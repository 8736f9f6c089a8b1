//! Re-deriving a conversation's timers from its events, firing what fell
//! due, and counting it after the commit.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::*;

/// Counted after commit.
#[derive(Debug, Default)]
pub(super) struct Effects {
    pub(super) stopped: Vec<Stopped>,
    pub(super) breaches: Vec<Breach>,
    /// (request type, step label) of each escalation step fired.
    pub(super) escalations: Vec<(String, String)>,
    pub(super) lateness: Vec<f64>,
    pub(super) notified: bool,
    /// The earliest `next_check_at` this work wrote.
    pub(super) next_check: Option<DateTime<Utc>>,
    /// The first-response due of the conversation just refreshed, for its
    /// acknowledgement (not merged: it belongs to one refresh).
    pub(super) first_response_due: Option<DateTime<Utc>>,
    /// Conversations this work changed (live pages hear of them).
    pub(super) touched: Vec<i64>,
    /// Notifications held for working hours or a digest, by reason.
    pub(super) deferred: Vec<&'static str>,
    /// The earliest digest time a warning enqueued here waits for.
    pub(super) digest_at: Option<DateTime<Utc>>,
}

/// What refreshes derived, written once for the lot after they ran (no
/// refresh reads another conversation's state): on PostgreSQL a round trip
/// for all timers and one for all conversations, not one per conversation.
#[derive(Default)]
struct Writes {
    timers: Vec<TimerUpdate>,
    states: Vec<(i64, store::DerivedState)>,
}

impl Writes {
    fn save(&self, conn: &mut AnyConnection, now: DateTime<Utc>) -> Result<(), ServiceError> {
        store::save_timers(conn, &self.timers)?;
        store::update_conversation_states(conn, &self.states, now)?;
        Ok(())
    }
}

/// What a refresh reads of a conversation before evaluating it.
struct Loaded {
    events: Vec<EventRow>,
    timers: Vec<store::TimerRow>,
    fired: Vec<FiredStep>,
    /// The state already in its row, when the caller wrote it in this
    /// transaction: written again only if the evaluation differs.
    written: Option<store::DerivedState>,
    /// The evaluation at this `now` of exactly these events, when the
    /// caller made it already: not run twice.
    evaluated: Option<sla::ConversationState>,
}

/// A conversation a batch opened, known without reading it back: its events
/// in the engine's order (`sent_at`, then id; as stored, to the
/// microsecond), no timers or fired steps yet, and the state its row was
/// inserted with.
pub(super) struct Opened {
    pub(super) events: Vec<EventRow>,
    pub(super) first: FirstState,
}

/// A new conversation's first evaluation ([`Deadlines::initial_state`]) and
/// what its row keeps of it.
#[derive(Debug, Clone)]
pub(super) struct FirstState {
    pub(super) row: store::DerivedState,
    pub(super) evaluated: sla::ConversationState,
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A timer that stopped in this transaction, for the metrics.
#[derive(Debug)]
pub(super) struct Stopped {
    client: String,
    request_type: String,
    timer: Timer,
    met: bool,
    business_seconds: i64,
    /// Business time spent waiting on the client (resolution only).
    paused_seconds: i64,
}

/// A breach recorded in this transaction, for the metrics.
#[derive(Debug)]
pub(super) struct Breach {
    client: String,
    request_type: String,
    timer: Timer,
}

impl Effects {
    pub(super) fn merge(&mut self, o: Effects) {
        self.stopped.extend(o.stopped);
        self.breaches.extend(o.breaches);
        self.escalations.extend(o.escalations);
        self.lateness.extend(o.lateness);
        self.notified |= o.notified;
        self.touched.extend(o.touched);
        self.next_check = match (self.next_check, o.next_check) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.deferred.extend(o.deferred);
        self.digest_at = earliest(self.digest_at, o.digest_at);
    }
}

impl Deadlines {
    /// Re-derives a conversation's timers from its events at `now`, records
    /// and notifies what fell due and was not recorded yet, and stores the
    /// new state. Runs inside the caller's transaction.
    pub(super) fn refresh(
        &self,
        conn: &mut AnyConnection,
        conv: &ConversationRow,
        now: DateTime<Utc>,
    ) -> Result<Effects, ServiceError> {
        let stored = Loaded {
            events: store::events_of(conn, conv.id)?,
            timers: store::timers_of(conn, conv.id)?,
            fired: store::fired_steps_of(conn, conv.id)?,
            written: None,
            evaluated: None,
        };
        let mut writes = Writes::default();
        let effects = self.refresh_loaded(conn, conv, stored, now, &mut writes)?;
        writes.save(conn, now)?;
        Ok(effects)
    }

    /// [`Self::refresh`] for every conversation a batch touched, each once,
    /// with their events, timers and fired steps read in three queries for
    /// the lot: a mail batch that adds 300 messages to 80 conversations
    /// evaluates 80 conversations, not 300. Conversations in `opened` are not
    /// read back. Effects are in `convs` order.
    pub(super) fn refresh_many(
        &self,
        conn: &mut AnyConnection,
        convs: &[&ConversationRow],
        mut opened: HashMap<i64, Opened>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Effects>, ServiceError> {
        let ids: Vec<i64> = convs
            .iter()
            .map(|c| c.id)
            .filter(|id| !opened.contains_key(id))
            .collect();
        let mut events = store::events_of_many(conn, &ids)?;
        let mut timers = store::timers_of_many(conn, &ids)?;
        let mut fired = store::fired_steps_of_many(conn, &ids)?;
        let mut out = Vec::with_capacity(convs.len());
        let mut writes = Writes::default();
        for conv in convs {
            let stored = match opened.remove(&conv.id) {
                Some(o) => Loaded {
                    events: o.events,
                    timers: Vec::new(),
                    fired: Vec::new(),
                    written: Some(o.first.row),
                    evaluated: Some(o.first.evaluated),
                },
                None => Loaded {
                    events: events.remove(&conv.id).unwrap_or_default(),
                    timers: timers.remove(&conv.id).unwrap_or_default(),
                    fired: fired.remove(&conv.id).unwrap_or_default(),
                    written: None,
                    evaluated: None,
                },
            };
            out.push(self.refresh_loaded(conn, conv, stored, now, &mut writes)?);
        }
        writes.save(conn, now)?;
        Ok(out)
    }

    fn refresh_loaded(
        &self,
        conn: &mut AnyConnection,
        conv: &ConversationRow,
        stored: Loaded,
        now: DateTime<Utc>,
        writes: &mut Writes,
    ) -> Result<Effects, ServiceError> {
        let contract = self.core.contract_version(conn, &conv.contract_version)?;
        let messages = stored.events;
        let state = match stored.evaluated {
            Some(state) => state,
            None => evaluate(
                &contract,
                &conv.request_type,
                &conv.client_id,
                &messages,
                now,
            )?,
        };
        // A long conversation has hundreds of next-response timers: look
        // them up by key, not by scanning.
        let before: std::collections::HashMap<(Timer, u32), &store::TimerRow> =
            stored.timers.iter().map(|t| ((t.kind, t.seq), t)).collect();
        let mut effects = Effects {
            touched: vec![conv.id],
            ..Effects::default()
        };
        let mut stopped_now = Vec::new();
        for t in &state.timers {
            let was = before.get(&(t.timer, t.seq)).copied();
            let newly_stopped = matches!(t.status, TimerStatus::Met | TimerStatus::Missed)
                && was.is_none_or(|w| w.status != t.status);
            if newly_stopped {
                stopped_now.push((t.timer, t.seq));
                effects.stopped.push(Stopped {
                    client: conv.client_id.clone(),
                    request_type: conv.request_type.clone(),
                    timer: t.timer,
                    met: t.status == TimerStatus::Met,
                    business_seconds: t.elapsed.num_seconds(),
                    paused_seconds: state.paused.num_seconds(),
                });
            }
            let unchanged = was.is_some_and(|w| {
                (w.status, w.started_at, w.due_at, w.stopped_at)
                    == (t.status, t.started_at, t.due_at, t.stopped_at)
            });
            // Timer writes only on change: most events move one timer.
            // Written by the caller, with the rest of its batch.
            if !unchanged {
                writes.timers.push(TimerUpdate {
                    conversation_id: conv.id,
                    kind: t.timer,
                    seq: t.seq,
                    status: t.status,
                    started_at: t.started_at,
                    due_at: t.due_at,
                    stopped_at: t.stopped_at,
                });
            }
        }
        let fired: BTreeSet<String> = stored.fired.into_iter().map(|f| f.step).collect();
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
                    .push((conv.request_type.clone(), action.step.to_string())),
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
                        public_url: self.core.public_url(),
                        message_id_domain: self.core.message_id_domain(),
                    },
                    contacts,
                )?;
                effects.notified |= n.rows > 0;
                effects.deferred.extend(n.deferred);
                effects.digest_at = earliest(effects.digest_at, n.digest_at);
            }
        }
        // Incidents opened in PagerDuty or Opsgenie close when their timer
        // stops: the team answered, or the conversation was solved.
        for (timer, seq) in stopped_now {
            let n =
                notifications::enqueue_resolves(conn, &contract, conv, &state, timer, seq, now)?;
            effects.notified |= n > 0;
        }
        let derived = derived_state(&state, &messages, now);
        if stored.written.as_ref() != Some(&derived) {
            writes.states.push((conv.id, derived));
        }
        effects.next_check = state.next_change;
        effects.first_response_due = state
            .timers
            .iter()
            .find(|t| t.timer == Timer::FirstResponse)
            .and_then(|t| t.due_at);
        Ok(effects)
    }
}

impl AfterCommit {
    pub(super) fn apply(&self, mut e: Effects) {
        self.changes.committed(std::mem::take(&mut e.touched));
        let m = self.metrics();
        for t in e.stopped {
            if t.met {
                m.sla_met
                    .with_label_values(&[&t.client, &t.request_type, t.timer.as_str()])
                    .inc();
            }
            if t.timer == Timer::Resolution {
                m.sla_paused
                    .with_label_values(&[&t.request_type])
                    .observe(t.paused_seconds as f64);
            }
            // Missed responses go into the response-time histogram too;
            // resolutions and update cycles are not responses.
            if matches!(t.timer, Timer::FirstResponse | Timer::NextResponse) {
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
        for reason in e.deferred {
            m.notifications_deferred.with_label_values(&[reason]).inc();
        }
        if e.notified {
            self.outbox_wake.notify_one();
        }
        self.plan
            .wake_if_earlier(earliest(e.next_check, e.digest_at));
    }
}

impl Reads {
    /// Refreshes the `keepword_conversations_open` gauge from the database.
    pub fn refresh_open_gauge(&self) -> Result<(), ServiceError> {
        let counts = self.store().with(store::open_counts)?;
        let g = &self.metrics().conversations_open;
        g.reset();
        for (rtype, health, n) in counts {
            g.with_label_values(&[&rtype, &health]).set(n);
        }
        Ok(())
    }
}

/// The SLA engine's view of a conversation with these events, under the
/// contract version it was opened with.
fn evaluate(
    contract: &Contract,
    request_type: &str,
    client_id: &str,
    messages: &[EventRow],
    now: DateTime<Utc>,
) -> Result<sla::ConversationState, ServiceError> {
    let client = (client_id != UNKNOWN_CLIENT).then_some(client_id);
    let Some(policy) = Policy::from_contract(contract, request_type, client) else {
        return Err(ServiceError::MissingContract(format!(
            "{} (request type {request_type})",
            contract.version()
        )));
    };
    Ok(sla::evaluate(&policy, &engine_events(messages), now))
}

/// What the conversation's row keeps of an evaluation.
fn derived_state(
    state: &sla::ConversationState,
    messages: &[EventRow],
    now: DateTime<Utc>,
) -> store::DerivedState {
    let solved_at = (state.status == TicketStatus::Solved).then(|| {
        messages
            .iter()
            .rev()
            .find(|m| m.status == Some(TicketStatus::Solved))
            .map(|m| m.sent_at)
            .unwrap_or(now)
    });
    store::DerivedState {
        status: state.status,
        health: state.health,
        next_check_at: state.next_change,
        solved_at,
        // Derived from the events just read: no extra write per message.
        last_message_at: messages.iter().map(|m| m.sent_at).max(),
        next_due: next_due(state),
        paused_since: paused_since(state, messages),
    }
}

impl Deadlines {
    /// The state a conversation not stored yet will have once it holds
    /// `messages` (in the engine's order), so that its row is inserted with
    /// it rather than updated right after.
    pub(super) fn initial_state(
        &self,
        conn: &mut AnyConnection,
        new: &store::NewConversation,
        messages: &[EventRow],
        now: DateTime<Utc>,
    ) -> Result<FirstState, ServiceError> {
        let contract = self.core.contract_version(conn, &new.contract_version)?;
        let evaluated = evaluate(&contract, &new.request_type, &new.client_id, messages, now)?;
        Ok(FirstState {
            row: derived_state(&evaluated, messages, now),
            evaluated,
        })
    }
}

/// The due the queue sorts by: the earliest among timers still counting
/// (a breached one is still counting, and the most late sorts first).
fn next_due(state: &sla::ConversationState) -> Option<(DateTime<Utc>, Timer)> {
    if state.status == TicketStatus::Solved {
        return None;
    }
    state
        .timers
        .iter()
        .filter(|t| matches!(t.status, TimerStatus::Running | TimerStatus::Breached))
        .filter_map(|t| t.due_at.map(|d| (d, t.timer)))
        .min_by_key(|(d, _)| *d)
}

/// Since when the conversation waits on the client: where its resolution
/// timer paused, or (no resolution window) the event that made it pending.
fn paused_since(state: &sla::ConversationState, messages: &[EventRow]) -> Option<DateTime<Utc>> {
    if state.status != TicketStatus::Pending {
        return None;
    }
    let paused = state
        .timers
        .iter()
        .filter(|t| t.status == TimerStatus::Paused)
        .filter_map(|t| t.segments.last().and_then(|s| s.1))
        .max();
    paused.or_else(|| {
        messages
            .iter()
            .rev()
            .find(|m| m.awaiting_client || m.status == Some(TicketStatus::Pending))
            .map(|m| m.sent_at)
    })
}

/// Loaded rows → engine events. A row may carry a message, a status, or both
/// (a comment that also closes the ticket): the message comes first.
pub(super) fn engine_events(messages: &[EventRow]) -> Vec<Event> {
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
