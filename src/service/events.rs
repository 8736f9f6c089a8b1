//! Recording a ticket event (or message) once, and solving a conversation.

use chrono::{DateTime, Utc};

use super::*;

/// What [`Service::record_event`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub message_id: i64,
    pub conversation_id: Option<i64>,
    /// The idempotency key was seen before: nothing changed.
    pub duplicate: bool,
    pub conversation_created: bool,
    /// The client's status page of a conversation this event opened
    /// (`{public_url}/status/{token}`): the only time the token is known.
    pub status_url: Option<String>,
}

impl Service {
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
            let mut status_token = None;
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
                        if created {
                            status_token = super::status::issue_link(conn, row.id, now)?;
                        }
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
                    status_url: status_token.map(|t| self.status_url(&t)),
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
                    status_url: None,
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

    /// Marks a conversation solved (the API's action).
    pub fn solve(&self, id: i64, now: DateTime<Utc>) -> Result<(), ServiceError> {
        self.set_status(id, TicketStatus::Solved, "api", now)
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
    let (row, created) = store::open_conversation(
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
    let mismatch = (created && class.channel_mismatch).then_some(class.request_type);
    Ok((row, created, mismatch))
}
