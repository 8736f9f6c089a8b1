//! The read side: conversations as the API and dashboard show them. The JSON
//! shapes are documented in README.md ("HTTP API").

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Intake, Reads, ServiceError};
use crate::sla::{Direction, TimerStatus};
use crate::store::{self, ConversationFilter, ConversationRow, StoreError, TimerRow};

#[derive(Debug, Clone, Serialize)]
pub struct TimerView {
    pub timer: String,
    pub seq: i32,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub due_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationSummary {
    pub id: i64,
    pub channel: String,
    pub thread: String,
    pub client: String,
    pub subject: String,
    pub request_type: String,
    /// Why this request type: "urgent: keyword `outage` in subject".
    pub classification: String,
    pub contract_version: String,
    pub status: String,
    pub health: String,
    pub channel_mismatch: bool,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub solved_at: Option<DateTime<Utc>>,
    /// The earliest due among running timers.
    pub next_due_at: Option<DateTime<Utc>>,
    pub timers: Vec<TimerView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub id: i64,
    pub direction: String,
    pub from: String,
    pub subject: String,
    pub body: String,
    pub status: Option<String>,
    pub awaiting_client: bool,
    pub at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    pub timer: String,
    pub seq: i32,
    pub step: String,
    pub due_at: DateTime<Utc>,
    pub fired_at: DateTime<Utc>,
    pub late: bool,
    /// The latest instant a notification of this step is held until (the
    /// contact's working hours or digest): "deferred until Mon 09:00".
    pub deferred_until: Option<DateTime<Utc>>,
    pub notifications: Vec<NotificationView>,
}

/// One notification of an escalation step to one contact.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationView {
    pub contact: Option<String>,
    /// The target: `email`, `webhook`, `teams`, `pagerduty`, `opsgenie`, or
    /// `digest` (a warning collected into the contact's digest).
    pub kind: String,
    pub deferred_until: Option<DateTime<Utc>>,
    /// When it went out (for a digest warning: when its digest was made).
    pub sent_at: Option<DateTime<Utc>>,
    /// `sent`, `held` (for the contact's hours or digest), `failing` (the
    /// receiver did not answer or asked for later; retried), `refused` (the
    /// receiver refused for good; not retried until sent again from the
    /// Rejected page) or `pending`.
    pub outcome: &'static str,
    /// Delivery attempts so far.
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

impl NotificationView {
    fn of(r: &store::OutboxRow, now: DateTime<Utc>) -> NotificationView {
        let outcome = if r.sent_at.is_some() {
            "sent"
        } else if r.refused_at.is_some() {
            "refused"
        } else if r.not_before.is_some_and(|t| t > now) {
            "held"
        } else if r.last_error.is_some() {
            "failing"
        } else {
            "pending"
        };
        NotificationView {
            contact: r.contact.clone(),
            kind: r.kind.clone(),
            deferred_until: r.not_before,
            sent_at: r.sent_at,
            outcome,
            attempts: r.attempts,
            last_error: r.last_error.clone(),
        }
    }
}

/// Pause governance: time spent waiting on the client (README, "Urgency and focus").
#[derive(Debug, Clone, Default, Serialize)]
pub struct PauseView {
    /// Business time (on the request type's calendar) spent waiting on the
    /// client, up to now.
    pub paused_business_seconds: i64,
    /// The request type's `max_pause`, as written ("3d").
    pub max_pause: Option<String>,
    /// When `max_pause` ran out and the resolution timer resumed by itself.
    pub resumed_by_max_pause_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub summary: ConversationSummary,
    pub messages: Vec<MessageView>,
    pub escalations: Vec<StepView>,
    pub pause: PauseView,
}

fn timer_view(t: TimerRow) -> TimerView {
    TimerView {
        timer: t.kind.as_str().into(),
        seq: t.seq as i32,
        status: t.status.as_str().into(),
        started_at: t.started_at,
        due_at: t.due_at,
        stopped_at: t.stopped_at,
    }
}

fn summary(c: ConversationRow, timers: Vec<TimerRow>) -> ConversationSummary {
    let next_due_at = timers
        .iter()
        .filter(|t| t.status == TimerStatus::Running)
        .filter_map(|t| t.due_at)
        .min();
    let timers: Vec<TimerView> = timers.into_iter().map(timer_view).collect();
    ConversationSummary {
        id: c.id,
        channel: c.channel,
        thread: c.thread_key,
        client: c.client_id,
        subject: c.subject,
        request_type: c.request_type,
        classification: c.classification,
        contract_version: c.contract_version,
        status: c.status.as_str().into(),
        health: c.health.as_str().into(),
        channel_mismatch: c.channel_mismatch,
        opened_at: c.opened_at,
        updated_at: c.updated_at,
        solved_at: c.solved_at,
        next_due_at,
        timers,
    }
}

impl Reads {
    pub fn list_conversations(
        &self,
        filter: &ConversationFilter,
    ) -> Result<Vec<ConversationSummary>, ServiceError> {
        Ok(self.store().snapshot(|conn| -> Result<_, StoreError> {
            // Two queries per page, whatever its length: the page, then the
            // timers of all its conversations (one snapshot: they agree).
            let rows = store::list_conversations(conn, filter)?;
            let ids: Vec<i64> = rows.iter().map(|c| c.id).collect();
            let mut timers = store::timers_of_many(conn, &ids)?;
            Ok(rows
                .into_iter()
                .map(|c| {
                    let t = timers.remove(&c.id).unwrap_or_default();
                    summary(c, t)
                })
                .collect())
        })?)
    }

