//! The read side: conversations as the API and dashboard show them. The JSON
//! shapes are documented in README.md ("HTTP API").

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Service, ServiceError};
use crate::store::{self, ConversationFilter, ConversationRow, TimerRow, from_db};

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
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub summary: ConversationSummary,
    pub messages: Vec<MessageView>,
    pub escalations: Vec<StepView>,
}

fn timer_view(t: TimerRow) -> TimerView {
    TimerView {
        timer: t.kind,
        seq: t.seq,
        status: t.status,
        started_at: from_db(t.started_at),
        due_at: t.due_at.map(from_db),
        stopped_at: t.stopped_at.map(from_db),
    }
}

fn summary(c: ConversationRow, timers: Vec<TimerRow>) -> ConversationSummary {
    let timers: Vec<TimerView> = timers.into_iter().map(timer_view).collect();
    let next_due_at = timers
        .iter()
        .filter(|t| t.status == "running")
        .filter_map(|t| t.due_at)
        .min();
    ConversationSummary {
        id: c.id,
        channel: c.channel,
        thread: c.thread_key,
        client: c.client_id,
        subject: c.subject,
        request_type: c.request_type,
        classification: c.classification,
        contract_version: c.contract_version,
        status: c.status,
        health: c.health,
        channel_mismatch: c.channel_mismatch,
        opened_at: from_db(c.opened_at),
        updated_at: from_db(c.updated_at),
        solved_at: c.solved_at.map(from_db),
        next_due_at,
        timers,
    }
}

impl Service {
    pub fn list_conversations(
        &self,
        filter: &ConversationFilter,
    ) -> Result<Vec<ConversationSummary>, ServiceError> {
        Ok(self.store().with(|conn| {
            // Two queries per page, whatever its length: the page, then the
            // timers of all its conversations.
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

    pub fn conversation_detail(&self, id: i64) -> Result<ConversationDetail, ServiceError> {
        self.store()
            .with(|conn| {
                let Some(c) = store::conversation(conn, id)? else {
                    return Ok(None);
                };
                let timers = store::timers_of(conn, id)?;
                let messages = store::messages_of(conn, id)?
                    .into_iter()
                    .map(|m| MessageView {
                        id: m.id,
                        direction: m.direction,
                        from: m.sender,
                        subject: m.subject,
                        body: m.body,
                        status: m.status,
                        awaiting_client: m.awaiting_client,
                        at: from_db(m.sent_at),
                        received_at: from_db(m.received_at),
                    })
                    .collect();
                let escalations = store::fired_steps_of(conn, id)?
                    .into_iter()
                    .map(|f| StepView {
                        timer: f.timer_kind,
                        seq: f.timer_seq,
                        step: f.step,
                        due_at: from_db(f.due_at),
                        fired_at: from_db(f.fired_at),
                        late: f.late,
                    })
                    .collect();
                Ok(Some(ConversationDetail {
                    summary: summary(c, timers),
                    messages,
                    escalations,
                }))
            })?
            .ok_or_else(|| ServiceError::NotFound(format!("conversation {id}")))
    }
}
