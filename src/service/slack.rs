//! Slack's part of the events front end: the acknowledgement a client's new
//! conversation gets in its thread, built in the transaction that opened it
//! (an outbox row and the team's copy), and the Slack deliveries that failed
//! for good, for the Connections page.

use chrono::{DateTime, Duration, Utc};

use super::{Intake, Reads, ServiceError};
use crate::contract::{ChannelKind, Contract, UNKNOWN_CLIENT};
use crate::outbox;
use crate::sla::Direction;
use crate::store::{self, AnyConnection, ConversationRow, NewMessage, NewOutbox};

/// Acknowledge only fresh messages: a backlog Slack replays after an outage
/// of hours is answered by the team, not by a bot.
const ACK_MAX_AGE: Duration = Duration::hours(1);

/// The opening of a conversation an acknowledgement answers.
pub(super) struct SlackOpening<'a> {
    pub conversation: &'a ConversationRow,
    pub direction: Option<Direction>,
    pub at: DateTime<Utc>,
    pub first_response_due: Option<DateTime<Utc>>,
    pub status_token: Option<&'a str>,
}

/// What the batch stores with the acknowledgements it built: the outbox
/// rows and, in the same order, the team's copies.
#[derive(Default)]
pub(super) struct SlackAcks {
    pub outbox: Vec<NewOutbox>,
    pub copies: Vec<NewMessage>,
    pub failed: usize,
}

/// Whether `channel` is one of the contract's Slack channels.
pub(super) fn is_slack(contract: &Contract, channel: &str) -> bool {
    contract
        .channel(channel)
        .is_some_and(|c| c.kind == ChannelKind::Slack)
}

impl Intake {
    /// Builds the acknowledgement of a client's new Slack conversation: a
    /// reply in its thread with the promise, the due in the contract's zone
    /// and the status link. Nothing for the team's or a bot's opening, an
    /// old message, or a type that promises no first response.
    pub(super) fn slack_ack(
        &self,
        contract: &Contract,
        o: SlackOpening<'_>,
        now: DateTime<Utc>,
        acks: &mut SlackAcks,
    ) {
        let conv = o.conversation;
        if o.direction != Some(Direction::Inbound) || o.at < now - ACK_MAX_AGE {
            return;
        }
        let Some(due) = o.first_response_due else {
            return;
        };
        let Some((channel, thread_ts)) = conv.thread_key.split_once(':') else {
            return;
        };
        let client = (conv.client_id != UNKNOWN_CLIENT).then_some(conv.client_id.as_str());
        let mut cx = outbox::templates::ack_context(
            contract,
            &conv.request_type,
            client,
            &conv.channel,
            &conv.subject,
            due,
            &self.core.contract_url(contract),
            &contract.info().name,
        );
        let status_url = o.status_token.map(|t| self.core.status_url(t));
        cx.status_url = status_url.clone();
        let text = match self.core.templates().render_slack(&cx) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, conversation.id = conv.id, "Slack acknowledgement template failed");
                acks.failed += 1;
                return;
            }
        };
        acks.outbox.push(outbox::new_slack(
            channel,
            thread_ts,
            text.clone(),
            format!("ack:{}", conv.id),
            now,
        ));
        acks.copies.push(NewMessage {
            conversation_id: Some(conv.id),
            channel: conv.channel.clone(),
            external_id: format!("ack:slack:{}", conv.id),
            direction: Some(Direction::Auto),
            sender: "keepword".into(),
            recipients: channel.to_string(),
            subject: conv.subject.clone(),
            // The token is kept only as a hash: the team's copy names the
            // link without it.
            body: match &status_url {
                Some(url) => text.replace(url, &self.core.status_url("…")),
                None => text,
            },
            message_id: None,
            in_reply_to: None,
            refs: String::new(),
            raw: None,
            sent_at: now,
            received_at: now,
            status: None,
            awaiting_client: false,
        });
    }

    /// Stores the batch's acknowledgements: those whose conversation was
    /// acknowledged already (a dedupe key seen) are dropped with their copy.
    /// Returns how many were enqueued.
    pub(super) fn store_slack_acks(
        &self,
        conn: &mut AnyConnection,
        acks: SlackAcks,
        now: DateTime<Utc>,
    ) -> Result<usize, ServiceError> {
        if acks.outbox.is_empty() {
            return Ok(0);
        }
        super::store_acknowledgements(conn, &acks.outbox, acks.copies, now)
    }
}

impl Reads {
    /// Slack replies that failed and wait (newest first, at most `limit`):
    /// what the Connections page shows under Slack.
    pub fn slack_failures(&self, limit: i64) -> Result<Vec<SlackFailure>, ServiceError> {
        let rows = self
            .store()
            .with(|c| store::outbox::failing(c, outbox::KIND_SLACK, limit))?;
        Ok(rows
            .into_iter()
            .map(|r| SlackFailure {
                conversation_id: r.conversation_id.or_else(|| {
                    r.dedupe_key
                        .strip_prefix("ack:")
                        .and_then(|id| id.parse().ok())
                }),
                target: r.target,
                attempts: r.attempts,
                error: r.last_error.unwrap_or_default(),
                next_attempt: r.available_at,
                permanent: false,
            })
            .map(|mut f| {
                f.permanent = f
                    .error
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .any(|code| crate::notify::slack::fix_for(code).is_some());
                f
            })
            .collect())
    }
}

/// A Slack reply that has not gone out, and why.
#[derive(Debug, Clone)]
pub struct SlackFailure {
    pub conversation_id: Option<i64>,
    /// `slack:CHANNEL`.
    pub target: String,
    pub attempts: i32,
    pub error: String,
    pub next_attempt: DateTime<Utc>,
    /// Slack will refuse it again until someone fixes the cause.
    pub permanent: bool,
}