    /// `(id, subject, client id, status)` of each of `ids` that exists, in
    /// the order of `ids`: a list needs none of the messages.
    pub fn conversation_headlines(
        &self,
        ids: &[i64],
    ) -> Result<Vec<(i64, String, String, String)>, ServiceError> {
        let mut found = self
            .store()
            .with(|conn| store::conversations_by_ids(conn, ids))?;
        Ok(ids
            .iter()
            .filter_map(|id| found.remove(id))
            .map(|c| (c.id, c.subject, c.client_id, c.status.as_str().to_string()))
            .collect())
    }

    pub fn conversation_detail(&self, id: i64) -> Result<ConversationDetail, ServiceError> {
        // One snapshot: the conversation, its timers, messages and steps
        // are of the same moment.
        let now = self.now();
        self.store()
            .snapshot(|conn| -> Result<_, StoreError> {
                let Some(c) = store::conversation(conn, id)? else {
                    return Ok(None);
                };
                let timers = store::timers_of(conn, id)?;
                let messages = store::messages_of(conn, id)?
                    .into_iter()
                    .map(|m| MessageView {
                        id: m.id,
                        direction: m.direction.map_or("none", Direction::as_str).into(),
                        from: m.sender,
                        subject: m.subject,
                        body: m.body,
                        status: m.status.map(|s| s.as_str().into()),
                        awaiting_client: m.awaiting_client,
                        at: m.sent_at,
                        received_at: m.received_at,
                    })
                    .collect();
                let (escalations, pause) = self.steps_and_pause(conn, &c, now)?;
                Ok(Some(ConversationDetail {
                    summary: summary(c, timers),
                    messages,
                    escalations,
                    pause,
                }))
            })?
            .ok_or_else(|| ServiceError::NotFound(format!("conversation {id}")))
    }

    /// The steps fired for conversation `c` with their notifications, and
    /// its pause figures.
    pub(crate) fn steps_and_pause(
        &self,
        conn: &mut store::AnyConnection,
        c: &ConversationRow,
        now: DateTime<Utc>,
    ) -> Result<(Vec<StepView>, PauseView), StoreError> {
        let id = c.id;
        let sent = store::outbox::of_conversation(conn, id)?;
        let escalations = store::fired_steps_of(conn, id)?
            .into_iter()
            .map(|f| {
                let notifications: Vec<NotificationView> = sent
                    .iter()
                    .filter(|r| r.step.as_deref() == Some(f.step.as_str()))
                    .map(|r| NotificationView::of(r, now))
                    .collect();
                StepView {
                    timer: f.timer.as_str().into(),
                    seq: f.timer_seq as i32,
                    deferred_until: notifications.iter().filter_map(|n| n.deferred_until).max(),
                    notifications,
                    step: f.step,
                    due_at: f.due_at,
                    fired_at: f.fired_at,
                    late: f.late,
                }
            })
            .collect();
        // Only a contract version missing from the database fails here,
        // and then the rest of the detail is still worth showing.
        let pause = self.pause_view(conn, c).unwrap_or_else(|e| {
            tracing::warn!(conversation.id = id, error = %e, "cannot derive pause figures");
            PauseView::default()
        });
        Ok((escalations, pause))
    }
}

impl Reads {
    /// The pause figures as of now: re-derived from the events, since a
    /// pause in progress grows without any event.
    fn pause_view(
        &self,
        conn: &mut store::AnyConnection,
        c: &ConversationRow,
    ) -> Result<PauseView, ServiceError> {
        let contract = self.core.contract_version(conn, &c.contract_version)?;
        let client =
            (c.client_id != crate::contract::UNKNOWN_CLIENT).then_some(c.client_id.as_str());
        let Some(policy) = crate::sla::Policy::from_contract(&contract, &c.request_type, client)
        else {
            return Ok(PauseView::default());
        };
        let events = super::refresh::engine_events(&store::events_of(conn, c.id)?);
        // Never older than the stored state: a refresh may have run at a
        // time the clock of this reader has not reached (imports, tests).
        let now = self.now().max(c.updated_at);
        let state = crate::sla::evaluate(&policy, &events, now);
        Ok(PauseView {
            paused_business_seconds: state.paused.num_seconds(),
            max_pause: policy.max_pause().map(|d| d.to_string()),
            resumed_by_max_pause_at: state.pause_limit_resumed_at,
        })
    }
}

/// Input that could not be processed, as the API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedView {
    pub id: i64,
    pub channel: String,
    pub reason: String,
    pub detail: String,
    pub received_at: DateTime<Utc>,
    pub size: usize,
    /// The first 2 KiB, as text (lossy).
    pub preview: String,
    pub raw_url: String,
}

impl Reads {
    /// Rejected input, newest first.
    pub fn rejected_inputs(&self, limit: i64) -> Result<Vec<RejectedView>, ServiceError> {
        let rows = self.store().with(|c| store::rejected_inputs(c, limit))?;
        Ok(rows
            .into_iter()
            .map(|r| RejectedView {
                preview: String::from_utf8_lossy(&r.raw[..r.raw.len().min(2048)]).into_owned(),
                size: r.raw.len(),
                raw_url: format!("/api/v1/rejected/{}/raw", r.id),
                id: r.id,
                channel: r.channel,
                reason: r.reason,
                detail: r.detail,
                received_at: r.received_at,
            })
            .collect())
    }
}

impl Intake {
    /// Keeps input that could not be processed, raw, with why: the sender
    /// will not send it again, and nothing is lost.
    pub fn keep_rejected(
        &self,
        channel: &str,
        reason: &str,
        detail: &str,
        raw: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        Ok(self
            .store()
            .with(|c| store::reject_input(c, channel, reason, detail, raw, now))?)
    }
}

impl Reads {
    /// The exact bytes of one rejected input.
    pub fn rejected_raw(&self, id: i64) -> Result<Vec<u8>, ServiceError> {
        self.store()
            .with(|c| store::rejected_input(c, id))?
            .map(|r| r.raw)
            .ok_or_else(|| ServiceError::NotFound(format!("rejected input {id}")))
    }

    /// Whether the database answers within `timeout` (readiness).
    pub fn ready(&self, timeout: std::time::Duration) -> Result<(), ServiceError> {
        Ok(self.store().ping_within(timeout)?)
    }
}
